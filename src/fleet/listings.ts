import type { ListingChange } from '../registry/registry.js';
import type { FleetDeps } from './context.js';
import type { ListingSync } from './marketplace.js';

export type { ListingSync };

/**
 * Listings follow the lifecycle: syncListings (fleet/marketplace.ts) for the changes a command
 * made, loaded only when an agent is registered (it brings the HTTP client, 0.1-0.2 s).
 * @returns `{ listings }` when any listing was touched, else `{}`. Never throws for the marketplace.
 */
export async function syncListingsIfRegistered(deps: FleetDeps, changes: { slug: string; change: ListingChange }[]): Promise<{ listings?: ListingSync[] }> {
  if (!(await deps.registry.list()).some((r) => r.marketplace)) return {};
  const listings = await (await import('./marketplace.js')).syncListings(deps, changes);
  return listings.length ? { listings } : {};
}
