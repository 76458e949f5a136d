import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { AppError } from '../../src/errors.js';
import { Gateway, type GatewayAgent, type GatewayReplica } from '../../src/server/gateway/gateway.js';
import { refusedUrl, startRaw, startRuntime, type RawServer, type RunningRuntime } from '../helpers/gateway.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

async function runtime(): Promise<RunningRuntime> {
  const r = await startRuntime();
  cleanups.push(() => r.app.close());
  return r;
}
async function raw(handle: Parameters<typeof startRaw>[0]): Promise<RawServer> {
  const r = await startRaw(handle);
  cleanups.push(() => r.close());
  return r;
}
function gateway(agent: () => GatewayAgent | undefined, opts: Partial<ConstructorParameters<typeof Gateway>[0]> = {}) {
  const clock = new ManualClock();
  const metrics = new Registry();
  const gw = new Gateway({ resolve: agent, clock, metrics, ...opts });
  cleanups.push(() => gw.close());
  return { gw, clock, metrics };
}
const rep = (id: string, url: string, inRotation = true): GatewayReplica => ({ id, url, inRotation });
const call = { tool_name: 'process_data', parameters: { data: [1, 2, 3] } };

async function appError(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

describe('gateway: answers pass through', () => {
  it("passes the agent's own 200, 400, 404 and 500 through, and none of them opens the breaker", async () => {
    const a = await runtime();
    const { gw } = gateway(() => ({ slug: 'x', replicas: [rep('a', a.url)] }), { breakerFailures: 2 });
    const ok = await gw.executeViaGateway('x', call);
    expect(ok).toEqual({ status: 200, body: { result: { count: 3, sum: 6, mean: 2, min: 1, max: 3 } }, replica: 'a', agent: 'x' });
    expect((await gw.executeViaGateway('x', { tool_name: 'process_data', parameters: { data: 'no' } })).status).toBe(400);
    expect((await gw.executeViaGateway('x', { tool_name: 'nope' })).status).toBe(404);
    for (let i = 0; i < 4; i++) {
      const r = await gw.executeViaGateway('x', { tool_name: 'boom' });
      expect(r.status).toBe(500);
      expect((r.body as { error: { code: string } }).error.code).toBe('TOOL_ERROR');
    }
    expect(gw.breakerState('a')).toBe('closed');
  });

  it('throws AGENT_NOT_FOUND for an unknown agent', async () => {
    const { gw } = gateway(() => undefined);
    expect((await appError(gw.executeViaGateway('ghost', call))).code).toBe('AGENT_NOT_FOUND');
  });
});

describe('gateway: retries', () => {
  it('retries a refused connection on ANOTHER replica, after a backoff sleep', async () => {
    const deadUrl = await refusedUrl();
    const b = await runtime();
    const { gw, clock } = gateway(() => ({ slug: 'x', replicas: [rep('dead', deadUrl), rep('b', b.url)] }));
    const r = await gw.executeViaGateway('x', call); // round-robin starts with 'dead'
    expect(r.replica).toBe('b');
    expect(r.status).toBe(200);
    expect(b.hits()).toBe(1);
    expect(clock.sleeps).toHaveLength(1);
    expect(clock.sleeps[0]).toBeGreaterThan(0);
    expect(clock.sleeps[0]).toBeLessThanOrEqual(200);
  });

  it('retries a 503 (agent closing, refused before routing) on another replica', async () => {
    const closing = await raw((res) => res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"SHUTTING_DOWN"}}'));
    const b = await runtime();
    const { gw } = gateway(() => ({ slug: 'x', replicas: [rep('closing', closing.url), rep('b', b.url)] }));
    const r = await gw.executeViaGateway('x', call);
    expect(r.replica).toBe('b');
    expect(closing.hits()).toBe(1);
  });

  it('does NOT retry a call that reached a non-idempotent tool whose replica then died: 502 AGENT_CALL_FAILED', async () => {
    const dying = await raw((_res, socket) => socket.destroy());
    const b = await runtime();
    const { gw, clock } = gateway(() => ({ slug: 'x', replicas: [rep('dying', dying.url), rep('b', b.url)] }));
    const err = await appError(gw.executeViaGateway('x', call));
    expect(err.code).toBe('AGENT_CALL_FAILED');
    expect(err.httpStatus).toBe(502);
    expect(dying.hits()).toBe(1);
    expect(b.hits()).toBe(0);
    expect(clock.sleeps).toHaveLength(0);
  });

  it('retries that same failure on another replica when the tool is marked idempotent', async () => {
    const dying = await raw((_res, socket) => socket.destroy());
    const b = await runtime();
    const { gw } = gateway(() => ({ slug: 'x', replicas: [rep('dying', dying.url), rep('b', b.url)], idempotentTools: ['process_data'] }));
    const r = await gw.executeViaGateway('x', call);
    expect(r).toMatchObject({ status: 200, replica: 'b' });
    expect(dying.hits()).toBe(1);
    expect(b.hits()).toBe(1);
  });

  it('gives up after maxAttempts distinct replicas with 503 AGENT_UNAVAILABLE', async () => {
    const urls = await Promise.all([refusedUrl(), refusedUrl(), refusedUrl(), refusedUrl()]);
    const { gw, clock } = gateway(() => ({ slug: 'x', replicas: urls.map((u, i) => rep(`r${i}`, u)) }), { maxAttempts: 3 });
    const err = await appError(gw.executeViaGateway('x', call));
    expect(err.code).toBe('AGENT_UNAVAILABLE');
    // three replicas tried, two sleeps between them
    expect(clock.sleeps).toHaveLength(2);
  });

  it('answers 504 AGENT_TIMEOUT past the time budget and does not retry the written call', async () => {
    const a = await runtime();
    const b = await runtime();
    const { gw } = gateway(() => ({ slug: 'x', replicas: [rep('a', a.url), rep('b', b.url)] }));
    const err = await appError(gw.executeViaGateway('x', { tool_name: 'wait', parameters: { ms: 1000 } }, { timeoutMs: 50 }));
    expect(err.code).toBe('AGENT_TIMEOUT');
    expect(a.hits() + b.hits()).toBe(1);
  });
});

