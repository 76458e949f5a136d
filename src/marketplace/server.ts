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
    agent_card_url: { type: 'string', format: 'uri', pattern: '^https?://' },
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
  /** Deepest nesting of arrays/objects a request body may have (default MAX_JSON_DEPTH). Tests raise it to reach the serialisation check behind it. */
  maxJsonDepth?: number;
  /** Time for listings' timestamps (default: the system clock). */
  clock?: Clock;
}

/**
 * Deepest array/object nesting a request body may have. A card is 4 levels down to a tool's
 * `parameters`; real JSON Schemas stay far below this. Deeper bodies are refused with 400 before
 * parsing, so nothing stack-bound (JSON.stringify, the response serialiser, a save) ever meets them.
 */
export const MAX_JSON_DEPTH = 64;

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** An error fastify's error handler answers with its status (4xx: the message is shown). */
function httpError(statusCode: number, message: string, code?: string): Error & { statusCode: number; code?: string } {
  return Object.assign(new Error(message), { statusCode, ...(code ? { code } : {}) });
}

/**
 * Deepest nesting of `[`/`{` in a JSON text, counted outside strings; stops counting once past
 * `limit`. Linear time, constant stack: safe on any input.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** The listings of a data file, checked enough that a bad file stops the start instead of serving junk. */
function parseDataFile(text: string, file: string): Listing[] {
  const saved = JSON.parse(text) as { listings?: unknown };
  if (!saved || !Array.isArray(saved.listings) || !saved.listings.every((l) => l && typeof (l as Listing).key === 'string')) {
    throw new Error(`${file}: not a marketplace data file ({"listings": [{"key": ...}, ...]})`);
  }
  return saved.listings as Listing[];
}

/**
 * The reference marketplace (what `agent register` talks to): bearer-token auth, card
 * validation, create/update (idempotent PUT by the client's listing key), get, list with search
 * by capability/category/text, delete; persisted to a JSON file; OpenAPI 3 at GET /openapi.json.
 * Built, never listening: call `listen` yourself (tests use inject or port 0).
 *
 * Auth is by route, never by URL: the /v1 routes live in one encapsulated plugin whose onRequest
 * hook checks the token, so however a client spells the path (percent-escapes, dot segments),
 * a request that the router sends to a /v1 handler has passed the check first.
 * Saving: one save at a time, each writing the latest state; a failed save answers 500, rolls
 * back that change, and never blocks the next one.
 */
export async function buildMarketplaceServer(opts: MarketplaceServerOptions): Promise<FastifyInstance> {
  if (!opts.apiKey) throw new Error('the marketplace needs an API key (MARKETPLACE_API_KEY)');
  const maxDepth = opts.maxJsonDepth ?? MAX_JSON_DEPTH;
  const listings = new Map<string, Listing>();
  if (opts.dataFile) {
    try {
      for (const l of parseDataFile(await readFile(opts.dataFile, 'utf8'), opts.dataFile)) listings.set(l.key, l);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  let saving: Promise<void> = Promise.resolve();
  const persist = (): Promise<void> => {
    const file = opts.dataFile;
    if (!file) return Promise.resolve();
    // a failed save fails its own request only: the next one starts from a settled chain
    saving = saving
      .catch(() => undefined)
      .then(() => writeFileAtomic(file, JSON.stringify({ listings: [...listings.values()] }, null, 2) + '\n', { mode: 0o600 }));
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

  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (jsonDepthExceeds(body as string, maxDepth)) return done(httpError(400, `the body nests arrays/objects deeper than ${maxDepth} levels`, 'INVALID_CARD'), undefined);
    parseJson(req, body as string, done);
  });

  app.setErrorHandler((err: { statusCode?: number; validation?: unknown; message: string; code?: string }, _req, reply) => {
    const status = err.statusCode ?? 500;
    if (err.validation || err.code === 'INVALID_CARD') return reply.code(400).send({ error: { code: 'INVALID_CARD', message: err.message } });
    reply.code(status).send({ error: { code: status >= 500 ? 'INTERNAL' : 'BAD_REQUEST', message: status >= 500 ? 'internal error' : err.message } });
  });

  // unknown routes answer in the API's error shape, without echoing the path
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'no such route' } }));
  // public: no listing data
  app.get('/health', { schema: { hide: true } }, async () => ({ status: 'ok', listings: listings.size }));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  const expected = digest(opts.apiKey);
  await app.register(
    async (v1) => {
      v1.addHook('onRequest', async (req, reply) => {
        const header = req.headers.authorization ?? '';
        const token = header.startsWith('Bearer ') ? header.slice(7) : '';
        if (!token || !timingSafeEqual(digest(token), expected)) {
          return reply.header('www-authenticate', 'Bearer').code(401).send({ error: { code: 'UNAUTHORIZED', message: 'missing or invalid bearer token' } });
        }
      });
      agentRoutes(v1, listings, persist, opts.clock);
    },
    { prefix: '/v1' },
  );

  return app;
}

/** The /v1/agents routes. Registered only inside the authenticated plugin above. */
function agentRoutes(app: FastifyInstance, listings: Map<string, Listing>, persist: () => Promise<void>, clock?: Clock): void {
  app.put<{ Params: { key: string }; Body: MarketplaceCard }>(
    '/agents/:key',
    {
      schema: {
        summary: 'Create or update the listing under a client-chosen key (idempotent)',
        params: keyParams,
        body: { $ref: 'AgentCard#' },
        response: { 200: listingSchema, 201: listingSchema, 400: errorSchema, 401: errorSchema },
      },
    },
    async (req, reply) => {
      const now = isoNow(clock);
      const prev = listings.get(req.params.key);
      const listing: Listing = {
        ...req.body,
        status: req.body.status ?? 'available',
        id: prev?.id ?? randomUUID(),
        key: req.params.key,
        created_at: prev?.created_at ?? now,
        updated_at: now,
      };
      try {
        JSON.stringify(listing);
      } catch {
        throw httpError(400, 'the card cannot be serialised as JSON', 'INVALID_CARD');
      }
      listings.set(listing.key, listing);
      try {
        await persist();
      } catch (err) {
        if (listings.get(listing.key) === listing) {
          if (prev) listings.set(listing.key, prev);
          else listings.delete(listing.key);
        }
        throw err;
      }
      return reply.code(prev ? 200 : 201).send(listing);
    },
  );

  app.get<{ Params: { key: string } }>(
    '/agents/:key',
    { schema: { summary: 'Get one listing', params: keyParams, response: { 200: listingSchema, 404: errorSchema } } },
    async (req, reply) => {
      const l = listings.get(req.params.key);
      if (!l) return reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no listing '${req.params.key}'` } });
      return l;
    },
  );

  app.get<{ Querystring: { capability?: string; category?: string; q?: string } }>(
    '/agents',
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
    '/agents/:key',
    { schema: { summary: 'Delete a listing', params: keyParams, response: { 204: { type: 'null' }, 404: errorSchema } } },
    async (req, reply) => {
      const prev = listings.get(req.params.key);
      if (!prev) return reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no listing '${req.params.key}'` } });
      listings.delete(req.params.key);
      try {
        await persist();
      } catch (err) {
        if (!listings.has(req.params.key)) listings.set(req.params.key, prev);
        throw err;
      }
      return reply.code(204).send();
    },
  );
}
