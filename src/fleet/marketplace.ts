import pLimit from 'p-limit';
import { AppError, messageOf } from '../errors.js';
import { a2aCard, cardHash, listingKey, marketplaceCard, type MarketplaceCard } from '../marketplace/cards.js';
import { MarketplaceClient, type MarketplaceClientOptions } from '../marketplace/client.js';
import { beingRemoved } from '../registry/errors.js';
import { isBeingRemoved, type AgentRecord, type ListingChange } from '../registry/registry.js';
import { agentUrl, workspaceId, type FleetDeps } from './context.js';
import { probeHealth } from './health.js';
import { resolveTargets as targets } from './targets.js';

/** The URL a card advertises: the router's /agents/<slug> when configured, else the port binding. */
export function advertisedEndpoint(deps: FleetDeps, rec: AgentRecord): string {
  return deps.config.routerUrl ? `${deps.config.routerUrl}/agents/${rec.slug}` : agentUrl(deps.config, rec.port);
}

/**
 * A client from the configuration.
 * @throws AppError CONFIG_INVALID naming MARKETPLACE_URL / MARKETPLACE_API_KEY when missing.
 */
export function marketplaceClient(deps: FleetDeps, extra: Partial<MarketplaceClientOptions> = {}): MarketplaceClient {
  const m = deps.config.marketplace;
  if (!m.url) throw new AppError('CONFIG_INVALID', 'no marketplace configured', { hint: 'set MARKETPLACE_URL (or marketplace.url in nexus.yaml)' });
  if (!m.apiKey) throw new AppError('CONFIG_INVALID', 'no marketplace API key', { hint: 'set MARKETPLACE_API_KEY in the environment' });
  return new MarketplaceClient({ baseUrl: m.url, apiKey: m.apiKey, timeoutMs: m.timeoutMs, retries: m.retries, ...extra });
}

/** What a lifecycle command did to one agent's marketplace listing. */
export interface ListingSync {
  name: string;
  slug: string;
  change: ListingChange;
  /** done: the marketplace has the change; unchanged: it already had it, nothing sent; stale: the
   *  marketplace could not be reached or refused, the change waits in the record's marketplace.pending. */
  outcome: 'done' | 'unchanged' | 'stale';
  /** For available/unavailable: the status the listing now has (or will have once retried). */
  status?: MarketplaceCard['status'];
  error?: { code: string; message: string; hint?: string };
}

/** A lifecycle command's marketplace calls are brief: one retry, a short deadline, never minutes. */
const LIFECYCLE_CLIENT = { retries: 1, baseDelayMs: 200, maxDelayMs: 1000 } as const;

