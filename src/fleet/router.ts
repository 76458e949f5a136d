import { join } from 'node:path';
import type { Config } from '../config/config.js';
import type { ContainerSpec } from '../engine/engine.js';
import { HARDENED, LABEL, ROUTER_CONTAINER_PORT, ROUTER_LIMITS, ROUTER_TMPFS_MIB, workspaceId, workspaceLabels } from '../conventions.js';

/** The workspace's local network: replicas share their agent's slug as DNS alias on it. */
export function localNetworkName(workspace: string): string {
  return `nexus-local-${workspaceId(workspace)}`;
}

/** The local router container of a workspace. */
export function localRouterName(workspace: string): string {
  return `nexus-router-${workspaceId(workspace)}`;
}

/** Where the local router's generated nginx files live: <workspace>/.nexus/router. */
export function localRouterDir(workspace: string): string {
  return join(workspace, '.nexus', 'router');
}

/**
 * The local router's container spec (pure): the offline nginx `image`, hardened like an agent,
 * on the workspace network, publishing `routerPort` on the bind address, with the folder `dir`
 * (absolute) holding the generated nexus-agents.conf and agents.json mounted read-only at
 * /etc/nginx/conf.d and /etc/nginx/nexus. The folder, not the files: the files are replaced
 * atomically (a rename, a new inode) at every regeneration, and a single-file bind mount would keep
 * showing the old inode to a reloading nginx.
 */
export function routerContainerSpec(config: Config, image: string, routerPort: number, dir: string): ContainerSpec {
  return {
    name: localRouterName(config.workspace),
    image,
    labels: { ...config.labels, ...workspaceLabels(config), [LABEL.kind]: 'router' },
    env: {},
    containerPort: ROUTER_CONTAINER_PORT,
    hostPort: { address: config.ports.bindAddress, port: routerPort },
    ...HARDENED,
    capDrop: [...HARDENED.capDrop],
    securityOpt: [...HARDENED.securityOpt],
    tmpfs: Object.fromEntries(Object.entries(ROUTER_TMPFS_MIB).map(([path, mib]) => [path, `size=${mib}m,mode=1777`])),
    memoryMiB: ROUTER_LIMITS.memoryMiB,
    cpus: ROUTER_LIMITS.cpus,
    pidsLimit: ROUTER_LIMITS.pids,
    network: localNetworkName(config.workspace),
    binds: [`${dir}:/etc/nginx/conf.d:ro`, `${dir}:/etc/nginx/nexus:ro`],
  };
}