describe('gateway: circuit breaker and 503', () => {
  it('opens after N consecutive failures, keeps the replica out of rotation, half-opens after the cool-down and closes on a success', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    let down = true;
    const flaky = await raw((res) =>
      down ? res.writeHead(503).end() : res.writeHead(200, { 'content-type': 'application/json' }).end('{"result":"back"}'),
    );
    const b = await runtime();
    const { gw } = gateway(() => ({ slug: 'x', replicas: [rep('flaky', flaky.url), rep('b', b.url)] }), {
      breakerFailures: 3,
      breakerHalfOpenAfterMs: 10_000,
    });
    // round-robin alternates the first pick; every call still succeeds on b
    for (let i = 0; i < 6; i++) expect((await gw.executeViaGateway('x', call)).replica).toBe('b');
    expect(flaky.hits()).toBe(3);
    expect(gw.breakerState('flaky')).toBe('open');
    // open: out of rotation, no more calls reach it
    for (let i = 0; i < 4; i++) await gw.executeViaGateway('x', call);
    expect(flaky.hits()).toBe(3);
    // after the cool-down one trial call goes through; it succeeds and closes the breaker
    down = false;
    vi.setSystemTime(Date.now() + 10_001);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add((await gw.executeViaGateway('x', call)).replica);
    expect(seen).toEqual(new Set(['flaky', 'b']));
    expect(gw.breakerState('flaky')).toBe('closed');
  });

  it('re-opens when the half-open trial fails', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const bad = await raw((res) => res.writeHead(503).end());
    const { gw } = gateway(() => ({ slug: 'x', replicas: [rep('bad', bad.url)] }), { breakerFailures: 1, breakerHalfOpenAfterMs: 1000 });
    await appError(gw.executeViaGateway('x', call));
    expect(gw.breakerState('bad')).toBe('open');
    vi.setSystemTime(Date.now() + 1001);
    await appError(gw.executeViaGateway('x', call));
    expect(bad.hits()).toBe(2);
    expect(gw.breakerState('bad')).toBe('open');
  });

  it('503 AGENT_UNAVAILABLE with retryAfterS = the soonest breaker cool-down when every breaker is open', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const bad = await raw((res) => res.writeHead(503).end());
    const { gw } = gateway(() => ({ slug: 'x', replicas: [rep('bad', bad.url)] }), { breakerFailures: 1, breakerHalfOpenAfterMs: 3000 });
    await appError(gw.executeViaGateway('x', call));
    vi.setSystemTime(Date.now() + 1500);
    const err = await appError(gw.executeViaGateway('x', call));
    expect(err.code).toBe('AGENT_UNAVAILABLE');
    expect(err.httpStatus).toBe(503);
    expect(err.retryAfterS).toBe(2);
    expect(bad.hits()).toBe(1);
  });

  it('503 with the probe-interval Retry-After when no replica is in rotation (new or failing its checks)', async () => {
    const a = await runtime();
    const { gw } = gateway(() => ({ slug: 'x', replicas: [rep('a', a.url, false)] }), { unavailableRetryAfterS: 5 });
    const err = await appError(gw.executeViaGateway('x', call));
    expect(err).toMatchObject({ code: 'AGENT_UNAVAILABLE', retryAfterS: 5 });
    expect(a.hits()).toBe(0);
  });
});

describe('gateway: pools, counters, metrics', () => {
  it('keeps one pool per replica origin and closes it when the replica leaves', async () => {
    const a = await runtime();
    const b = await runtime();
    let replicas = [rep('a', a.url), rep('b', b.url)];
    const { gw } = gateway(() => ({ slug: 'x', replicas }));
    await gw.executeViaGateway('x', call);
    await gw.executeViaGateway('x', call);
    expect(gw.openPools().sort()).toEqual([a.url, b.url].sort());
    replicas = [rep('b', b.url)];
    await gw.executeViaGateway('x', call);
    expect(gw.openPools()).toEqual([b.url]);
  });

  it('counts in-flight calls per agent and per replica, and records attempts by outcome', async () => {
    const a = await runtime();
    const { gw, metrics } = gateway(() => ({ slug: 'x', replicas: [rep('a', a.url)] }));
    const pending = [1, 2, 3].map(() => gw.executeViaGateway('x', { tool_name: 'wait', parameters: { ms: 200 } }));
    await vi.waitFor(() => expect(gw.replicaInflight('a')).toBe(3));
    expect(gw.inflight('x')).toBe(3);
    await Promise.all(pending);
    expect(gw.inflight('x')).toBe(0);
    expect(gw.replicaInflight('a')).toBe(0);
    const text = await metrics.metrics();
    expect(text).toContain('nexus_gateway_attempts_total{agent="x",replica="a",outcome="answer"} 3');
    expect(text).toContain('nexus_gateway_request_duration_seconds_count{agent="x",outcome="answer"} 3');
  });
});
