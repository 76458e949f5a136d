import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { AppError } from '../../src/errors.js';
import type { ExecuteOptions, ExecuteRequest, ExecuteResult } from '../../src/server/gateway/gateway.js';
import { classify, Dispatcher, type TaskEvent, type TaskGateway } from '../../src/tasks/dispatcher.js';
import { NewTaskSchema } from '../../src/tasks/model.js';
import { SqliteTaskStore } from '../../src/tasks/sqlite-store.js';
import { LEASE_EXPIRED } from '../../src/tasks/transitions.js';
import { eventually } from '../helpers/wait.js';

type Handler = (agent: string, req: ExecuteRequest, opts: ExecuteOptions) => Promise<ExecuteResult>;

/** A gateway whose answers the test scripts; records every call in order. */
class FakeGateway implements TaskGateway {
  calls: { agent: string; tool: string; params: Record<string, unknown>; signal?: AbortSignal }[] = [];
  constructor(public handler: Handler = async (agent) => ({ status: 200, body: { result: 'ok' }, replica: `${agent}-r1` })) {}
  executeViaGateway(agent: string, req: ExecuteRequest, opts: ExecuteOptions = {}): Promise<ExecuteResult> {
    this.calls.push({ agent, tool: req.tool_name, params: req.parameters ?? {}, ...(opts.signal ? { signal: opts.signal } : {}) });
    return this.handler(agent, req, opts);
  }
}

