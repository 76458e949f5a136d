import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { buildMarketplaceServer } from '../../src/marketplace/server.js';
import type { StreamEvent } from '../../src/server/events-bus.js';
import { createManager, type Manager } from '../../src/server/manager.js';
import { createToken } from '../../src/server/tokens.js';
import { BOOTSTRAP } from '../helpers/manager.js';

// The agent view's record routes (src/server/agent-records.ts): history, listing, register and
// unregister, on the fake engine with a real marketplace server and a real /health endpoint.
const KEY = 'records-marketplace-key-0123456789';
let dir: string;
let market: FastifyInstance;
let health: FastifyInstance;
let m: Manager;
let viewer: string;
const seen: StreamEvent[] = [];

const call = (method: 'GET' | 'POST', url: string, token = BOOTSTRAP, payload?: unknown) =>
  m.app.inject({ method, url: `/api/v1${url}`, headers: { authorization: `Bearer ${token}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nexus-records-'));
  market = await buildMarketplaceServer({ apiKey: KEY });
  const marketUrl = await market.listen({ port: 0, host: '127.0.0.1' });
  health = Fastify();
  health.get('/health', async () => ({ status: 'ok' }));
  await health.listen({ port: 0, host: '127.0.0.1' });
  const env = { NEXUS_MANAGER_TOKEN: BOOTSTRAP, MARKETPLACE_URL: marketUrl, MARKETPLACE_API_KEY: KEY, NEXUS_PORT_RANGE: '1024-65535', NEXUS_OFFLINE: 'always' };
  m = await createManager({ config: loadConfig(dir, env), env, engine: new FakeEngine() });
  const port = (health.server.address() as { port: number }).port;
  await m.fleet.deps.registry.create(
    { name: 'LiveAgent', slug: 'live-agent', description: 'a live agent', capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0' },
    { range: m.fleet.deps.config.ports.range, requested: port, isHostPortFree: async () => true },
  );
  await m.fleet.deps.registry.update('live-agent', { tools: [{ name: 'process_data', description: 'stats', parameters: { type: 'object' } }], status: 'running', desired: 'running' });
  viewer = (await createToken({ scope: 'viewer' }, { workspace: dir })).token;
  m.events.subscribe({ topic: 'agents' }, { send: (e) => void seen.push(JSON.parse(e.json)), bufferedBytes: () => 0, close: () => undefined });
});
afterAll(async () => {
  await m?.close();
  await market?.close();
  await health?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('agent records routes', () => {
  it('GET history: the registry\'s lifecycle events, oldest first; 404 for an unknown agent', async () => {
    const r = await call('GET', '/agents/LiveAgent/history', viewer);
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ name: 'LiveAgent', slug: 'live-agent', history: [{ event: 'created', status: 'created' }, { event: 'started', status: 'running' }] });
    expect((await call('GET', '/agents/ghost/history')).json().error.code).toBe('AGENT_NOT_FOUND');
  });

  it('register (admin) lists the card and publishes its outcome; the listing shows it; a viewer gets 403; unregister removes it', async () => {
    expect((await call('GET', '/agents/live-agent/listing', viewer)).json()).toEqual({ name: 'LiveAgent', slug: 'live-agent', configured: true, listing: null });
    expect((await call('POST', '/agents/live-agent/register', viewer)).statusCode).toBe(403);
    const reg = await call('POST', '/agents/live-agent/register', BOOTSTRAP, {});
    expect(reg.statusCode).toBe(200);
    expect(reg.json()).toMatchObject({ failed: 0, agents: [{ slug: 'live-agent', outcome: 'created', status: 'available' }] });
    const listed = (await call('GET', '/agents/live-agent/listing', viewer)).json();
    expect(listed.listing).toMatchObject({ status: 'available', url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:/) });
    expect(JSON.stringify(listed)).not.toContain(KEY);
    expect(seen.find((e) => e.type === 'fleet.agent' && (e.data as { phase: string }).phase === 'register')).toMatchObject({ agent: 'live-agent', data: { outcome: 'created' } });

    expect((await call('POST', '/agents/live-agent/unregister', viewer)).statusCode).toBe(403);
    const un = await call('POST', '/agents/live-agent/unregister');
    expect(un.json()).toEqual({ agents: [{ name: 'LiveAgent', removed: true }] });
    expect((await call('GET', '/agents/live-agent/listing')).json().listing).toBeNull();
    expect(seen.find((e) => e.type === 'fleet.agent' && (e.data as { phase: string }).phase === 'unregister')).toMatchObject({ agent: 'live-agent', data: { outcome: 'unregistered' } });
    // never registered now: unregister says so
    const again = await call('POST', '/agents/live-agent/unregister');
    expect([again.statusCode, again.json().error.code]).toEqual([404, 'NOT_REGISTERED']);
  });
});
