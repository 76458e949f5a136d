import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import writeFileAtomic from 'write-file-atomic';
import type { MarketplaceCard } from './cards.js';
import { isoNow, type Clock } from '../clock.js';

/** A listing: the card plus what the marketplace adds. Timestamps are ISO-8601. */
export interface Listing extends MarketplaceCard {
  id: string;
  key: string;
  created_at: string;
  updated_at: string;
}

const toolSchema = {
  type: 'object',
  required: ['name', 'description', 'parameters'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[a-z][a-z0-9_]{0,63}$' },
    description: { type: 'string', maxLength: 2000 },
    parameters: { type: 'object', additionalProperties: true, description: 'JSON Schema of the tool parameters' },
  },
} as const;

/** JSON Schema of an agent card as the marketplace accepts it. */
export const cardSchema = {
  $id: 'AgentCard',
  type: 'object',
  required: ['name', 'purpose', 'category', 'model', 'tools', 'api_endpoint'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 100 },
    purpose: { type: 'string', maxLength: 2000 },
    category: { type: 'string', minLength: 1, maxLength: 64 },
    model: { type: 'string', maxLength: 100 },
    tools: { type: 'array', minItems: 1, maxItems: 100, items: toolSchema },
    api_endpoint: { type: 'string', format: 'uri', pattern: '^https?://' },
    capabilities: { type: 'array', maxItems: 50, items: { type: 'string', maxLength: 64 } },
    version: { type: 'string', maxLength: 64 },
    agent_card_url: { type: 'string', format: 'uri' },
    status: { type: 'string', enum: ['available', 'unavailable'] },
  },
} as const;

const listingSchema = {
  type: 'object',
  properties: {
    ...cardSchema.properties,
    id: { type: 'string' },
    key: { type: 'string' },
    created_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
  },
} as const;

const errorSchema = {
  type: 'object',
  properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } } },
} as const;

const keyParams = { type: 'object', required: ['key'], properties: { key: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,128}$' } } } as const;

export interface MarketplaceServerOptions {
  /** The bearer token clients must send. */
  apiKey: string;
  /** JSON file the listings persist to (loaded at start, rewritten atomically on change). */
  dataFile?: string | undefined;
  logger?: boolean;
  /** Time for listings' timestamps (default: the system clock). */
  clock?: Clock;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * The reference marketplace (what `agent register` talks to): bearer-token auth, card
 * validation, create/update (idempotent PUT by the client's listing key), get, list with search
 * by capability/category/text, delete; persisted to a JSON file; OpenAPI 3 at GET /openapi.json.
 * Built, never listening: call `listen` yourself (tests use inject or port 0).
 */
export async function buildMarketplaceServer(opts: MarketplaceServerOptions): Promise<FastifyInstance> {
  if (!opts.apiKey) throw new Error('the marketplace needs an API key (MARKETPLACE_API_KEY)');
  const listings = new Map<string, Listing>();
  if (opts.dataFile) {
    try {
      const saved = JSON.parse(await readFile(opts.dataFile, 'utf8')) as { listings: Listing[] };
      for (const l of saved.listings) listings.set(l.key, l);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  let saving = Promise.resolve();
  const persist = () => {
    if (!opts.dataFile) return Promise.resolve();
    const file = opts.dataFile;
    saving = saving.then(() => writeFileAtomic(file, JSON.stringify({ listings: [...listings.values()] }, null, 2) + '\n', { mode: 0o600 }));
    return saving;
  };

  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: 512 * 1024 });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Nexus Delta reference marketplace', version: '1.0.0', description: 'Receives agent cards (register_agent).' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  app.addSchema(cardSchema);

  const expected = digest(opts.apiKey);
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/v1/')) return;
    const header = req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (!token || !timingSafeEqual(digest(token), expected)) {
      reply.header('www-authenticate', 'Bearer').code(401).send({ error: { code: 'UNAUTHORIZED', message: 'missing or invalid bearer token' } });
    }
  });
  app.setErrorHandler((err: { statusCode?: number; validation?: unknown; message: string }, _req, reply) => {
    const status = err.statusCode ?? 500;
    if (err.validation) return reply.code(400).send({ error: { code: 'INVALID_CARD', message: err.message } });
    reply.code(status).send({ error: { code: status >= 500 ? 'INTERNAL' : 'BAD_REQUEST', message: status >= 500 ? 'internal error' : err.message } });
  });

  app.get('/health', { schema: { hide: true } }, async () => ({ status: 'ok', listings: listings.size }));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.put<{ Params: { key: string }; Body: MarketplaceCard }>(
    '/v1/agents/:key',
    {
      schema: {
        summary: 'Create or update the listing under a client-chosen key (idempotent)',
        params: keyParams,
        body: { $ref: 'AgentCard#' },
        response: { 200: listingSchema, 201: listingSchema, 400: errorSchema, 401: errorSchema },
      },
    },
    async (req, reply) => {
      const now = isoNow(opts.clock);
      const prev = listings.get(req.params.key);
      const listing: Listing = {
        ...req.body,
        status: req.body.status ?? 'available',
        id: prev?.id ?? randomUUID(),
        key: req.params.key,
        created_at: prev?.created_at ?? now,
        updated_at: now,
      };
      listings.set(listing.key, listing);
      await persist();
      return reply.code(prev ? 200 : 201).send(listing);
    },
  );

  app.get<{ Params: { key: string } }>(
    '/v1/agents/:key',
    { schema: { summary: 'Get one listing', params: keyParams, response: { 200: listingSchema, 404: errorSchema } } },
    async (req, reply) => {
      const l = listings.get(req.params.key);
      if (!l) return reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no listing '${req.params.key}'` } });
      return l;
    },
  );

  app.get<{ Querystring: { capability?: string; category?: string; q?: string } }>(
    '/v1/agents',
    {
      schema: {
        summary: 'List listings, optionally filtered',
        querystring: { type: 'object', properties: { capability: { type: 'string' }, category: { type: 'string' }, q: { type: 'string' } } },
        response: { 200: { type: 'object', properties: { agents: { type: 'array', items: listingSchema } } } },
      },
    },
    async (req) => {
      const { capability, category, q } = req.query;
      const text = q?.toLowerCase();
      const agents = [...listings.values()].filter(
        (l) =>
          (!capability || (l.capabilities ?? []).includes(capability)) &&
          (!category || l.category === category) &&
          (!text || `${l.name} ${l.purpose} ${l.tools.map((t) => t.name).join(' ')}`.toLowerCase().includes(text)),
      );
      return { agents: agents.sort((a, b) => a.name.localeCompare(b.name)) };
    },
  );

  app.delete<{ Params: { key: string } }>(
    '/v1/agents/:key',
    { schema: { summary: 'Delete a listing', params: keyParams, response: { 204: { type: 'null' }, 404: errorSchema } } },
    async (req, reply) => {
      if (!listings.delete(req.params.key)) return reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no listing '${req.params.key}'` } });
      await persist();
      return reply.code(204).send();
    },
  );

  return app;
}
