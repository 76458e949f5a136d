import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { buildServer, type ManagerApp } from '../../src/server/app.js';
import type { ExecuteResult } from '../../src/server/gateway/gateway.js';
import { tasksPlugin } from '../../src/server/tasks-plugin.js';
import { createToken } from '../../src/server/tokens.js';
import { Dispatcher } from '../../src/tasks/dispatcher.js';
import { SqliteTaskStore } from '../../src/tasks/sqlite-store.js';
import { BOOTSTRAP, tempWorkspace } from '../helpers/manager.js';

describe('tasks routes (/api/v1/tasks)', () => {
  let app: ManagerApp;
  let d: Dispatcher;
  let store: SqliteTaskStore;
  const clock = new ManualClock();
  const tokens: Record<string, string> = {};
  let answer: (agent: string, tool: string) => ExecuteResult = (agent) => ({ status: 200, body: { result: { echoed: agent } }, replica: `${agent}-r1` });

  beforeAll(async () => {
    const workspace = await tempWorkspace();
    store = SqliteTaskStore.forWorkspace(workspace);
    d = new Dispatcher({ store, clock, owner: 'm1', gateway: { executeViaGateway: async (agent, req) => answer(agent, req.tool_name) }, backoff: { initialDelayMs: 10, maxDelayMs: 10 } });
    app = await buildServer({ workspace, bootstrapToken: BOOTSTRAP, limits: { api: { perMinute: 100_000 } }, plugins: { api: [tasksPlugin({ store, dispatcher: d })] } });
    for (const scope of ['viewer', 'operator'] as const) tokens[scope] = (await createToken({ scope, ttl: '1h' }, { workspace })).token;
  });
  afterAll(async () => {
    await app.close();
    await store.close();
  });

  const call = (method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown, scope = 'operator') =>
    app.inject({ method, url: `/api/v1${url}`, headers: { authorization: `Bearer ${tokens[scope]}` }, ...(body !== undefined ? { payload: body as object } : {}) });
  const run = async () => {
    await d.tick();
    await d.idle();
  };

  it('submit -> 202 queued; runs; GET shows attempts, timestamps, agent and replica; /result has the answer', async () => {
    const r = await call('POST', '/tasks/submit', { agent: 'alpha', tool_name: 'echo', parameters: { text: 'hi' }, priority: 'high' });
    expect(r.statusCode).toBe(202);
    const { task_id, status, created } = r.json();
    expect({ status, created }).toEqual({ status: 'queued', created: true });
    expect((await call('GET', `/tasks/${task_id}/result`, undefined, 'viewer')).json()).toEqual({ task_id, status: 'queued' });
    await run();
    const t = (await call('GET', `/tasks/${task_id}`, undefined, 'viewer')).json();
    expect(t).toMatchObject({ task_id, status: 'succeeded', priority: 'high', ran_on_agent: 'alpha', ran_on_replica: 'alpha-r1', created_at: new Date(clock.now()).toISOString() });
    expect(t.attempts).toEqual([{ run: 0, started_at: expect.any(String), finished_at: expect.any(String), agent: 'alpha', replica: 'alpha-r1', http_status: 200 }]);
    expect(t).not.toHaveProperty('lease_owner');
    expect(t).not.toHaveProperty('result');
    expect((await call('GET', `/tasks/${task_id}/result`, undefined, 'viewer')).json()).toEqual({ task_id, status: 'succeeded', result: { result: { echoed: 'alpha' } } });
  });

  it('an idempotency key answers 200 with the existing task', async () => {
    const first = (await call('POST', '/tasks/submit', { agent: 'alpha', tool_name: 'echo', idempotency_key: 'once' })).json();
    const again = await call('POST', '/tasks/submit', { agent: 'alpha', tool_name: 'echo', idempotency_key: 'once' });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ task_id: first.task_id, status: 'queued', created: false });
    await run();
  });

  it('refuses bad bodies with 400 and one line, and a viewer may not submit, cancel or retry', async () => {
    for (const body of [{ tool_name: 'x' }, { agent: 'a', capability: 'c', tool_name: 'x' }, { agent: 'a', tool_name: 'x', priority: 'urgent' }, { agent: 'a', tool_name: 'x', max_attempts: 0 }]) {
      const r = await call('POST', '/tasks/submit', body);
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
      expect(r.json().error.code).toBe('BAD_REQUEST');
    }
    expect((await call('POST', '/tasks/submit', { agent: 'a', tool_name: 'x' }, 'viewer')).statusCode).toBe(403);
    expect((await call('DELETE', '/tasks/x', undefined, 'viewer')).statusCode).toBe(403);
    expect((await call('POST', '/tasks/x/retry', undefined, 'viewer')).statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: '/api/v1/tasks' })).statusCode).toBe(401);
  });

  it('cancel (DELETE) a queued task; 404 for an unknown one, 409 for a finished one', async () => {
    const { task_id } = (await call('POST', '/tasks/submit', { agent: 'alpha', tool_name: 'echo' })).json();
    const r = await call('DELETE', `/tasks/${task_id}`);
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ status: 'cancelled' });
    expect((await call('DELETE', `/tasks/${task_id}`)).json().error.code).toBe('TASK_STATE_CONFLICT');
    expect((await call('DELETE', '/tasks/no-such-task')).statusCode).toBe(404);
    expect((await call('GET', '/tasks/no-such-task', undefined, 'viewer')).json().error.code).toBe('TASK_NOT_FOUND');
  });

  it('dead tasks show in the dead letter and are re-driven by POST /retry', async () => {
    answer = () => ({ status: 503, body: {}, replica: 'r1' });
    const { task_id } = (await call('POST', '/tasks/submit', { agent: 'beta', tool_name: 'flaky', max_attempts: 2 })).json();
    await run();
    clock.advance(10);
    await run();
    const dead = (await call('GET', '/tasks/dead-letter', undefined, 'viewer')).json();
    expect(dead.tasks.map((t: { task_id: string }) => t.task_id)).toEqual([task_id]);
    expect(dead.tasks[0]).toMatchObject({ status: 'dead', error: 'HTTP 503' });
    expect((await call('GET', `/tasks/${task_id}/result`, undefined, 'viewer')).json()).toMatchObject({ status: 'dead', error: 'HTTP 503' });
    answer = (agent) => ({ status: 200, body: { ok: agent }, replica: `${agent}-r2` });
    const r = await call('POST', `/tasks/${task_id}/retry`);
    expect(r.statusCode).toBe(202);
    expect(r.json()).toEqual({ task_id, status: 'queued', created: false });
    expect((await call('POST', `/tasks/${task_id}/retry`)).statusCode).toBe(409);
    await run();
    const t = (await call('GET', `/tasks/${task_id}`, undefined, 'viewer')).json();
    expect(t).toMatchObject({ status: 'succeeded', run: 1 });
    expect(t.attempts).toHaveLength(3);
  });

  it('lists by status and agent in pages; metrics count per status', async () => {
    for (let i = 0; i < 5; i++) await call('POST', '/tasks/submit', { agent: 'gamma', tool_name: 'echo', parameters: { i } });
    const p1 = (await call('GET', '/tasks?agent=gamma&status=queued&limit=3', undefined, 'viewer')).json();
    expect(p1.tasks).toHaveLength(3);
    expect(p1.tasks.map((t: { parameters: { i: number } }) => t.parameters.i)).toEqual([4, 3, 2]);
    const p2 = (await call('GET', `/tasks?agent=gamma&status=queued&limit=3&cursor=${p1.next_cursor}`, undefined, 'viewer')).json();
    expect(p2.tasks.map((t: { parameters: { i: number } }) => t.parameters.i)).toEqual([1, 0]);
    expect(p2.next_cursor).toBeUndefined();
    expect((await call('GET', '/tasks?status=bogus', undefined, 'viewer')).statusCode).toBe(400);
    expect((await call('GET', '/tasks?cursor=zz', undefined, 'viewer')).json().error.code).toBe('BAD_REQUEST');
    const m = (await call('GET', '/metrics/tasks', undefined, 'viewer')).json();
    expect(m).toMatchObject({ store: 'sqlite', counts: { queued: 5, succeeded: 3, cancelled: 1 }, dispatcher: { owner: 'm1', in_flight: 0, per_agent_limit: 50 } });
    await run();
    expect((await call('GET', '/metrics/tasks', undefined, 'viewer')).json().counts).toMatchObject({ queued: 0, succeeded: 8 });
  });
});
