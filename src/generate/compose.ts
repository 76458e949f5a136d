import type { Config } from '../config/config.js';
import { LABEL } from '../engine/labels.js';
import { healthProbeCommand } from '../engine/rootfs.js';
import { AGENT_PORT, agentServiceCore, type AgentTarget, type ProductionOptions } from './model.js';

/** The router in front of the agents in the generated file. */
export type RouterKind = 'nginx' | 'traefik' | 'none';

export interface ComposeOptions extends ProductionOptions {
  router: RouterKind;
  /** Router image: a public one by default; the offline router image where no registry is reachable. */
  routerImage: string;
}

/**
 * docker-compose-agents.yml as an object (Compose Specification; no `version`, which the spec
 * deprecates). Pure. One service per agent with the local containers' hardening (non-root,
 * read-only root, cap_drop ALL, no-new-privileges), limits, healthcheck and restart policy; no
 * agent publishes a host port (only the router does), so `docker-compose up --scale <agent>=3`
 * works. Secrets are referenced through env_file when an agent has one, never inlined.
 */
export function composeDocument(config: Config, agents: readonly AgentTarget[], o: ComposeOptions): Record<string, unknown> {
  const services: Record<string, unknown> = {};
  for (const a of agents) {
    services[a.slug] = {
      ...agentServiceCore(a, o),
      tmpfs: ['/tmp:rw,noexec,nosuid,nodev,size=16m,mode=1777'],
      security_opt: ['no-new-privileges:true'],
      expose: [String(AGENT_PORT)],
      healthcheck: { test: ['CMD', ...healthProbeCommand(AGENT_PORT)], interval: '30s', timeout: '3s', retries: 3, start_period: '10s' },
      restart: 'unless-stopped',
      mem_limit: `${config.resources.memoryMiB}m`,
      cpus: config.resources.cpus,
      pids_limit: config.resources.pids,
      stop_grace_period: '10s',
      labels: {
        ...config.labels,
        [LABEL.managed]: 'true',
        [LABEL.agent]: a.slug,
        ...(o.router === 'traefik' ? traefikLabels(a) : {}),
      },
      networks: [o.network],
    };
  }
  if (o.router === 'nginx') {
    services.router = {
      image: `\${NEXUS_ROUTER_IMAGE:-${o.routerImage}}`,
      ports: [`${o.routerBind.address}:${o.routerBind.port}:8080`],
      volumes: ['./nginx/nexus-agents.conf:/etc/nginx/conf.d/default.conf:ro', './nginx/agents.json:/etc/nginx/nexus/agents.json:ro'],
      read_only: true,
      tmpfs: ['/var/cache/nginx:size=16m,mode=1777', '/var/run:size=1m,mode=1777', '/tmp:size=16m,mode=1777'],
      restart: 'unless-stopped',
      depends_on: agents.map((a) => a.slug),
      labels: { ...config.labels, [LABEL.managed]: 'true', [LABEL.kind]: 'router' },
      networks: [o.network],
    };
  } else if (o.router === 'traefik') {
    services.router = {
      image: o.routerImage,
      command: ['--providers.docker=true', '--providers.docker.exposedbydefault=false', `--providers.docker.network=${o.network}`, '--entrypoints.web.address=:8080'],
      ports: [`${o.routerBind.address}:${o.routerBind.port}:8080`],
      volumes: ['/var/run/docker.sock:/var/run/docker.sock:ro'],
      restart: 'unless-stopped',
      labels: { [LABEL.managed]: 'true', [LABEL.kind]: 'router' },
      networks: [o.network],
    };
  }
  // no top-level `name`: docker-compose 1.x rejects it; pass the project name with -p
  return {
    services,
    networks: { [o.network]: { name: o.network, labels: { [LABEL.managed]: 'true' } } },
  };
}

/** Traefik Docker-provider labels routing /agents/<slug> to the agent (all replicas). */
export function traefikLabels(a: AgentTarget): Record<string, string> {
  const id = `nexus-${a.slug}`;
  return {
    'traefik.enable': 'true',
    [`traefik.http.routers.${id}.rule`]: `PathPrefix(\`${a.path}/\`)`,
    [`traefik.http.routers.${id}.entrypoints`]: 'web',
    [`traefik.http.routers.${id}.middlewares`]: `${id}-strip`,
    [`traefik.http.middlewares.${id}-strip.stripprefix.prefixes`]: a.path,
    [`traefik.http.services.${id}.loadbalancer.server.port`]: String(AGENT_PORT),
    [`traefik.http.services.${id}.loadbalancer.healthcheck.path`]: '/health',
    [`traefik.http.services.${id}.loadbalancer.healthcheck.interval`]: '10s',
  };
}