function errorOf(err: unknown): NonNullable<ListingSync['error']> {
  const e = err instanceof AppError ? err : new AppError('INTERNAL', messageOf(err));
  return { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
}

/**
 * Keep registered agents' listings in step with their lifecycle, and retry what an earlier
 * command could not do. `changes` name what this command did (stop: unavailable, healthy start:
 * available, remove: unregister); every record's pending change is retried too. Agents that were
 * never registered are left alone; a pending unregister is never overridden.
 * - available: sent as available only if the agent answers /health now, else as unavailable.
 * - unregister: the listing is deleted (404 counts as done), then the record is removed.
 * - nothing is sent when the listing already has the status and nothing is pending; when it is
 *   sent, it is the current card (so it also carries tool changes since the last register).
 * When the marketplace cannot be reached (or is not configured any more, or refuses), the outcome
 * is `stale` and the change is kept in the record's `marketplace.pending`. Never throws.
 * @returns one entry per listing touched, in no particular order; [] when no agent is registered.
 */
export async function syncListings(deps: FleetDeps, changes: { slug: string; change: ListingChange }[], opts: { client?: MarketplaceClient } = {}): Promise<ListingSync[]> {
  const recs = await deps.registry.list();
  const work = new Map<string, { rec: AgentRecord; change: ListingChange }>();
  for (const rec of recs) if (rec.marketplace?.pending) work.set(rec.slug, { rec, change: rec.marketplace.pending });
  for (const c of changes) {
    const rec = recs.find((r) => r.slug === c.slug);
    if (rec?.marketplace && !isBeingRemoved(rec)) work.set(rec.slug, { rec, change: c.change });
  }
  if (work.size === 0) return [];
  let client = opts.client;
  let configError: unknown;
  try {
    client ??= marketplaceClient(deps, { ...LIFECYCLE_CLIENT, timeoutMs: Math.min(deps.config.marketplace.timeoutMs, 5000) });
  } catch (err) {
    configError = err;
  }
  const limit = pLimit(4);
  return Promise.all(
    [...work.values()].map(({ rec, change }) =>
      limit(async (): Promise<ListingSync> => {
        const m = rec.marketplace!;
        const out: ListingSync = { name: rec.name, slug: rec.slug, change, outcome: 'done' };
        try {
          if (change === 'unregister') {
            if (!client) throw configError;
            await client.remove(m.key);
            await deps.registry.remove(rec.slug);
            return out;
          }
          const healthy = change === 'available' && (await probeHealth(agentUrl(deps.config, rec.port), 2000)).ok;
          out.status = healthy ? 'available' : 'unavailable';
          // a lifecycle command changes the status; other card changes are register's to send
          if (!m.pending && m.status === out.status && (!client || m.url === client.baseUrl)) {
            out.outcome = 'unchanged';
            return out;
          }
          if (!client) throw configError;
          const card = marketplaceCard(rec, advertisedEndpoint(deps, rec), out.status);
          const hash = cardHash(card);
          const { listing } = await client.upsert(m.key, card);
          await deps.registry.update(rec.slug, {
            marketplace: { id: listing.id, key: m.key, url: client.baseUrl, cardHash: hash, status: card.status, registeredAt: listing.updated_at },
          });
          deps.onProgress?.({ agent: rec.slug, phase: `listed ${card.status}` });
          return out;
        } catch (err) {
          out.outcome = 'stale';
          out.error = errorOf(err);
          if (m.pending !== change) await deps.registry.update(rec.slug, { marketplace: { ...m, pending: change } }).catch(() => undefined);
          return out;
        }
      }),
    ),
  );
}

export interface RegisterOutcome {
  name: string;
  slug: string;
  /** created / updated: sent; unchanged: same card as last time, nothing sent; refused: not healthy; failed. */
  outcome: 'created' | 'updated' | 'unchanged' | 'refused' | 'failed';
  api_endpoint: string;
  status?: MarketplaceCard['status'];
  id?: string;
  error?: { code: string; message: string; hint?: string };
}

/**
 * Register agents' cards with the marketplace. An agent must answer GET /health, else it is
 * refused (or, with markUnavailable, listed as unavailable) so the marketplace never lists a dead
 * endpoint. A card equal to the last one sent (same hash, same marketplace) is not sent again.
 * The listing id and card hash go to the registry record; the API key never does.
 * Failures are per-agent outcomes; config errors throw AppError CONFIG_INVALID.
 * First retries the listing changes lifecycle commands left pending (`listings` in the result).
 */
export async function registerAgents(
  deps: FleetDeps,
  names: string[] | 'all',
  opts: { markUnavailable?: boolean; client?: MarketplaceClient } = {},
): Promise<{ agents: RegisterOutcome[]; failed: number; listings?: ListingSync[] }> {
  const client = opts.client ?? marketplaceClient(deps);
  const listings = await syncListings(deps, [], { client });
  const recs = (await targets(deps, names)).filter((r) => !(names === 'all' && isBeingRemoved(r)));
  const wsId = workspaceId(deps.config.workspace);
  const limit = pLimit(4);
  const agents = await Promise.all(
    recs.map((rec) =>
      limit(async (): Promise<RegisterOutcome> => {
        const endpoint = advertisedEndpoint(deps, rec);
        const out: RegisterOutcome = { name: rec.name, slug: rec.slug, outcome: 'failed', api_endpoint: endpoint };
        try {
          if (isBeingRemoved(rec)) throw beingRemoved(rec.name);
          const healthy = (await probeHealth(agentUrl(deps.config, rec.port), 2000)).ok;
          if (!healthy && !opts.markUnavailable) {
            out.outcome = 'refused';
            out.error = {
              code: 'NOT_HEALTHY',
              message: `agent '${rec.name}' is not healthy, so it is not listed`,
              hint: `start it (agent start --name ${rec.name}), or pass --mark-unavailable to list it as unavailable`,
            };
            return out;
          }
          let card: MarketplaceCard;
          try {
            card = marketplaceCard(rec, endpoint, healthy ? 'available' : 'unavailable');
          } catch (err) {
            throw new AppError('NOT_HEALTHY', messageOf(err), { hint: `start it once: agent start --name ${rec.name}` });
          }
          out.status = card.status;
          const hash = cardHash(card);
          const key = listingKey(wsId, rec.slug);
          if (rec.marketplace && rec.marketplace.cardHash === hash && rec.marketplace.url === client.baseUrl) {
            out.outcome = 'unchanged';
            out.id = rec.marketplace.id;
            return out;
          }
          const { listing, created } = await client.upsert(key, card);
          await deps.registry.update(rec.slug, {
            marketplace: { id: listing.id, key, url: client.baseUrl, cardHash: hash, status: card.status, registeredAt: listing.updated_at },
          });
          out.outcome = created ? 'created' : 'updated';
          out.id = listing.id;
          deps.onProgress?.({ agent: rec.slug, phase: out.outcome });
          return out;
        } catch (err) {
          const e = err instanceof AppError ? err : new AppError('INTERNAL', messageOf(err));
          out.outcome = 'failed';
          out.error = { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
          return out;
        }
      }),
    ),
  );
  return { agents, failed: agents.filter((a) => a.outcome === 'failed' || a.outcome === 'refused').length, ...(listings.length ? { listings } : {}) };
}

/**
 * Remove agents' listings from the marketplace and forget them in the registry.
 * @throws AppError NOT_REGISTERED when an agent was never registered, MARKETPLACE_* on failure.
 */
export async function unregisterAgents(deps: FleetDeps, names: string[], opts: { client?: MarketplaceClient } = {}): Promise<{ agents: { name: string; removed: boolean }[] }> {
  const client = opts.client ?? marketplaceClient(deps);
  const recs = await targets(deps, names);
  const agents: { name: string; removed: boolean }[] = [];
  for (const rec of recs) {
    if (!rec.marketplace) {
      throw new AppError('NOT_REGISTERED', `agent '${rec.name}' is not registered with a marketplace`, { hint: `register it first: agent register --name ${rec.name}` });
    }
    const removed = await client.remove(rec.marketplace.key);
    // an agent being removed was kept only for this: finish its removal
    if (isBeingRemoved(rec)) await deps.registry.remove(rec.slug);
    else await deps.registry.update(rec.slug, { marketplace: undefined });
    agents.push({ name: rec.name, removed });
  }
  return { agents };
}

/** The cards of agents (both kinds), as they would be sent and served. No network. */
export async function agentCards(deps: FleetDeps, names: string[] | 'all'): Promise<{ agents: { name: string; marketplace: MarketplaceCard | null; a2a: Record<string, unknown>; note?: string }[] }> {
  const recs = await targets(deps, names);
  return {
    agents: recs.map((rec) => {
      const endpoint = advertisedEndpoint(deps, rec);
      try {
        return { name: rec.name, marketplace: marketplaceCard(rec, endpoint), a2a: a2aCard(rec, endpoint) };
      } catch (err) {
        return { name: rec.name, marketplace: null, a2a: a2aCard(rec, endpoint), note: messageOf(err) };
      }
    }),
  };
}
