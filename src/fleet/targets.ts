import { AppError } from '../errors.js';
import { validateAgentName } from '../names.js';
import { notFound } from '../registry/errors.js';
import type { AgentRecord } from '../registry/registry.js';
import type { FleetDeps } from './context.js';

/**
 * The records named (by name or slug), in the order given, or all of them. A name that is not a
 * valid agent name and matches no record's name is reported as such (NAME_INVALID), not as a
 * missing agent.
 * @throws AppError NAME_INVALID, AGENT_NOT_FOUND for a name the registry does not hold.
 */
export async function resolveTargets(deps: Pick<FleetDeps, 'registry'>, names: string[] | 'all'): Promise<AgentRecord[]> {
  const all = await deps.registry.list();
  if (names === 'all') return all;
  return names.map((n) => {
    let slug: string | undefined;
    let invalid: AppError | undefined;
    try {
      slug = validateAgentName(n);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      invalid = err;
    }
    const rec = all.find((a) => (slug !== undefined && a.slug === slug) || a.name === n);
    if (rec) return rec;
    throw invalid ?? notFound(n);
  });
}