/** A promise the test resolves by hand. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const ok = (agent: string): ExecuteResult => ({ status: 200, body: { result: agent }, replica: `${agent}-r1` });

function setup(over: Partial<ConstructorParameters<typeof Dispatcher>[0]> = {}) {
  const clock = new ManualClock();
  const store = new SqliteTaskStore(':memory:');
  const gateway = new FakeGateway();
  const events: TaskEvent[] = [];
  const d = new Dispatcher({ store, gateway, clock, owner: 'd1', backoff: { initialDelayMs: 1000, maxDelayMs: 8000 }, onEvent: (e) => events.push(e), ...over });
  return { clock, store, gateway, events, d };
}

describe('Dispatcher', () => {
  it('runs a task through queued -> running -> succeeded with agent, replica, attempts and timestamps', async () => {
    const { d, clock, store, gateway, events } = setup();
    const t0 = clock.now();
    const { task, created } = await d.submit({ agent: 'alpha', tool_name: 'echo', parameters: { text: 'hi' } });
    expect(created).toBe(true);
    expect(task).toMatchObject({ status: 'queued', priority: 'normal', max_attempts: 3 });
    clock.advance(5);
    expect(await d.tick()).toBe(1);
    await d.idle();
    expect(gateway.calls).toEqual([expect.objectContaining({ agent: 'alpha', tool: 'echo', params: { text: 'hi' } })]);
    const done = await store.get(task.task_id);
    expect(done).toMatchObject({ status: 'succeeded', result: { result: 'ok' }, ran_on_agent: 'alpha', ran_on_replica: 'alpha-r1', created_at: t0, started_at: t0 + 5, finished_at: t0 + 5 });
    expect(done!.attempts).toEqual([{ run: 0, started_at: t0 + 5, finished_at: t0 + 5, owner: 'd1', agent: 'alpha', replica: 'alpha-r1', http_status: 200 }]);
    expect(events.map((e) => e.status)).toEqual(['queued', 'running', 'succeeded']);
  });

  it('refuses a malformed task with one line and writes nothing', async () => {
    const { d, store } = setup();
    await expect(d.submit({ agent: 'alpha', capability: 'x', tool_name: 'echo' })).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('exactly one of agent or capability') });
    await expect(d.submit({ agent: 'alpha', tool_name: 'echo', priority: 'urgent' })).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('priority') });
    expect((await store.counts()).queued).toBe(0);
  });

  it('honours priorities under a full per-agent limit: the freed slot goes to the highest, oldest task', async () => {
    const { d, gateway, store } = setup({ perAgentLimit: 1 });
    const gates: Record<string, ReturnType<typeof deferred<ExecuteResult>>> = {};
    gateway.handler = async (agent, req) => (gates[String(req.parameters!.name)] = deferred<ExecuteResult>()).promise;
    await d.submit({ agent: 'alpha', tool_name: 't', parameters: { name: 'first' }, priority: 'low' });
    expect(await d.tick()).toBe(1);
    for (const [name, priority] of [['low2', 'low'], ['normal1', 'normal'], ['high1', 'high'], ['normal2', 'normal']] as const) {
      await d.submit({ agent: 'alpha', tool_name: 't', parameters: { name }, priority });
    }
    // another agent is not held back by alpha's full limit
    await d.submit({ agent: 'beta', tool_name: 't', parameters: { name: 'beta1' }, priority: 'low' });
    expect(await d.tick()).toBe(1);
    expect(gateway.calls.map((c) => c.params.name)).toEqual(['first', 'beta1']);
    expect(d.stats().per_agent).toEqual({ alpha: 1, beta: 1 });
    for (const next of ['first', 'high1', 'normal1', 'normal2', 'low2']) {
      gates[next]!.resolve(ok('alpha'));
      // the completion is committed with its turn's batch, then alpha's slot is free
      await eventually(async () => (d.stats().per_agent.alpha === undefined ? true : undefined), 5000, 1);
      await d.tick();
    }
    gates.beta1!.resolve(ok('beta'));
    await d.idle();
    expect(gateway.calls.map((c) => c.params.name)).toEqual(['first', 'beta1', 'high1', 'normal1', 'normal2', 'low2']);
    expect((await store.counts()).succeeded).toBe(6);
  });

  it('retries a retriable failure after a jittered exponential backoff, then succeeds', async () => {
    const { d, gateway, clock, store } = setup();
    let n = 0;
    gateway.handler = async (agent) => {
      if (++n === 1) throw new AppError('AGENT_UNAVAILABLE', `agent '${agent}' has no healthy replica`, { retryAfterS: 1 });
      return ok(agent);
    };
    const { task } = await d.submit({ agent: 'alpha', tool_name: 't' });
    await d.tick();
    await d.idle();
    const waiting = await store.get(task.task_id);
    expect(waiting).toMatchObject({ status: 'queued', error: expect.stringContaining('AGENT_UNAVAILABLE') });
    const delay = waiting!.run_at - clock.now();
    expect(delay).toBeGreaterThanOrEqual(500);
    expect(delay).toBeLessThanOrEqual(1000);
    clock.advance(delay - 1);
    expect(await d.tick()).toBe(0);
    clock.advance(1);
    expect(await d.tick()).toBe(1);
    await d.idle();
    const done = await store.get(task.task_id);
    expect(done).toMatchObject({ status: 'succeeded' });
    expect(done!.attempts.map((a) => a.error ?? 'ok')).toEqual([expect.stringContaining('AGENT_UNAVAILABLE'), 'ok']);
  });

  it('retries 5xx answers until max_attempts, then the task is dead; a re-drive runs it again', async () => {
    const { d, gateway, clock, store } = setup();
    gateway.handler = async () => ({ status: 500, body: { error: { code: 'TOOL_ERROR', message: 'boom' } }, replica: 'r1' });
    const { task } = await d.submit({ agent: 'alpha', tool_name: 't', max_attempts: 3 });
    for (let i = 0; i < 3; i++) {
      clock.advance(8000);
      expect(await d.tick()).toBe(1);
      await d.idle();
    }
    const dead = await store.get(task.task_id);
    expect(dead).toMatchObject({ status: 'dead', error: 'HTTP 500 TOOL_ERROR: boom', result: { error: { code: 'TOOL_ERROR', message: 'boom' } } });
    expect(dead!.attempts).toHaveLength(3);
    clock.advance(60_000);
    expect(await d.tick()).toBe(0);
    expect(gateway.calls).toHaveLength(3);
    gateway.handler = async (agent) => ok(agent);
    expect(await d.redrive(task.task_id)).toMatchObject({ status: 'queued', run: 1 });
    await d.tick();
    await d.idle();
    expect(await store.get(task.task_id)).toMatchObject({ status: 'succeeded' });
    await expect(d.redrive(task.task_id)).rejects.toMatchObject({ code: 'TASK_STATE_CONFLICT' });
  });

  it('fails 400 and 404 answers at once, without retry', async () => {
    const { d, gateway, store } = setup();
    gateway.handler = async (_a, req) => ({ status: req.tool_name === 'missing' ? 404 : 400, body: { error: { code: 'X', message: 'no' } }, replica: 'r1' });
    const a = (await d.submit({ agent: 'alpha', tool_name: 'missing' })).task;
    const b = (await d.submit({ agent: 'alpha', tool_name: 'bad-params' })).task;
    await d.tick();
    await d.idle();
    expect(await store.get(a.task_id)).toMatchObject({ status: 'failed', error: 'HTTP 404 X: no' });
    expect(await store.get(b.task_id)).toMatchObject({ status: 'failed', error: 'HTTP 400 X: no' });
    expect(gateway.calls).toHaveLength(2);
  });

  it('cancels a queued task (it never runs) and a running one (its call is aborted)', async () => {
    const { d, gateway, store } = setup();
    const queued = (await d.submit({ agent: 'alpha', tool_name: 'q' })).task;
    expect(await d.cancel(queued.task_id)).toMatchObject({ status: 'cancelled' });
    await d.tick();
    expect(gateway.calls).toHaveLength(0);

    gateway.handler = (_a, _r, opts) =>
      new Promise((_resolve, reject) => opts.signal!.addEventListener('abort', () => reject(opts.signal!.reason), { once: true }));
    const running = (await d.submit({ agent: 'alpha', tool_name: 'slow' })).task;
    await d.tick();
    expect(gateway.calls).toHaveLength(1);
    expect(await d.cancel(running.task_id)).toMatchObject({ status: 'running', cancel_requested: true });
    await d.idle();
    expect(gateway.calls[0]!.signal!.aborted).toBe(true);
    expect(await store.get(running.task_id)).toMatchObject({ status: 'cancelled', error: 'cancelled while running' });
    await expect(d.cancel(running.task_id)).rejects.toMatchObject({ code: 'TASK_STATE_CONFLICT' });
    await expect(d.cancel('ghost')).rejects.toMatchObject({ code: 'TASK_NOT_FOUND' });
  });

  it('returns the existing task for a repeated idempotency key and runs it once', async () => {
    const { d, gateway } = setup();
    const first = await d.submit({ agent: 'alpha', tool_name: 't', idempotency_key: 'invoice-7' });
    await d.tick();
    await d.idle();
    const again = await d.submit({ agent: 'alpha', tool_name: 't', idempotency_key: 'invoice-7' });
    expect(again.created).toBe(false);
    expect(again.task).toMatchObject({ task_id: first.task.task_id, status: 'succeeded' });
    await d.tick();
    expect(gateway.calls).toHaveLength(1);
  });

  it('routes a capability task to the least-busy healthy agent that has it; none healthy is retried', async () => {
    const healthy: Record<string, string[]> = { search: ['beta', 'gamma'] };
    const { d, gateway, store, clock } = setup({ resolveCapability: (cap) => healthy[cap] ?? [] });
    const gates: ReturnType<typeof deferred<ExecuteResult>>[] = [];
    gateway.handler = async () => {
      const g = deferred<ExecuteResult>();
      gates.push(g);
      return g.promise;
    };
    const t1 = (await d.submit({ capability: 'search', tool_name: 'find' })).task;
    const t2 = (await d.submit({ capability: 'search', tool_name: 'find' })).task;
    await d.tick();
    expect(gateway.calls.map((c) => c.agent).sort()).toEqual(['beta', 'gamma']);
    gates.forEach((g, i) => g.resolve(ok(gateway.calls[i]!.agent)));
    await d.idle();
    expect((await store.get(t1.task_id))!.ran_on_agent).toBe(gateway.calls[0]!.agent);
    expect((await store.get(t2.task_id))!.ran_on_agent).toBe(gateway.calls[1]!.agent);
    expect((await store.list({ agent: 'gamma' })).tasks).toHaveLength(1);

    const orphan = (await d.submit({ capability: 'translate', tool_name: 'tr', max_attempts: 2 })).task;
    await d.tick();
    await d.idle();
    expect(await store.get(orphan.task_id)).toMatchObject({ status: 'queued', error: expect.stringContaining("no healthy agent has capability 'translate'") });
    healthy.translate = ['delta'];
    gateway.handler = async (agent) => ok(agent);
    clock.advance(8000);
    await d.tick();
    await d.idle();
    expect(await store.get(orphan.task_id)).toMatchObject({ status: 'succeeded', ran_on_agent: 'delta' });
  });

  it('re-queues the task of a dispatcher that died (lease expired) and records the expiry as an attempt', async () => {
    const { d, store, clock, gateway } = setup({ leaseMs: 10_000 });
    const { task } = await store.submit(NewTaskSchema.parse({ agent: 'alpha', tool_name: 't' }), clock.now());
    await store.claim('crashed-dispatcher', 10_000, clock.now());
    expect(await d.tick()).toBe(0);
    clock.advance(10_000);
    expect(await d.tick()).toBe(1);
    await d.idle();
    const done = await store.get(task.task_id);
    expect(done).toMatchObject({ status: 'succeeded' });
    expect(done!.attempts.map((a) => [a.owner, a.error ?? 'ok'])).toEqual([['crashed-dispatcher', LEASE_EXPIRED], ['d1', 'ok']]);
    expect(gateway.calls).toHaveLength(1);
  });

  it('start() runs submitted tasks without ticks by hand; stop() waits for calls in flight', async () => {
    const { d, store } = setup({ clock: undefined, pollMs: 20 });
    d.start();
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => d.submit({ agent: `a${i % 3}`, tool_name: 't' }).then((r) => r.task.task_id)));
    for (let i = 0; i < 200 && (await store.counts()).succeeded < 20; i++) await new Promise((r) => setTimeout(r, 10));
    await d.stop();
    for (const id of ids) expect((await store.get(id))!.status).toBe('succeeded');
  });

  it('group commit: the submits of one turn are one store commit that also claims them within the per-agent limit; each submit resolves after it; events stay queued -> running -> succeeded', async () => {
    const { d, store, gateway, events } = setup({ clock: undefined, pollMs: 60_000, perAgentLimit: 4 });
    const gates: ReturnType<typeof deferred<ExecuteResult>>[] = [];
    gateway.handler = async () => {
      const g = deferred<ExecuteResult>();
      gates.push(g);
      return g.promise;
    };
    const commits: { submits: number; completions: number; claimed: number }[] = [];
    const commit = store.commit.bind(store);
    store.commit = async (batch, now) => {
      const r = await commit(batch, now);
      commits.push({ submits: batch.submits?.length ?? 0, completions: batch.completions?.length ?? 0, claimed: r.claimed.length });
      return r;
    };
    d.start();
    await d.tick(); // the first round (nothing queued yet)
    const out = await Promise.all(Array.from({ length: 10 }, (_, i) => d.submit({ agent: i < 6 ? 'alpha' : 'beta', tool_name: 't', parameters: { i } })));
    // answered only after the commit: every task is in the store, as queued in the answer
    expect(out.every((o) => o.created && o.task.status === 'queued')).toBe(true);
    expect(commits).toEqual([{ submits: 10, completions: 0, claimed: 8 }]);
    expect(d.stats().per_agent).toEqual({ alpha: 4, beta: 4 });
    expect((await store.counts()).queued).toBe(2);
    // answers of one turn: their completions and the claim of the two left in one more commit
    gates.forEach((g) => g.resolve(ok('x')));
    await eventually(async () => ((await store.counts()).running === 2 && commits.length === 2 ? true : undefined), 5000, 5);
    expect(commits[1]).toEqual({ submits: 0, completions: 8, claimed: 2 });
    gates.slice(8).forEach((g) => g.resolve(ok('x')));
    await d.stop();
    expect((await store.counts()).succeeded).toBe(10);
    for (const o of out) expect(events.filter((e) => e.task_id === o.task.task_id).map((e) => e.status)).toEqual(['queued', 'running', 'succeeded']);
  });
});

describe('classify', () => {
  const r = (status: number): ExecuteResult => ({ status, body: {}, replica: 'r' });
  it.each([
    [200, 'success'], [201, 'success'], [400, 'fail'], [404, 'fail'], [413, 'fail'], [415, 'fail'],
    [408, 'retry'], [429, 'retry'], [500, 'retry'], [503, 'retry'], [504, 'retry'],
  ])('an answer %i is %s', (status, kind) => expect(classify(r(status)).kind).toBe(kind));
  it.each([
    [new AppError('AGENT_UNAVAILABLE', 'x'), 'retry'], [new AppError('AGENT_CALL_FAILED', 'x'), 'retry'], [new AppError('AGENT_TIMEOUT', 'x'), 'retry'],
    [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'retry'], [new AppError('AGENT_NOT_FOUND', 'x'), 'fail'],
  ])('an error %s is %s', (err, kind) => expect(classify(undefined, err).kind).toBe(kind));
});
