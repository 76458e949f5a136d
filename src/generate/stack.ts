import type { Config } from '../config/config.js';
import { LABEL } from '../engine/labels.js';
import { healthProbeCommand } from '../engine/rootfs.js';
import { AGENT_PORT, agentServiceCore, type AgentTarget, type ProductionOptions } from './model.js';

function tmpfsMount(target: string, sizeMiB: number): Record<string, unknown> {
  return { type: 'tmpfs', target, tmpfs: { size: sizeMiB * 1024 * 1024 } };
}

export interface StackOptions extends ProductionOptions {
  /** Replicas per agent (default 1); per-agent overrides by slug. */
  replicas: number;
  replicasOf?: Record<string, number>;
  routerImage: string;
  /** Paths, relative to the stack file, of the router files shipped as swarm configs. */
  nginxConfFile: string;
  agentsIndexFile: string;
  /** Swarm config names; configs are immutable, so the caller names them by content hash. */
  configNames: { nginx: string; index: string };
}

/**
 * The Swarm stack file (`docker stack deploy -c`), Compose file format 3.8. Pure. Per agent: a
 * service with `deploy` replicas, rolling update (start-first, rollback on failure) and
 * rollback config, restart policy and resource limits, the agents' healthcheck (Swarm only routes
 * to healthy tasks), non-root, read-only root and cap_drop. The nginx router runs on every node
 * (global) and publishes its port on the node (host mode); its configuration travels as swarm
 * `configs` (not bind mounts), so it runs on any node. Agents reach each other by service name (a VIP load-balanced by Swarm).
 */
export function stackDocument(config: Config, agents: readonly AgentTarget[], o: StackOptions): Record<string, unknown> {
  const services: Record<string, unknown> = {};
  for (const a of agents) {
    services[a.slug] = {
      ...agentServiceCore(a, o),
      // Swarm ignores the short `tmpfs` key; long-syntax tmpfs mounts work (mode 1777)
      volumes: [tmpfsMount('/tmp', 16)],
      healthcheck: { test: ['CMD', ...healthProbeCommand(AGENT_PORT)], interval: '10s', timeout: '3s', retries: 3, start_period: '10s' },
      stop_grace_period: '10s',
      networks: [o.network],
      deploy: {
        replicas: o.replicasOf?.[a.slug] ?? o.replicas,
        // DNS round robin: the name resolves to the healthy tasks and nginx balances across them
        // (as with compose), skipping dead ones; no virtual IP/IPVS in the path
        endpoint_mode: 'dnsrr',
        labels: { ...config.labels, [LABEL.managed]: 'true', [LABEL.agent]: a.slug },
        update_config: { parallelism: 1, delay: '5s', order: 'start-first', failure_action: 'rollback', monitor: '15s' },
        rollback_config: { parallelism: 1, order: 'start-first' },
        restart_policy: { condition: 'any', delay: '2s', window: '30s' },
        resources: { limits: { cpus: String(config.resources.cpus), memory: `${config.resources.memoryMiB}M` } },
      },
    };
  }
  services.router = {
    image: o.routerImage,
    // one router per node, bound on the node itself (host mode): put the nodes behind your load
    // balancer or DNS; no dependence on the ingress routing mesh
    ports: [{ target: 8080, published: o.routerBind.port, protocol: 'tcp', mode: 'host' }],
    configs: [
      { source: o.configNames.nginx, target: '/etc/nginx/conf.d/default.conf' },
      { source: o.configNames.index, target: '/etc/nginx/nexus/agents.json' },
    ],
    read_only: true,
    volumes: [tmpfsMount('/tmp', 16), tmpfsMount('/var/cache/nginx', 16), tmpfsMount('/var/run', 1)],
    networks: [o.network],
    deploy: {
      mode: 'global',
      labels: { ...config.labels, [LABEL.managed]: 'true', [LABEL.kind]: 'router' },
      // stop-first: two routers cannot bind the same host port on one node
      update_config: { order: 'stop-first', failure_action: 'rollback' },
      restart_policy: { condition: 'any' },
    },
  };
  return {
    version: '3.8',
    services,
    networks: { [o.network]: { driver: 'overlay', attachable: true } },
    configs: {
      [o.configNames.nginx]: { file: o.nginxConfFile },
      [o.configNames.index]: { file: o.agentsIndexFile },
    },
  };
}
