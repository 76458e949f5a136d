import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { a2aCard, cardHash, canonicalJson, listingKey, marketplaceCard } from '../../src/marketplace/cards.js';
import { isRetryable, parseRetryAfter, retryDelayMs } from '../../src/marketplace/client.js';
import { buildMarketplaceServer } from '../../src/marketplace/server.js';
import type { AgentRecord } from '../../src/registry/registry.js';
import { validateA2aCard, validateOpenApi30 } from '../helpers/schemas.js';

const rec: AgentRecord = {
  name: 'DataAgent', slug: 'data-agent', description: 'Summarises numbers', capabilities: ['data', 'analytics'], category: 'data', model: 'none',
  version: '0.1.0', port: 8081, desired: 'running', status: 'running', createdAt: '', updatedAt: '',
  tools: [{ name: 'process_data', description: 'stats', parameters: { type: 'object', required: ['data'], properties: { data: { type: 'array' } } } }],
};

describe('agent cards', () => {
  it('builds the marketplace card with the seed fields from the record', () => {
    const c = marketplaceCard(rec, 'http://127.0.0.1:8081');
    expect(c).toMatchObject({ name: 'DataAgent', purpose: 'Summarises numbers', category: 'data', model: 'none', api_endpoint: 'http://127.0.0.1:8081', status: 'available' });
    expect(c.tools).toEqual(rec.tools);
    expect(c.agent_card_url).toBe('http://127.0.0.1:8081/.well-known/agent-card.json');
    expect(() => marketplaceCard({ ...rec, tools: undefined }, 'http://x')).toThrow(/start it once/);
  });

  it('hashes cards canonically: key order does not matter, content does', () => {
    const c = marketplaceCard(rec, 'http://127.0.0.1:8081');
    const reordered = JSON.parse(canonicalJson(c)) as typeof c;
    expect(cardHash(reordered)).toBe(cardHash(c));
    expect(cardHash({ ...c, tools: [{ ...c.tools[0]!, description: 'changed' }] })).not.toBe(cardHash(c));
    expect(listingKey('abc123', 'data-agent')).toBe('abc123-data-agent');
  });

  it('builds an A2A 1.0 AgentCard that validates against the A2A bundle and its required fields', () => {
    const card = a2aCard(rec, 'http://127.0.0.1:8081');
    expect(validateA2aCard(card)).toEqual([]);
    expect((card.skills as { id: string }[]).map((s) => s.id)).toEqual(['process_data']);
    expect(validateA2aCard({ ...card, skills: [{ id: 1 }] }).length).toBeGreaterThan(0);
  });
});

describe('retry policy', () => {
  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });

  it('backs off exponentially with jitter, capped, never under Retry-After', () => {
    const o = { baseDelayMs: 100, maxDelayMs: 1000, random: () => 0 };
    expect([1, 2, 3, 4, 5].map((n) => retryDelayMs(n, undefined, o))).toEqual([50, 100, 200, 400, 500]);
    expect(retryDelayMs(1, undefined, { ...o, random: () => 0.999 })).toBe(100);
    expect(retryDelayMs(1, 3000, o)).toBe(3000);
    expect(retryDelayMs(1, 3_600_000, o)).toBe(60_000);
  });

  it('retries network errors, 429 and 5xx, not other 4xx', () => {
    const err = (status?: number, code?: string) => ({ response: status ? { status } : undefined, code }) as never;
    expect(isRetryable(err(undefined, 'ECONNREFUSED'))).toBe(true);
    expect(isRetryable(err(undefined, 'ECONNABORTED'))).toBe(true);
    expect(isRetryable(err(429))).toBe(true);
    expect(isRetryable(err(503))).toBe(true);
    expect(isRetryable(err(400))).toBe(false);
    expect(isRetryable(err(401))).toBe(false);
    expect(isRetryable(err(404))).toBe(false);
  });
});

