import { join } from 'node:path';
import { AppError } from '../errors.js';
import type { ContainerSpec } from '../engine/engine.js';
import { HARDENED, LABEL, ROUTER_CONTAINER_PORT, ROUTER_LIMITS, ROUTER_PORT, ROUTER_TMPFS_MIB, dialUrl, replicaIndex, routerPath, workspaceId, workspaceLabels } from '../conventions.js';
import { containerName } from '../names.js';
import { agentContainerSpec } from './containers.js';
import type { FleetDeps } from './context.js';
import { ensureAgentImage, ensureBaseImage } from './images.js';
import { resolveTargets, startAgents } from './manager.js';
import { writeNginxRoutes } from './production.js';

/** The workspace's local network: replicas share their agent's slug as DNS alias on it. */
export function localNetworkName(workspace: string): string {
  return `nexus-local-${workspaceId(workspace)}`;
}

/** The local router container of a workspace. */
export function localRouterName(workspace: string): string {
  return `nexus-router-${workspaceId(workspace)}`;
}

/**
 * The local router: nginx (offline image from the host's nginx) with the generated routes,
 * on the workspace network, publishing `routerPort` on the bind address; reloaded (SIGHUP)
 * when it already runs, so new agents and config show up.
 */
async function ensureLocalRouter(deps: FleetDeps, routerPort: number): Promise<string> {
  const { config, engine } = deps;
  const dir = join(config.workspace, '.nexus', 'router');
  const [conf, index] = await writeNginxRoutes(deps, dir, { routerPort, routerAddress: config.ports.bindAddress });
  const name = localRouterName(config.workspace);
  const existing = await engine.inspectContainer(name);
  if (existing?.state === 'running') {
    await engine.signalContainer(existing.id, 'SIGHUP');
    return name;
  }
  if (existing) await engine.removeContainer(existing.id);
  const image = (await engine.ensureOfflineRouterImage()).tags[0]!;
  const spec: ContainerSpec = {
    name,
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
    binds: [`${conf}:/etc/nginx/conf.d/default.conf:ro`, `${index}:/etc/nginx/nexus/agents.json:ro`],
  };
  const id = await engine.createContainer(spec);
  await engine.startContainer(id);
  return name;
}

/**
 * `agent scale --name X --replicas N` on the local engine: the agent's primary container (started
 * if needed) plus N-1 replica containers `nexus-agent-<slug>-<n>` without host ports, all sharing
 * the DNS alias `<slug>` on the workspace network, behind a local nginx router that balances
 * across them and skips dead ones: `http://<bind>:<routerPort>/agents/<slug>/`.
 * Scaling down removes the highest-numbered replicas.
 * @throws AppError USAGE for N < 1, AGENT_NOT_FOUND, CONTAINER_UNHEALTHY when the primary cannot start.
 */
export async function scaleAgent(deps: FleetDeps, name: string, replicas: number, opts: { routerPort?: number } = {}): Promise<{ name: string; replicas: number; containers: string[]; url: string }> {
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new AppError('USAGE', `--replicas must be 1 or more, got ${replicas}`, { hint: `to stop the agent: agent stop --name ${name}` });
  }
  const { config, engine } = deps;
  const [rec] = await resolveTargets(deps, [name]);
  const start = await startAgents(deps, [rec!.name]);
  const primary = start.agents[0]!;
  if (primary.outcome === 'failed') {
    throw new AppError('CONTAINER_UNHEALTHY', `cannot scale '${rec!.name}': ${primary.error?.message}`, { hint: primary.error?.hint, details: { logs: primary.logs ?? '' } });
  }
  const net = localNetworkName(config.workspace);
  await engine.ensureNetwork(net, { ...config.labels, ...workspaceLabels(config) });
  await engine.connectNetwork(net, primary.containerId!, [rec!.slug]);
  const img = await ensureAgentImage(deps, rec!, await ensureBaseImage(deps));
  const all = await engine.listContainers({ ...workspaceLabels(config), [LABEL.agent]: rec!.slug });
  const replicaNo = (c: { labels: Record<string, string> }) => replicaIndex(c.labels);
  const routerPort = opts.routerPort ?? ROUTER_PORT;
  const routedUrl = `${dialUrl(config.ports.bindAddress, routerPort)}${routerPath(rec!.slug)}`;
  for (const c of all.filter((c) => replicaNo(c) >= replicas)) await engine.removeContainer(c.id);
  const have = new Set(all.map(replicaNo).filter((n) => n > 0 && n < replicas));
  for (let n = 1; n < replicas; n++) {
    if (have.has(n)) continue;
    const spec = agentContainerSpec(config, rec!, img);
    spec.name = containerName(rec!.slug, n, config.project);
    spec.labels[LABEL.replica] = String(n);
    spec.hostPort = undefined;
    spec.network = net;
    spec.networkAliases = [rec!.slug];
    spec.env.AGENT_PUBLIC_URL = routedUrl;
    const id = await engine.createContainer(spec);
    await engine.startContainer(id);
  }
  await ensureLocalRouter(deps, routerPort);
  const now = await engine.listContainers({ ...workspaceLabels(config), [LABEL.agent]: rec!.slug });
  return {
    name: rec!.name,
    replicas,
    containers: now.map((c) => c.name).sort(),
    url: `${routedUrl}/`,
  };
}

/** Remove the local router and network of a workspace (after stop-all). */
export async function removeLocalRouter(deps: FleetDeps): Promise<void> {
  const r = await deps.engine.inspectContainer(localRouterName(deps.config.workspace));
  if (r) await deps.engine.removeContainer(r.id);
  await deps.engine.removeNetwork(localNetworkName(deps.config.workspace));
}
