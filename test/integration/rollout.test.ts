import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../src/fleet/http.js';
import { createAgent } from '../../src/fleet/manager.js';
import { rolloutAgent } from '../../src/fleet/rollout.js';
import { scaleAgent } from '../../src/fleet/scale.js';
import { makeWorkspace, type TestWorkspace } from '../helpers/workspace.js';

// A rollout under load through the local router (real engine, real agents, real HTTP).
const ROUTER = 9727;
const URL_BASE = `http://127.0.0.1:${ROUTER}/agents/data-agent`;
let ws: TestWorkspace;

async function setManifestVersion(version: string): Promise<void> {
  const path = join(ws.dir, 'agents/data-agent/agent.json');
  const m = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  await writeFile(path, JSON.stringify({ ...m, version }, null, 2));
}

/**
 * 10 concurrent clients calling a tool through the router until `until` settles; counts answers
 * that are not 200. `keepAlive`: each client reuses its connection (undici's default agent:
 * keep-alive, pipelining 1), as real clients do; otherwise each request opens a new connection.
 * No client retries: every failure is counted.
 */
async function underLoad<T>(until: Promise<T>, keepAlive = true): Promise<{ outcome: PromiseSettledResult<T>; ok: number; failed: { status: number; error?: string }[] }> {
  let done = false;
  const settled = until.then((value) => ({ status: 'fulfilled' as const, value }), (reason: unknown) => ({ status: 'rejected' as const, reason }));
  void settled.then(() => (done = true));
  let ok = 0;
  const failed: { status: number; error?: string }[] = [];
  const dispatcher = keepAlive ? new Agent({ pipelining: 1, connections: 10 }) : new Agent({ pipelining: 0 });
  const client = async () => {
    while (!done) {
      const r = await undiciRequest(`${URL_BASE}/execute`, {
        method: 'POST',
        dispatcher,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tool_name: 'process_data', parameters: { data: [1, 2, 3] } }),
        headersTimeout: 10_000,
      }).then(async (res) => ({ status: res.statusCode, body: await res.body.text() }), (e: Error & { code?: string }) => ({ status: 0, body: `${e.code ?? ''} ${e.message}` }));
      if (r.status === 200) ok++;
      else failed.push({ status: r.status, error: r.body.slice(0, 200) });
    }
  };
  await Promise.all(Array.from({ length: 10 }, client));
  await dispatcher.close();
  return { outcome: await settled, ok, failed };
}

const servedVersion = async () => ((await request(`${URL_BASE}/health`, { timeoutMs: 5000 })).body as { version: string }).version;

beforeAll(async () => {
  ws = await makeWorkspace('9724-9726');
  await createAgent(ws.deps, { name: 'DataAgent', capabilities: ['data'] });
  await scaleAgent(ws.deps, 'DataAgent', 2, { routerPort: ROUTER });
}, 180_000);
afterAll(() => ws.cleanup());

describe('agent rollout through the local router', () => {
  it("rolls out a new version under load: zero failed requests of keep-alive clients (counted, no retries)", async () => {
    expect(await servedVersion()).toBe('0.1.0');
    await setManifestVersion('0.2.0');
    const { outcome, ok, failed } = await underLoad(rolloutAgent(ws.deps, 'DataAgent', { routerPort: ROUTER }));
    expect(outcome.status, outcome.status === 'rejected' ? String(outcome.reason) : '').toBe('fulfilled');
    console.log(`rollout under load (keep-alive clients): ${ok} requests answered 200, ${failed.length} failed`, failed.slice(0, 20));
    expect(ok).toBeGreaterThan(0);
    expect(failed).toEqual([]);
    expect(await servedVersion()).toBe('0.2.0');
    // the primary's host port serves the new version too
    expect(((await request('http://127.0.0.1:9724/health', { timeoutMs: 2000 })).body as { version: string }).version).toBe('0.2.0');
  }, 180_000);

  it('rolls back a version whose health check fails; the old version keeps serving', async () => {
    await setManifestVersion('0.3.0');
    // a build that crashes at start: it never passes a health check
    await appendFile(join(ws.dir, 'agents/data-agent/src/index.ts'), "\nthrow new Error('broken release');\n");
    const { outcome, failed } = await underLoad(rolloutAgent(ws.deps, 'DataAgent', { routerPort: ROUTER, healthTimeoutMs: 20_000 }));
    expect(outcome.status).toBe('rejected');
    expect((outcome as PromiseRejectedResult).reason).toMatchObject({ code: 'ROLLOUT_UNHEALTHY' });
    expect(failed).toEqual([]);
    expect(await servedVersion()).toBe('0.2.0');
    expect(await ws.deps.registry.get('data-agent')).toMatchObject({ version: '0.2.0' });
  }, 180_000);
});
