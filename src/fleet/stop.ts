import { LABEL, STOP_GRACE_S, workspaceLabels } from '../conventions.js';
import type { FleetDeps } from './context.js';
import { execute } from './execute.js';
import { syncListingsIfRegistered, type ListingSync } from './listings.js';
import { plan } from './plan.js';
import { observe } from './state.js';
import { resolveTargets } from './targets.js';

export interface StopOutcome {
  name: string;
  slug: string;
  /** Containers stopped and removed. */
  removed: number;
}

/**
 * Stop agents: SIGTERM (in-flight requests finish), SIGKILL after `timeoutS` seconds, then remove
 * the containers (agents are stateless; `start` recreates them in about a second). Records
 * desired=stopped. Registered agents' listings are marked unavailable (`listings`; stale ones are
 * retried later). With `removeRouter` (stop-all) the local router and network go too.
 * @throws AppError ENGINE_UNREACHABLE, AGENT_NOT_FOUND, NAME_INVALID, ENGINE_ERROR
 */
export async function stopAgents(deps: FleetDeps, names: string[] | 'all', timeoutS = STOP_GRACE_S, opts: { removeRouter?: boolean } = {}): Promise<{ agents: StopOutcome[]; listings?: ListingSync[] }> {
  await deps.engine.ping();
  const targets = await resolveTargets(deps, names);
  const observed = await observe(deps, { router: !!opts.removeRouter });
  const p = plan({ config: deps.config, agents: targets.map((record) => ({ record, state: 'stopped' })), router: opts.removeRouter ? 'absent' : 'any', stopTimeoutS: timeoutS }, observed);
  const run = await execute(deps, p, { records: new Map(targets.map((r) => [r.slug, r])), observed });
  const failed = [...run.agents.values()].find((r) => r.error);
  if (failed?.error) throw failed.error;
  if (run.routerError) throw run.routerError;
  const agents = targets.map((rec) => ({ name: rec.name, slug: rec.slug, removed: observed.containers.filter((c) => c.agent === rec.slug).length }));
  return { agents, ...(await syncListingsIfRegistered(deps, targets.map((rec) => ({ slug: rec.slug, change: 'unavailable' as const })))) };
}

/** Containers (any replica) of one agent of the workspace. */
export function agentContainers(deps: FleetDeps, slug: string) {
  return deps.engine.listContainers({ ...workspaceLabels(deps.config), [LABEL.agent]: slug });
}
