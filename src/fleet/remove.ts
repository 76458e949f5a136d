import { rm } from 'node:fs/promises';
import { agentImageRef } from '../names.js';
import { agentDirToPurge } from '../paths.js';
import type { FleetDeps } from './context.js';
import { syncListingsIfRegistered as syncListings, type ListingSync } from './listings.js';
import { agentContainers } from './stop.js';
import { resolveTargets } from './targets.js';

/**
 * Remove an agent: its containers, its image, its record (releasing the port), and with `purge`
 * its source folder, only ever strictly inside `<workspace>/agents/` (agentDirToPurge). Containers
 * go first so nothing runs without a record. A registered agent's listing is removed from the
 * marketplace; when that fails, `recordKept` is true and the record (port included) stays until a
 * later lifecycle command or `register` removes the listing.
 * @throws AppError AGENT_NOT_FOUND, NAME_INVALID; USAGE when the folder to purge is not safely inside agents/.
 */
export async function removeAgent(
  deps: FleetDeps,
  name: string,
  opts: { purge?: boolean } = {},
): Promise<{ name: string; slug: string; port: number; purged: boolean; recordKept: boolean; listings?: ListingSync[] }> {
  await deps.engine.ping();
  const [record] = await resolveTargets(deps, [name]);
  const rec = record!;
  // checked before anything is removed: a refusal leaves the agent as it was
  const purgeDir = opts.purge ? await agentDirToPurge(deps.config.workspace, rec.slug) : undefined;
  for (const c of await agentContainers(deps, rec.slug)) await deps.engine.removeContainer(c.id);
  await deps.engine.removeImage(agentImageRef(rec.slug, deps.config.images.tag, deps.config.project)).catch(() => undefined);
  // a registered agent's listing goes first; if the marketplace cannot be reached, the record
  // stays (stopped, marketplace.pending unregister) until a later command removes the listing
  const synced = await syncListings(deps, [{ slug: rec.slug, change: 'unregister' }]);
  const recordKept = !!synced.listings?.some((l) => l.slug === rec.slug && l.outcome === 'stale');
  if (recordKept) await deps.registry.update(rec.slug, { desired: 'stopped', status: 'stopped' });
  else await deps.registry.remove(rec.slug);
  if (purgeDir) await rm(purgeDir, { recursive: true, force: true });
  return { name: rec.name, slug: rec.slug, port: rec.port, purged: !!opts.purge, recordKept, ...synced };
}
