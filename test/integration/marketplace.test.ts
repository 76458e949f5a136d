import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDemo } from '../../src/fleet/demo.js';
import { request } from '../../src/fleet/http.js';
import { removeAgent, startAgents, stopAgents } from '../../src/fleet/manager.js';
import { registerAgents, unregisterAgents } from '../../src/fleet/marketplace.js';
import { marketplaceCard } from '../../src/marketplace/cards.js';
import { MarketplaceClient, type RetryInfo } from '../../src/marketplace/client.js';
import { buildMarketplaceServer } from '../../src/marketplace/server.js';
import { loadConfig } from '../../src/config/config.js';
import { faultProxy } from '../helpers/fault-proxy.js';
import { validateA2aCard } from '../helpers/schemas.js';
import { makeWorkspace, type TestWorkspace } from '../helpers/workspace.js';

const KEY = 'test-marketplace-key-0123456789';
let ws: TestWorkspace;
let market: FastifyInstance;
let marketUrl: string;
let proxy: Awaited<ReturnType<typeof faultProxy>>;

beforeAll(async () => {
  ws = await makeWorkspace('9141-9160');
  market = await buildMarketplaceServer({ apiKey: KEY });
  marketUrl = await market.listen({ port: 0, host: '127.0.0.1' });
  proxy = await faultProxy(market);
  // the workspace talks to the marketplace through the fault proxy (no faults queued = pass-through)
  ws.deps.config = loadConfig(ws.dir, { MARKETPLACE_URL: proxy.url, MARKETPLACE_API_KEY: KEY });
  await runDemo(ws.deps);
});
afterAll(async () => {
  await proxy.close();
  await market.close();
  await ws.cleanup();
});

const listings = async () => (await new MarketplaceClient({ baseUrl: marketUrl, apiKey: KEY }).list()).sort((a, b) => a.name.localeCompare(b.name));
const puts = () => proxy.seen.filter((s) => s.method === 'PUT').length;

