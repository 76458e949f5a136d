import pLimit from 'p-limit';
import { AppError, messageOf } from '../errors.js';
import { a2aCard, cardHash, listingKey, marketplaceCard, type MarketplaceCard } from '../marketplace/cards.js';
import { MarketplaceClient, type MarketplaceClientOptions } from '../marketplace/client.js';
import type { AgentRecord } from '../registry/registry.js';
import { agentUrl, workspaceId, type FleetDeps } from './context.js';
import { probeHealth } from './health.js';
import { resolveTargets as targets } from './manager.js';

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
 */
export async function registerAgents(
  deps: FleetDeps,
  names: string[] | 'all',
  opts: { markUnavailable?: boolean; client?: MarketplaceClient } = {},
): Promise<{ agents: RegisterOutcome[]; failed: number }> {
  const client = opts.client ?? marketplaceClient(deps);
  const recs = await targets(deps, names);
  const wsId = workspaceId(deps.config.workspace);
  const limit = pLimit(4);
  const agents = await Promise.all(
    recs.map((rec) =>
      limit(async (): Promise<RegisterOutcome> => {
        const endpoint = advertisedEndpoint(deps, rec);
        const out: RegisterOutcome = { name: rec.name, slug: rec.slug, outcome: 'failed', api_endpoint: endpoint };
        try {
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
  return { agents, failed: agents.filter((a) => a.outcome === 'failed' || a.outcome === 'refused').length };
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
    await deps.registry.update(rec.slug, { marketplace: undefined });
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
