import { Writable } from 'node:stream';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createManager, type Manager } from '../../src/server/manager.js';
import { createToken, revokeToken } from '../../src/server/tokens.js';
import { BOOTSTRAP } from '../helpers/manager.js';
import { makeWorkspace, type TestWorkspace } from '../helpers/workspace.js';

// The manager on the REAL engine over real HTTP: the auth matrix on the agents routes, the agents
// API end to end, and the gateway over 3 replicas with one killed under load. Ports 9401-9430.
const docker = new Docker();
const ROUTER_PORT = 9430;
let ws: TestWorkspace;
let m: Manager;
let base: string;
let log = '';
const tokens: Record<'viewer' | 'operator' | 'admin' | 'expired' | 'revoked', string> = {} as never;

const call = async (method: string, path: string, token: string | undefined, body?: unknown) => {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, retryAfter: res.headers.get('retry-after') };
};

beforeAll(async () => {
  ws = await makeWorkspace('9401-9404');
  const stream = new Writable({ write: (chunk, _enc, done) => ((log += String(chunk)), done()) });
  m = await createManager({ config: ws.config, env: { ...process.env, NEXUS_MANAGER_TOKEN: BOOTSTRAP }, log: { level: 'trace', stream }, gateway: { breakerHalfOpenAfterMs: 2000 } });
  base = await m.app.listen({ host: '127.0.0.1', port: 0 });
  const deps = { workspace: ws.dir };
  for (const scope of ['viewer', 'operator', 'admin'] as const) tokens[scope] = (await createToken({ scope, label: scope }, deps)).token;
  // expired: minted two days ago with a one-hour lifetime
  tokens.expired = (await createToken({ scope: 'admin', ttl: '1h' }, { ...deps, clock: new ManualClock(Date.now() - 2 * 86_400_000) })).token;
  const revoked = await createToken({ scope: 'admin' }, deps);
  await revokeToken({ jti: revoked.jti }, deps);
  tokens.revoked = revoked.token;
}, 60_000);
afterAll(async () => {
  await m?.close();
  await ws?.cleanup();
}, 60_000);

describe('auth on the real agents routes', () => {
  it('no, bad, expired or revoked token: 401 on every route class', async () => {
    for (const t of [undefined, 'not-a-token', `${tokens.admin.slice(0, -4)}AAAA`, tokens.expired, tokens.revoked]) {
      for (const [method, path, body] of [['GET', '/agents?stats=false'], ['POST', '/agents/x/start'], ['POST', '/agents', { name: 'X' }]] as const) {
        const r = await call(method, path, t, body);
        expect(r.status, `${method} ${path} with ${t?.slice(0, 12)}`).toBe(401);
        expect(r.json.error.code).toBe('UNAUTHORIZED');
      }
    }
  });

  it('viewer reads but may not start; operator starts but may not create; admin creates', async () => {
    expect((await call('GET', '/agents?stats=false', tokens.viewer)).status).toBe(200);
    expect((await call('POST', '/agents/MatrixAgent/start', tokens.viewer)).status).toBe(403);
    expect((await call('POST', '/agents/MatrixAgent/execute', tokens.viewer, { tool_name: 'echo' })).status).toBe(403);
    expect((await call('POST', '/agents', tokens.operator, { name: 'MatrixAgent' })).status).toBe(403);
    expect((await call('DELETE', '/agents/MatrixAgent', tokens.operator)).status).toBe(403);
    const created = await call('POST', '/agents', tokens.admin, { name: 'MatrixAgent' });
    expect(created.status).toBe(201);
    // operator passes the scope check on a lifecycle route (stop is carried out)
    const stopped = await call('POST', '/agents/MatrixAgent/stop', tokens.operator);
    expect(stopped.status).toBe(200);
    expect((await call('DELETE', '/agents/MatrixAgent', tokens.admin)).json).toMatchObject({ slug: 'matrix-agent', recordKept: false });
  });
});