/** A valid call of each demo agent's first starter tool (issue 13 gave Image and Code agents real tools). */
const STARTER_PARAMETERS: Record<string, Record<string, unknown>> = {
  process_data: { data: [1, 2] },
  analyze_text: { text: 'a b' },
  evaluate_expression: { expression: '1+1' },
  // a 1x1 PNG
  image_info: { image: 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==' },
  analyze_code: { code: 'const a = 1;' },
};

describe('marketplace registration of the demo fleet', () => {
  it('register --all lists the five agents with endpoints that answer /execute', async () => {
    const r = await registerAgents(ws.deps, 'all');
    expect(r.failed).toBe(0);
    expect(r.agents.map((a) => a.outcome)).toEqual(Array(5).fill('created'));
    const ls = await listings();
    expect(ls.map((l) => l.name)).toEqual(['CodeAgent', 'DataAgent', 'ImageAgent', 'MathAgent', 'TextAgent']);
    for (const l of ls) {
      const tool = l.tools[0]!;
      const res = await request(`${l.api_endpoint}/execute`, { method: 'POST', json: { tool_name: tool.name, parameters: STARTER_PARAMETERS[tool.name] ?? {} }, timeoutMs: 3000 });
      expect(res.status, `${l.name} ${tool.name}`).toBe(200);
    }
    const rec = await ws.deps.registry.get('data-agent');
    expect(rec!.marketplace).toMatchObject({ id: ls[1]!.id, status: 'available', url: proxy.url });
  });

  it("each card's tools are exactly what the agent's /execute accepts, and its A2A card validates", async () => {
    for (const l of await listings()) {
      const tools = (await request(`${l.api_endpoint}/tools`, { timeoutMs: 2000 })).body as { tools: { name: string; parameters: unknown }[] };
      expect(l.tools.map((t) => [t.name, t.parameters])).toEqual(tools.tools.map((t) => [t.name, t.parameters]));
      const unknown = await request(`${l.api_endpoint}/execute`, { method: 'POST', json: { tool_name: 'not_a_tool' }, timeoutMs: 2000 });
      expect(unknown.status).toBe(404);
      const a2a = (await request(l.agent_card_url!, { timeoutMs: 2000 })).body as Record<string, any>;
      expect(validateA2aCard(a2a)).toEqual([]);
      expect(a2a.skills.map((s: { id: string }) => s.id)).toEqual(l.tools.map((t) => t.name));
      expect(a2a.supportedInterfaces[0].url).toBe(l.api_endpoint);
    }
  });

  it('registering again sends nothing and creates no duplicate', async () => {
    const before = puts();
    const r = await registerAgents(ws.deps, 'all');
    expect(r.agents.map((a) => a.outcome)).toEqual(Array(5).fill('unchanged'));
    expect(puts()).toBe(before);
    expect(await listings()).toHaveLength(5);
  });

  it('a changed tool is sent again and updates the same listing', async () => {
    const id = (await ws.deps.registry.get('data-agent'))!.marketplace!.id;
    const p = join(ws.dir, 'agents/data-agent/src/tools/process_data.ts');
    await writeFile(p, (await readFile(p, 'utf8')).replace("description: 'Summary statistics", "description: 'Fast summary statistics"));
    await startAgents(ws.deps, ['DataAgent']);
    const r = await registerAgents(ws.deps, ['DataAgent']);
    expect(r.agents[0]).toMatchObject({ outcome: 'updated', id });
    const l = (await listings()).find((x) => x.name === 'DataAgent')!;
    expect(l.tools[0]!.description).toMatch(/^Fast summary/);
    expect(await listings()).toHaveLength(5);
  });

  it('refuses an agent that is not healthy, or lists it as unavailable when asked', async () => {
    // stop itself marks the listing unavailable (issue 14 §6), so --mark-unavailable finds it so
    const stopped = await stopAgents(ws.deps, ['CodeAgent'], 1);
    expect(stopped.listings).toMatchObject([{ name: 'CodeAgent', change: 'unavailable', outcome: 'done', status: 'unavailable' }]);
    expect((await listings()).find((x) => x.name === 'CodeAgent')!.status).toBe('unavailable');
    const refused = await registerAgents(ws.deps, ['CodeAgent']);
    expect(refused.agents[0]).toMatchObject({ outcome: 'refused', error: { code: 'NOT_HEALTHY' } });
    const marked = await registerAgents(ws.deps, ['CodeAgent'], { markUnavailable: true });
    expect(marked.agents[0]).toMatchObject({ outcome: 'unchanged', status: 'unavailable' });
    expect((await listings()).find((x) => x.name === 'CodeAgent')!.status).toBe('unavailable');
  });

  it('unregister removes the listing and forgets it in the registry', async () => {
    await unregisterAgents(ws.deps, ['CodeAgent']);
    expect((await listings()).map((l) => l.name)).not.toContain('CodeAgent');
    expect((await ws.deps.registry.get('code-agent'))!.marketplace).toBeUndefined();
    await expect(unregisterAgents(ws.deps, ['CodeAgent'])).rejects.toMatchObject({ code: 'NOT_REGISTERED' });
  });

  it('a healthy start marks a stopped listing available again; when the marketplace fails, later', async () => {
    await stopAgents(ws.deps, ['TextAgent'], 1);
    expect((await listings()).find((x) => x.name === 'TextAgent')!.status).toBe('unavailable');
    proxy.faults.push(...Array.from({ length: 10 }, () => ({ status: 503 })));
    const stale = await startAgents(ws.deps, ['TextAgent']);
    proxy.faults.length = 0;
    expect(stale.agents[0]!.outcome).not.toBe('failed');
    expect(stale.listings).toMatchObject([{ name: 'TextAgent', change: 'available', outcome: 'stale', error: { code: 'MARKETPLACE_ERROR' } }]);
    expect((await ws.deps.registry.get('text-agent'))!.marketplace!.pending).toBe('available');
    expect((await listings()).find((x) => x.name === 'TextAgent')!.status).toBe('unavailable');
    const again = await startAgents(ws.deps, ['TextAgent']);
    expect(again.agents[0]!.outcome).toBe('unchanged');
    expect(again.listings).toMatchObject([{ name: 'TextAgent', change: 'available', outcome: 'done', status: 'available' }]);
    expect((await listings()).find((x) => x.name === 'TextAgent')!.status).toBe('available');
    expect((await ws.deps.registry.get('text-agent'))!.marketplace).not.toHaveProperty('pending');
  });

  it('remove unregisters a registered agent', async () => {
    const r = await removeAgent(ws.deps, 'ImageAgent');
    expect(r).toMatchObject({ recordKept: false, listings: [{ name: 'ImageAgent', change: 'unregister', outcome: 'done' }] });
    expect((await listings()).map((l) => l.name)).not.toContain('ImageAgent');
    expect(await ws.deps.registry.get('image-agent')).toBeUndefined();
  });

  it('never stores the API key in the registry', async () => {
    const text = await readFile(join(ws.dir, '.nexus/registry.json'), 'utf8');
    // the file holds the listings registered above (id, key, url, card hash), but never the key
    expect((JSON.parse(text) as { agents: Record<string, { marketplace?: { cardHash: string } }> }).agents['data-agent']!.marketplace?.cardHash).toMatch(/\w{8,}/);
    expect(text).not.toContain(KEY);
  });
});

describe('marketplace client against injected faults', () => {
  const card = () => ws.deps.registry.get('math-agent').then((r) => marketplaceCard(r!, 'http://127.0.0.1:9145'));
  const client = (retries: RetryInfo[], extra: Partial<ConstructorParameters<typeof MarketplaceClient>[0]> = {}) =>
    new MarketplaceClient({ baseUrl: proxy.url, apiKey: KEY, baseDelayMs: 20, maxDelayMs: 100, timeoutMs: 2000, onRetry: (i) => retries.push(i), ...extra });

  it('retries a 500 and succeeds', async () => {
    const retries: RetryInfo[] = [];
    proxy.faults.push({ status: 500 });
    const n = proxy.seen.length;
    const r = await client(retries).upsert('fault-500', await card());
    expect(r.created).toBe(true);
    expect(retries.map((x) => x.reason)).toEqual(['HTTP 500']);
    expect(proxy.seen.length - n).toBe(2);
  });

  it('honours Retry-After on 429', async () => {
    const retries: RetryInfo[] = [];
    proxy.faults.push({ status: 429, headers: { 'retry-after': '1' } });
    const r = await client(retries).upsert('fault-429', await card());
    expect(r.listing.key).toBe('fault-429');
    expect(retries).toEqual([{ attempt: 1, delayMs: 1000, reason: 'HTTP 429' }]);
  });

  it('retries a request that timed out', async () => {
    const retries: RetryInfo[] = [];
    proxy.faults.push({ delayMs: 1500 });
    const r = await client(retries, { timeoutMs: 300 }).upsert('fault-timeout', await card());
    expect(r.listing.key).toBe('fault-timeout');
    expect(retries.map((x) => x.reason)).toEqual(['timeout']);
  });

  it('gives up after the retries with a clear error on repeated 503', async () => {
    const retries: RetryInfo[] = [];
    proxy.faults.push({ status: 503 }, { status: 503 }, { status: 503 });
    await expect(client(retries, { retries: 2 }).upsert('fault-503', await card())).rejects.toMatchObject({
      code: 'MARKETPLACE_ERROR',
      message: expect.stringMatching(/HTTP 503 .*after 3 attempts/),
    });
    expect(retries).toHaveLength(2);
  });

  it('does not retry 401: a bad key is a clear, immediate error', async () => {
    const retries: RetryInfo[] = [];
    const n = proxy.seen.length;
    const err = await client(retries, { apiKey: 'wrong-key' }).upsert('fault-401', await card()).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MARKETPLACE_AUTH', message: expect.stringContaining('refused the API key (HTTP 401') });
    expect(String((err as Error).message)).not.toContain('wrong-key');
    expect(retries).toEqual([]);
    expect(proxy.seen.length - n).toBe(1);
  });

  it('reports a marketplace that is down, after its retries', async () => {
    const retries: RetryInfo[] = [];
    const dead = new MarketplaceClient({ baseUrl: 'http://127.0.0.1:9', apiKey: KEY, retries: 2, baseDelayMs: 10, onRetry: (i) => retries.push(i) });
    await expect(dead.upsert('x', await card())).rejects.toMatchObject({ code: 'MARKETPLACE_UNREACHABLE', message: expect.stringMatching(/ECONNREFUSED.*after 3 attempts/) });
    expect(retries.map((r) => r.reason)).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
  });

  it('register --all reports each failure and counts it', async () => {
    const deps = { ...ws.deps, config: loadConfig(ws.dir, { MARKETPLACE_URL: 'http://127.0.0.1:9', MARKETPLACE_API_KEY: KEY }) };
    const cl = new MarketplaceClient({ baseUrl: 'http://127.0.0.1:9', apiKey: KEY, retries: 0 });
    await startAgents(ws.deps, ['MathAgent']);
    // a changed marketplace URL means the cards must be sent again: all of them fail here
    const r = await registerAgents(deps, ['MathAgent', 'TextAgent'], { client: cl });
    expect(r.failed).toBe(2);
    expect(r.agents.every((a) => a.outcome === 'failed' && a.error?.code === 'MARKETPLACE_UNREACHABLE')).toBe(true);
  });
});

