import type { Config } from '../config/config.js';
import { AGENT_TMP, HARDENED, LABEL, ROUTER_CONTAINER_PORT, ROUTER_TMPFS_MIB, SWARM_HEALTHCHECK } from '../conventions.js';
import { checkTarget, composeLiterals } from './escape.js';
import { STOP_GRACE_PERIOD, agentServiceCore, checkServiceNames, composeHealthcheck, type AgentTarget, type ProductionOptions } from './model.js';

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
 * @throws AppError USAGE as composeDocument.
 */
export function stackDocument(config: Config, agents: readonly AgentTarget[], o: StackOptions): Record<string, unknown> {
  checkServiceNames('the stack file', agents, true, o.network);
  const services: Record<string, unknown> = {};
  for (const a of agents) {
    checkTarget('the stack file', a);
    services[a.slug] = {
      ...agentServiceCore(a, o),
      // Swarm ignores the short `tmpfs` key; long-syntax tmpfs mounts work (mode 1777)
      volumes: [tmpfsMount(AGENT_TMP.path, AGENT_TMP.sizeMiB)],
      healthcheck: composeHealthcheck(SWARM_HEALTHCHECK),
      stop_grace_period: STOP_GRACE_PERIOD,
      networks: [o.network],
      deploy: {
        replicas: (o.replicasOf && Object.hasOwn(o.replicasOf, a.slug) ? o.replicasOf[a.slug] : undefined) ?? o.replicas,
        // DNS round robin: the name resolves to the healthy tasks and nginx balances across them
        // (as with compose), skipping dead ones; no virtual IP/IPVS in the path
        endpoint_mode: 'dnsrr',
        labels: { ...composeLiterals(config.labels), [LABEL.managed]: 'true', [LABEL.agent]: a.slug },
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
    ports: [{ target: ROUTER_CONTAINER_PORT, published: o.routerBind.port, protocol: 'tcp', mode: 'host' }],
    configs: [
      { source: o.configNames.nginx, target: '/etc/nginx/conf.d/default.conf' },
      { source: o.configNames.index, target: '/etc/nginx/nexus/agents.json' },
    ],
    read_only: HARDENED.readOnlyRootfs,
    volumes: Object.entries(ROUTER_TMPFS_MIB).map(([path, mib]) => tmpfsMount(path, mib)),
    networks: [o.network],
    deploy: {
      mode: 'global',
      labels: { ...composeLiterals(config.labels), [LABEL.managed]: 'true', [LABEL.kind]: 'router' },
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
