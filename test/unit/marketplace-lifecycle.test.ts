import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from '../../src/cli/commands.js';
import { loadConfig } from '../../src/config/config.js';
import type { Engine } from '../../src/engine/engine.js';
import type { FleetDeps } from '../../src/fleet/context.js';
import { removeAgent, startAgents, stopAgents } from '../../src/fleet/manager.js';
import { registerAgents, syncListings } from '../../src/fleet/marketplace.js';
import { buildMarketplaceServer } from '../../src/marketplace/server.js';
import { LocalRegistry } from '../../src/registry/local.js';
import { faultProxy } from '../helpers/fault-proxy.js';

// Listings follow the lifecycle (issue 14 §6). The engine is a stand-in with no containers (the
// listing logic never depends on them); the marketplace and the agents' /health are real servers.
// The healthy start path against real containers is in test/integration/marketplace-lifecycle.

const KEY = 'lifecycle-marketplace-key-0123456789';
const engine = {
  ping: async () => ({}),
  listContainers: async () => [],
  stopContainer: async () => undefined,
  removeContainer: async () => undefined,
  removeImage: async () => undefined,
} as unknown as Engine;

let dir: string;
let market: FastifyInstance;
let proxy: Awaited<ReturnType<typeof faultProxy>>;
let health: FastifyInstance;
let deps: FleetDeps;

const listing = async (slug: string) => {
  const r = await market.inject({ method: 'GET', url: `/v1/agents/${(await deps.registry.get(slug))?.marketplace?.key ?? `none-${slug}`}`, headers: { authorization: `Bearer ${KEY}` } });
  return r.statusCode === 200 ? (r.json() as { status: string; key: string }) : undefined;
};
const allListings = async () => (await market.inject({ method: 'GET', url: '/v1/agents', headers: { authorization: `Bearer ${KEY}` } })).json().agents as { name: string; status: string }[];
const marketDown = () => proxy.faults.push(...Array.from({ length: 50 }, () => ({ status: 503 })));
const marketUp = () => void (proxy.faults.length = 0);
const writes = () => proxy.seen.filter((s) => s.method !== 'GET').length;

async function freePort(): Promise<number> {
  const s = Fastify();
  await s.listen({ port: 0, host: '127.0.0.1' });
  const port = (s.server.address() as { port: number }).port;
  await s.close();
  return port;
}

async function addAgent(name: string, slug: string, port: number): Promise<void> {
  await deps.registry.create(
    { name, slug, description: `${name} agent`, capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0' },
    { range: deps.config.ports.range, requested: port, isHostPortFree: async () => true },
  );
  await deps.registry.update(slug, { tools: [{ name: 'process_data', description: 'stats', parameters: { type: 'object' } }], status: 'running', desired: 'running' });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nexus-lifecycle-'));
  market = await buildMarketplaceServer({ apiKey: KEY });
  proxy = await faultProxy(market);
  health = Fastify();
  health.get('/health', async () => ({ status: 'ok' }));
  await health.listen({ port: 0, host: '127.0.0.1' });
  const env = { MARKETPLACE_URL: proxy.url, MARKETPLACE_API_KEY: KEY, NEXUS_PORT_RANGE: '1024-65535' };
  deps = { config: loadConfig(dir, env), registry: new LocalRegistry(dir), engine };
  await addAgent('LiveAgent', 'live-agent', (health.server.address() as { port: number }).port);
  await addAgent('DeadAgent', 'dead-agent', await freePort());
  await addAgent('QuietAgent', 'quiet-agent', await freePort()); // never registered
  const r = await registerAgents(deps, ['LiveAgent', 'DeadAgent'], { markUnavailable: true });
  expect(r.agents.map((a) => [a.name, a.outcome, a.status])).toEqual([['LiveAgent', 'created', 'available'], ['DeadAgent', 'created', 'unavailable']]);
});
afterAll(async () => {
  await proxy.close();
  await market.close();
  await health.close();
  await deps.registry.close();
  await rm(dir, { recursive: true, force: true });
});

