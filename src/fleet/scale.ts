import { AppError } from '../errors.js';
import { LABEL, ROUTER_PORT, dialUrl, routerPath, workspaceLabels } from '../conventions.js';
import type { FleetDeps } from './context.js';
import { localNetworkName, localRouterName } from './router.js';
import { startWith } from './start.js';
import { resolveTargets } from './targets.js';

export { localNetworkName, localRouterName };

/**
 * `agent scale --name X --replicas N` on the local engine: the agent's primary container (started
 * if needed) plus N-1 replica containers `nexus-agent-<slug>-<n>` without host ports, all sharing
 * the DNS alias `<slug>` on the workspace network, behind a local nginx router (started, or
 * reloaded with SIGHUP) that balances across them and skips dead ones:
 * `http://<bind>:<routerPort>/agents/<slug>/`. Scaling down removes the highest-numbered replicas.
 * One plan does it all (src/fleet/plan.ts: replicas and router), so the agent is bundled once.
 * @throws AppError USAGE for N < 1, AGENT_NOT_FOUND, CONTAINER_UNHEALTHY when the primary cannot start.
 */
export async function scaleAgent(deps: FleetDeps, name: string, replicas: number, opts: { routerPort?: number | undefined } = {}): Promise<{ name: string; replicas: number; containers: string[]; url: string }> {
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new AppError('USAGE', `--replicas must be 1 or more, got ${replicas}`, { hint: `to stop the agent: agent stop --name ${name}` });
  }
  const { config, engine } = deps;
  const [rec] = await resolveTargets(deps, [name]);
  const routerPort = opts.routerPort ?? ROUTER_PORT;
  const { result, run } = await startWith(deps, [rec!.name], { replicas, router: 'running', routerPort });
  const primary = result.agents[0]!;
  if (primary.outcome === 'failed') {
    throw new AppError('CONTAINER_UNHEALTHY', `cannot scale '${rec!.name}': ${primary.error?.message}`, { hint: primary.error?.hint, details: { logs: primary.logs ?? '' } });
  }
  if (run?.routerError) throw run.routerError;
  const now = await engine.listContainers({ ...workspaceLabels(config), [LABEL.agent]: rec!.slug });
  return {
    name: rec!.name,
    replicas,
    containers: now.map((c) => c.name).sort(),
    url: `${dialUrl(config.ports.bindAddress, routerPort)}${routerPath(rec!.slug)}/`,
  };
}

/** Remove the local router and network of a workspace (what stop-all does after stopping). */
export async function removeLocalRouter(deps: FleetDeps): Promise<void> {
  const r = await deps.engine.inspectContainer(localRouterName(deps.config.workspace));
  if (r) await deps.engine.removeContainer(r.id);
  await deps.engine.removeNetwork(localNetworkName(deps.config.workspace));
}