describe('reference marketplace server', () => {
  let app: FastifyInstance;
  let dataFile: string;
  const auth = { authorization: 'Bearer s3cret-token' };
  const card = marketplaceCard(rec, 'http://127.0.0.1:8081');

  beforeAll(async () => {
    dataFile = join(await mkdtemp(join(tmpdir(), 'nexus-mkt-')), 'listings.json');
    app = await buildMarketplaceServer({ apiKey: 's3cret-token', dataFile });
  });
  afterAll(() => app.close());

  it('requires the bearer token', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/agents' })).statusCode).toBe(401);
    const r = await app.inject({ method: 'GET', url: '/v1/agents', headers: { authorization: 'Bearer wrong' } });
    expect(r.statusCode).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer');
    expect(r.json().error.code).toBe('UNAUTHORIZED');
  });

  it('creates once, then updates the same listing (idempotent PUT by key)', async () => {
    const a = await app.inject({ method: 'PUT', url: '/v1/agents/ws-data-agent', headers: auth, payload: card });
    expect(a.statusCode).toBe(201);
    const b = await app.inject({ method: 'PUT', url: '/v1/agents/ws-data-agent', headers: auth, payload: { ...card, purpose: 'new' } });
    expect(b.statusCode).toBe(200);
    expect(b.json()).toMatchObject({ id: a.json().id, key: 'ws-data-agent', purpose: 'new', created_at: a.json().created_at });
    const list = await app.inject({ method: 'GET', url: '/v1/agents', headers: auth });
    expect(list.json().agents).toHaveLength(1);
  });

  it('rejects an invalid card, naming the field', async () => {
    const r = await app.inject({ method: 'PUT', url: '/v1/agents/bad', headers: auth, payload: { ...card, api_endpoint: 'not a url' } });
    expect(r.statusCode).toBe(400);
    expect(r.json().error).toMatchObject({ code: 'INVALID_CARD', message: expect.stringContaining('api_endpoint') });
    const r2 = await app.inject({ method: 'PUT', url: '/v1/agents/bad', headers: auth, payload: { ...card, tools: [] } });
    expect(r2.json().error.message).toMatch(/tools/);
  });

  it('searches by capability, category and text', async () => {
    await app.inject({ method: 'PUT', url: '/v1/agents/ws-math', headers: auth, payload: { ...card, name: 'MathAgent', category: 'math', capabilities: ['math'], tools: [{ name: 'evaluate_expression', description: 'calc', parameters: { type: 'object' } }] } });
    const names = async (qs: string) => (await app.inject({ method: 'GET', url: `/v1/agents?${qs}`, headers: auth })).json().agents.map((a: { name: string }) => a.name);
    expect(await names('capability=math')).toEqual(['MathAgent']);
    expect(await names('category=data')).toEqual(['DataAgent']);
    expect(await names('q=evaluate')).toEqual(['MathAgent']);
    expect(await names('')).toEqual(['DataAgent', 'MathAgent']);
  });

  it('deletes (204, then 404) and persists across restarts', async () => {
    expect((await app.inject({ method: 'DELETE', url: '/v1/agents/ws-math', headers: auth })).statusCode).toBe(204);
    expect((await app.inject({ method: 'DELETE', url: '/v1/agents/ws-math', headers: auth })).statusCode).toBe(404);
    const again = await buildMarketplaceServer({ apiKey: 'x', dataFile });
    const r = await again.inject({ method: 'GET', url: '/v1/agents/ws-data-agent', headers: { authorization: 'Bearer x' } });
    expect(r.json()).toMatchObject({ name: 'DataAgent', purpose: 'new' });
    await again.close();
  });

  it('documents itself with a valid OpenAPI 3.0 document', async () => {
    const doc = (await app.inject('/openapi.json')).json();
    expect(validateOpenApi30(doc)).toEqual([]);
    expect(Object.keys(doc.paths).sort()).toEqual(['/v1/agents', '/v1/agents/{key}']);
    expect(Object.keys(doc.paths['/v1/agents/{key}']).sort()).toEqual(['delete', 'get', 'put']);
  });
});
