import type { Config } from '../config/config.js';
import { AGENT_HEALTHCHECK, HARDENED, LABEL, ROUTER_CONTAINER_PORT, ROUTER_TMPFS_MIB } from '../conventions.js';
import { checkTarget, composeLiteral, composeLiterals } from './escape.js';
import { AGENT_PORT, AGENT_TMPFS_SHORT, STOP_GRACE_PERIOD, agentServiceCore, checkServiceNames, composeHealthcheck, type AgentTarget, type ProductionOptions } from './model.js';
import { traefikRule } from './traefik.js';

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
 * works. Secrets are referenced through env_file when an agent has one, never inlined. Values from
 * the configuration are Compose literals (`$` as `$$`); only the image tag is interpolated.
 * @throws AppError USAGE for a target that cannot be expressed (checkTarget), an agent whose slug
 *   is the router's service name, or a network name Compose does not accept.
 */
export function composeDocument(config: Config, agents: readonly AgentTarget[], o: ComposeOptions): Record<string, unknown> {
  checkServiceNames('docker-compose-agents.yml', agents, o.router !== 'none', o.network);
  const services: Record<string, unknown> = {};
  for (const a of agents) {
    checkTarget('docker-compose-agents.yml', a);
    services[a.slug] = {
      ...agentServiceCore(a, o),
      tmpfs: [AGENT_TMPFS_SHORT],
      security_opt: [...HARDENED.securityOpt],
      expose: [String(AGENT_PORT)],
      healthcheck: composeHealthcheck(AGENT_HEALTHCHECK),
      restart: HARDENED.restartPolicy,
      mem_limit: `${config.resources.memoryMiB}m`,
      cpus: config.resources.cpus,
      pids_limit: config.resources.pids,
      stop_grace_period: STOP_GRACE_PERIOD,
      labels: {
        ...composeLiterals(config.labels),
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
      ports: [`${o.routerBind.address}:${o.routerBind.port}:${ROUTER_CONTAINER_PORT}`],
      volumes: ['./nginx/nexus-agents.conf:/etc/nginx/conf.d/default.conf:ro', './nginx/agents.json:/etc/nginx/nexus/agents.json:ro'],
      read_only: HARDENED.readOnlyRootfs,
      tmpfs: ['/var/cache/nginx', '/var/run', '/tmp'].map((p) => `${p}:size=${ROUTER_TMPFS_MIB[p]}m,mode=1777`),
      restart: HARDENED.restartPolicy,
      depends_on: agents.map((a) => a.slug),
      labels: { ...composeLiterals(config.labels), [LABEL.managed]: 'true', [LABEL.kind]: 'router' },
      networks: [o.network],
    };
  } else if (o.router === 'traefik') {
    services.router = {
      image: o.routerImage,
      command: ['--providers.docker=true', '--providers.docker.exposedbydefault=false', `--providers.docker.network=${o.network}`, `--entrypoints.web.address=:${ROUTER_CONTAINER_PORT}`],
      ports: [`${o.routerBind.address}:${o.routerBind.port}:${ROUTER_CONTAINER_PORT}`],
      volumes: ['/var/run/docker.sock:/var/run/docker.sock:ro'],
      restart: HARDENED.restartPolicy,
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
    [`traefik.http.routers.${id}.rule`]: composeLiteral(traefikRule(a)),
    [`traefik.http.routers.${id}.entrypoints`]: 'web',
    [`traefik.http.routers.${id}.middlewares`]: `${id}-strip`,
    [`traefik.http.middlewares.${id}-strip.stripprefix.prefixes`]: a.path,
    [`traefik.http.services.${id}.loadbalancer.server.port`]: String(AGENT_PORT),
    [`traefik.http.services.${id}.loadbalancer.healthcheck.path`]: '/health',
    [`traefik.http.services.${id}.loadbalancer.healthcheck.interval`]: '10s',
  };
}