describe('agents API end to end (real engine)', () => {
  it('create, start, list with health, execute through the gateway, stop (then 503), delete', async () => {
    expect((await call('POST', '/agents', tokens.admin, { name: 'DataAgent', capabilities: ['data'] })).status).toBe(201);
    const start = await call('POST', '/agents/DataAgent/start', tokens.operator);
    expect(start.status, JSON.stringify(start.json)).toBe(200);
    expect(start.json).toMatchObject({ ok: 1, failed: 0, agents: [{ slug: 'data-agent', outcome: 'started' }] });
    const list = await call('GET', '/agents', tokens.viewer);
    const a = list.json.agents.find((x: { slug: string }) => x.slug === 'data-agent');
    expect(a).toMatchObject({ container: 'running', health: 'healthy', desired: 'running', inRotation: 1, replicas: [{ replica: 0, state: 'running', inRotation: true }] });
    expect(a.stats.memoryBytes).toBeGreaterThan(1024 * 1024);
    const ex = await call('POST', '/agents/data-agent/execute', tokens.operator, { tool_name: 'process_data', parameters: { data: [1, 2, 3, 4, 5] } });
    expect(ex.status).toBe(200);
    expect(ex.json.result).toMatchObject({ sum: 15, count: 5 });
    const logs = await call('GET', '/agents/DataAgent/logs?tail=20', tokens.viewer);
    expect(logs.json).toMatchObject({ name: 'DataAgent', logs: expect.any(String) });
  }, 180_000);

  it('gateway over 3 replicas under load: one killed, only calls in flight on it fail; 503 with Retry-After when none is healthy', async () => {
    const scaled = await call('POST', '/agents/DataAgent/scale', tokens.operator, { replicas: 3, routerPort: ROUTER_PORT });
    expect(scaled.status, JSON.stringify(scaled.json)).toBe(200);
    const replicas = (await call('GET', '/agents/DataAgent?stats=false', tokens.viewer)).json.replicas as { id: string; name: string; inRotation: boolean; url: string }[];
    expect(replicas.map((r) => r.inRotation)).toEqual([true, true, true]);
    const victim = replicas[2]!;

    // bounded load: 240 calls, 8 at a time; each call sorts 60 000 numbers (tens of ms), so calls are in flight on every replica
    const data = Array.from({ length: 60_000 }, (_, i) => (i * 7919) % 1000);
    const total = 240;
    const outcomes: { status: number; code?: string }[] = [];
    let sent = 0;
    const worker = async () => {
      while (sent < total) {
        sent++;
        const r = await call('POST', '/agents/DataAgent/execute', tokens.operator, { tool_name: 'process_data', parameters: { data } });
        outcomes.push({ status: r.status, code: r.json?.error?.code });
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));
    // kill once the victim is busy; track the most calls in flight on it from just before the kill until it is gone
    while (m.gateway.replicaInflight(victim.id) < 1 && sent < total) await new Promise((r) => setImmediate(r));
    let inflightOnVictim = m.gateway.replicaInflight(victim.id);
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        inflightOnVictim = Math.max(inflightOnVictim, m.gateway.replicaInflight(victim.id));
        await new Promise((r) => setImmediate(r));
      }
    })();
    const killedAt = sent;
    await docker.getContainer(victim.id).kill();
    await new Promise((r) => setTimeout(r, 200));
    sampling = false;
    await sampler;
    await load;

    const failed = outcomes.filter((o) => o.status !== 200);
    expect(killedAt).toBeLessThan(total);
    expect(outcomes).toHaveLength(total);
    // every failure is a call that had reached the killed replica (502, not retried: not idempotent) ...
    for (const f of failed) expect(f).toEqual({ status: 502, code: 'AGENT_CALL_FAILED' });
    // ... and there are no more of them than calls in flight on it when it died
    expect(failed.length).toBeLessThanOrEqual(inflightOnVictim);
    // the gateway saw failures on the killed replica only (the others never failed a call)
    const attempts = (await m.app.metrics.getSingleMetric('nexus_gateway_attempts_total')!.get()).values;
    const failuresOn = (id: string) => attempts.filter((v) => v.labels.replica === id && v.labels.outcome === 'failure').reduce((n, v) => n + v.value, 0);
    for (const r of replicas.slice(0, 2)) expect(failuresOn(r.id), r.name).toBe(0);
    expect(failuresOn(victim.id)).toBeGreaterThanOrEqual(failed.length);
    console.log(`gateway kill test: ${failed.length} failed of ${total} (in flight on the killed replica: up to ${inflightOnVictim})`);

    // none healthy: pause every replica (paused containers are out of rotation), then 503 + Retry-After
    for (const r of replicas) await docker.getContainer(r.id).pause().catch(() => undefined);
    try {
      m.context.snapshot.invalidate();
      const none = await call('POST', '/agents/DataAgent/execute', tokens.operator, { tool_name: 'process_data', parameters: { data: [1] } });
      expect(none.status).toBe(503);
      expect(none.json.error.code).toBe('AGENT_UNAVAILABLE');
      expect(Number(none.retryAfter)).toBeGreaterThanOrEqual(1);
    } finally {
      for (const r of replicas) await docker.getContainer(r.id).unpause().catch(() => undefined);
    }
  }, 240_000);

  it('stop: execute answers 503 AGENT_UNAVAILABLE; delete removes the agent', async () => {
    const stop = await call('POST', '/agents/DataAgent/stop?timeout=2', tokens.operator);
    expect(stop.status).toBe(200);
    expect(stop.json.agents[0]).toMatchObject({ slug: 'data-agent' });
    const down = await call('POST', '/agents/DataAgent/execute', tokens.operator, { tool_name: 'process_data', parameters: { data: [1] } });
    expect([down.status, down.json.error.code]).toEqual([503, 'AGENT_UNAVAILABLE']);
    expect(Number(down.retryAfter)).toBeGreaterThanOrEqual(1);
    expect((await call('DELETE', '/agents/DataAgent', tokens.admin)).status).toBe(200);
    expect((await call('GET', '/agents?stats=false', tokens.viewer)).json).toEqual({ agents: [] });
    const perf = (await call('GET', '/metrics/performance', tokens.viewer)).json;
    expect(perf.agents[0]).toMatchObject({ agent: 'data-agent' });
    expect(perf.agents[0].calls).toBeGreaterThan(240);
  }, 120_000);

  it('no token ever reaches the log', () => {
    expect(log).toContain('request completed');
    for (const t of [BOOTSTRAP, ...Object.values(tokens)]) expect(log.includes(t), 'a token in the log').toBe(false);
    // nor a token's signature alone
    for (const t of Object.values(tokens)) expect(log.includes(t.split('.')[2]!)).toBe(false);
  });
});

describe('rate limits on the real routes', () => {
  it('answers 429 with Retry-After once the per-token budget is spent', async () => {
    const limited = await createManager({ config: ws.config, env: { ...process.env, NEXUS_MANAGER_TOKEN: BOOTSTRAP }, limits: { api: { perMinute: 3 } } });
    try {
      const url = await limited.app.listen({ host: '127.0.0.1', port: 0 });
      const statuses: number[] = [];
      let retry: string | null = null;
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`${url}/api/v1/statistics`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
        statuses.push(res.status);
        retry = res.headers.get('retry-after');
        await res.text();
      }
      expect(statuses).toEqual([200, 200, 200, 429]);
      expect(Number(retry)).toBeGreaterThanOrEqual(1);
    } finally {
      await limited.close();
    }
  });
});
