import { createHash } from 'node:crypto';
import { buildA2aCard } from '../runtime/card.js';
import type { AgentRecord, ToolSummary } from '../registry/registry.js';

/**
 * The marketplace's agent card (the NexusDelta SDK's `register_agent(agent_card)` fields), built
 * from the agent record: the single source of truth for both cards.
 * `api_endpoint` is the agent's base URL (callers POST `{api_endpoint}/execute`); `tools` carry
 * their JSON Schema parameters exactly as the agent's GET /tools reports them.
 */
export interface MarketplaceCard {
  name: string;
  purpose: string;
  category: string;
  model: string;
  tools: ToolSummary[];
  api_endpoint: string;
  capabilities: string[];
  version: string;
  /** Where the agent serves its A2A AgentCard. */
  agent_card_url: string;
  /** available, or unavailable when registered while its container is not healthy. */
  status: 'available' | 'unavailable';
}

/**
 * Build the marketplace card of a record. Pure.
 * @param endpoint the agent's reachable base URL (port binding, or the router URL when configured)
 * @throws Error when the record has no tools yet (the agent was never started, so /tools is unknown)
 */
export function marketplaceCard(record: AgentRecord, endpoint: string, status: MarketplaceCard['status'] = 'available'): MarketplaceCard {
  if (!record.tools?.length) throw new Error(`agent '${record.name}' has no recorded tools yet; start it once first`);
  return {
    name: record.name,
    purpose: record.description,
    category: record.category,
    model: record.model,
    tools: record.tools.map((t) => ({ name: t.name, description: t.description, parameters: t.parameters })),
    api_endpoint: endpoint,
    capabilities: record.capabilities,
    version: record.version,
    agent_card_url: `${endpoint}/.well-known/agent-card.json`,
    status,
  };
}

/** The A2A AgentCard (protocol 1.0) of a record, the same one the agent serves itself. Pure. */
export function a2aCard(record: AgentRecord, endpoint: string): Record<string, unknown> {
  return buildA2aCard(
    { name: record.name, description: record.description, version: record.version, capabilities: record.capabilities, tools: record.tools ?? [] },
    endpoint,
  );
}

/** JSON with object keys sorted at every level, so equal cards hash equally. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v as object)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** sha256 (hex) of the canonical card: unchanged cards are not sent again. */
export function cardHash(card: MarketplaceCard): string {
  return createHash('sha256').update(canonicalJson(card)).digest('hex');
}

/**
 * The stable key a listing is upserted under: workspace id + slug, so registering twice (even
 * after the registry lost the marketplace id) updates the same listing instead of adding one.
 */
export function listingKey(workspaceId: string, slug: string): string {
  return `${workspaceId}-${slug}`;
}