describe('marketplace listings follow the lifecycle (issue 14 §6)', () => {
  it('stop marks a registered listing unavailable; stopping again sends nothing', async () => {
    const r = await stopAgents(deps, ['LiveAgent']);
    expect(r.listings).toEqual([{ name: 'LiveAgent', slug: 'live-agent', change: 'unavailable', outcome: 'done', status: 'unavailable' }]);
    expect((await listing('live-agent'))!.status).toBe('unavailable');
    expect((await deps.registry.get('live-agent'))!.marketplace).toMatchObject({ status: 'unavailable' });
    const n = writes();
    expect((await stopAgents(deps, ['LiveAgent'])).listings).toMatchObject([{ outcome: 'unchanged' }]);
    expect(writes()).toBe(n);
  });

  it('an agent that was never registered causes no marketplace request and no listings field', async () => {
    const n = proxy.seen.length;
    const r = await stopAgents(deps, ['QuietAgent']);
    expect(r).not.toHaveProperty('listings');
    expect(proxy.seen.length).toBe(n);
  });

  it('a healthy agent is marked available again, an unhealthy one stays unavailable', async () => {
    const r = await syncListings(deps, [{ slug: 'live-agent', change: 'available' }, { slug: 'dead-agent', change: 'available' }]);
    expect(r.map((l) => [l.name, l.outcome, l.status]).sort()).toEqual([['DeadAgent', 'unchanged', 'unavailable'], ['LiveAgent', 'done', 'available']]);
    expect((await listing('live-agent'))!.status).toBe('available');
  });

  it('with the marketplace failing, stop still succeeds, warns that the listing is stale and keeps the change pending; the next command retries it', async () => {
    marketDown();
    const r = await commands.stop(deps, { name: ['LiveAgent'] });
    marketUp();
    expect((r as { exitCode?: number }).exitCode ?? 0).toBe(0);
    expect(r.data.listings).toMatchObject([{ name: 'LiveAgent', change: 'unavailable', outcome: 'stale', error: { code: 'MARKETPLACE_ERROR' } }]);
    expect(r.human).toMatch(/warning: LiveAgent's marketplace listing is stale \(pending mark unavailable\): .*HTTP 503.*retried by the next/);
    expect((await deps.registry.get('live-agent'))!.marketplace!.pending).toBe('unavailable');
    expect((await listing('live-agent'))!.status).toBe('available'); // stale, as reported

    const next = await commands.stop(deps, { name: ['QuietAgent'] });
    expect(next.data.listings).toMatchObject([{ name: 'LiveAgent', outcome: 'done', status: 'unavailable' }]);
    expect(next.human).toContain('LiveAgent: marketplace listing marked unavailable');
    expect((await listing('live-agent'))!.status).toBe('unavailable');
    expect((await deps.registry.get('live-agent'))!.marketplace).not.toHaveProperty('pending');
  });

  it('an unreachable marketplace is stale too, and register retries what is pending', async () => {
    await syncListings(deps, [{ slug: 'live-agent', change: 'available' }]);
    const down = { ...deps, config: loadConfig(dir, { MARKETPLACE_URL: 'http://127.0.0.1:9', MARKETPLACE_API_KEY: KEY, NEXUS_PORT_RANGE: '1024-65535' }) };
    const r = await stopAgents(down, ['LiveAgent']);
    expect(r.listings).toMatchObject([{ outcome: 'stale', error: { code: 'MARKETPLACE_UNREACHABLE' } }]);
    expect((await deps.registry.get('live-agent'))!.marketplace!.pending).toBe('unavailable');
    const reg = await registerAgents(deps, ['DeadAgent'], { markUnavailable: true });
    expect(reg.listings).toMatchObject([{ name: 'LiveAgent', change: 'unavailable', outcome: 'done' }]);
    expect((await listing('live-agent'))!.status).toBe('unavailable');
  });

  it('remove unregisters a registered agent', async () => {
    await addAgent('GoneAgent', 'gone-agent', await freePort());
    await registerAgents(deps, ['GoneAgent'], { markUnavailable: true });
    expect((await allListings()).map((l) => l.name)).toContain('GoneAgent');
    const r = await commands.remove(deps, { name: 'GoneAgent' });
    expect(r.data).toMatchObject({ recordKept: false, listings: [{ name: 'GoneAgent', change: 'unregister', outcome: 'done' }] });
    expect(r.human).toContain('GoneAgent: marketplace listing removed');
    expect((await allListings()).map((l) => l.name)).not.toContain('GoneAgent');
    expect(await deps.registry.get('gone-agent')).toBeUndefined();
  });

  it('remove with the marketplace failing keeps the record until the listing is gone; start and register skip it; the next command finishes', async () => {
    marketDown();
    const r = await commands.remove(deps, { name: 'DeadAgent' });
    expect((r as { exitCode?: number }).exitCode ?? 0).toBe(0);
    expect(r.data).toMatchObject({ recordKept: true, listings: [{ name: 'DeadAgent', change: 'unregister', outcome: 'stale' }] });
    expect(r.human).toMatch(/record \(and port \d+\) stays until its marketplace listing is removed/);
    expect(r.human).toMatch(/warning: DeadAgent's marketplace listing is stale \(pending removal\)/);
    expect((await deps.registry.get('dead-agent'))!).toMatchObject({ desired: 'stopped', status: 'stopped', marketplace: { pending: 'unregister' } });
    const started = await startAgents(deps, ['DeadAgent']);
    expect(started.agents).toMatchObject([{ name: 'DeadAgent', outcome: 'failed', error: { message: expect.stringContaining('is being removed') } }]);
    // a lifecycle change does not override the pending removal
    expect((await stopAgents(deps, ['DeadAgent'])).listings).toMatchObject([{ name: 'DeadAgent', change: 'unregister', outcome: 'stale' }]);
    marketUp();
    const reg = await registerAgents(deps, 'all', { markUnavailable: true });
    expect(reg.agents.map((a) => a.name)).not.toContain('DeadAgent');
    expect(reg.listings).toMatchObject([{ name: 'DeadAgent', change: 'unregister', outcome: 'done' }]);
    expect(await deps.registry.get('dead-agent')).toBeUndefined();
    expect((await allListings()).map((l) => l.name)).not.toContain('DeadAgent');
  });

  it('without a marketplace configured, a status change is stale (CONFIG_INVALID); a status the listing already has is not flagged', async () => {
    await syncListings(deps, [{ slug: 'live-agent', change: 'available' }]);
    const none = { ...deps, config: loadConfig(dir, { NEXUS_PORT_RANGE: '1024-65535' }) };
    expect(await syncListings(none, [{ slug: 'live-agent', change: 'available' }])).toMatchObject([{ outcome: 'unchanged', status: 'available' }]);
    const r = await stopAgents(none, ['LiveAgent']);
    expect(r.listings).toMatchObject([{ outcome: 'stale', error: { code: 'CONFIG_INVALID', hint: expect.stringContaining('MARKETPLACE_URL') } }]);
    expect((await deps.registry.get('live-agent'))!.marketplace!.pending).toBe('unavailable');
    expect(await syncListings(deps, [])).toMatchObject([{ name: 'LiveAgent', outcome: 'done', status: 'unavailable' }]);
  });
});
