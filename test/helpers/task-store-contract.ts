import { describe, expect, it } from 'vitest';
import { NewTaskSchema, type NewTaskInput } from '../../src/tasks/model.js';
import type { TaskStore } from '../../src/tasks/store.js';
import { LEASE_EXPIRED } from '../../src/tasks/transitions.js';

const T0 = Date.UTC(2030, 0, 1);
const LEASE = 30_000;
const task = (over: Partial<NewTaskInput> = {}) => NewTaskSchema.parse({ agent: 'alpha', tool_name: 'echo', parameters: { n: 1 }, ...over });

/**
 * The TaskStore contract, run against every implementation. `open` returns a fresh, empty store;
 * `openAnother` a second client on the same store (another manager instance).
 */
export function taskStoreContract(kind: string, open: () => Promise<TaskStore>, openAnother: (first: TaskStore) => Promise<TaskStore>): void {
  describe(`TaskStore contract: ${kind}`, () => {
    it('submits, reads back, claims and completes a task', async () => {
      const s = await open();
      const { task: t, created } = await s.submit(task(), T0);
      expect(created).toBe(true);
      expect(t).toMatchObject({ status: 'queued', agent: 'alpha', priority: 'normal', max_attempts: 3, attempts: [], created_at: T0 });
      expect(await s.get(t.task_id)).toEqual(t);
      const c = await s.claim('d1', LEASE, T0 + 5);
      expect(c).toMatchObject({ task_id: t.task_id, status: 'running', lease_owner: 'd1', lease_expires_at: T0 + 5 + LEASE, started_at: T0 + 5 });
      expect(await s.get(t.task_id)).toEqual(c);
      const done = await s.complete(t.task_id, 'd1', { status: 'succeeded', result: { out: [] }, agent: 'alpha', replica: 'r1', http_status: 200 }, T0 + 9);
      expect(done).toMatchObject({ status: 'succeeded', result: { out: [] }, ran_on_agent: 'alpha', ran_on_replica: 'r1', finished_at: T0 + 9 });
      expect(done!.attempts).toEqual([{ run: 0, started_at: T0 + 5, finished_at: T0 + 9, owner: 'd1', agent: 'alpha', replica: 'r1', http_status: 200 }]);
      expect(done).not.toHaveProperty('lease_owner');
      expect(await s.get(t.task_id)).toEqual(done);
      expect(await s.claim('d1', LEASE, T0 + 10)).toBeUndefined();
      expect(await s.get('no-such-task')).toBeUndefined();
      await s.close();
    });

    it('claims high before normal before low, oldest first within a priority', async () => {
      const s = await open();
      const ids: Record<string, string> = {};
      for (const [name, priority] of [['l1', 'low'], ['n1', 'normal'], ['h1', 'high'], ['n2', 'normal'], ['h2', 'high'], ['l2', 'low']] as const) {
        ids[(await s.submit(task({ priority, parameters: { name } }), T0)).task.task_id] = name;
      }
      const order: string[] = [];
      for (let c = await s.claim('d', LEASE, T0); c; c = await s.claim('d', LEASE, T0)) order.push(ids[c.task_id]!);
      expect(order).toEqual(['h1', 'h2', 'n1', 'n2', 'l1', 'l2']);
      await s.close();
    });

    it('skips tasks of full agents and capabilities, and tasks not yet due', async () => {
      const s = await open();
      const a = (await s.submit(task({ agent: 'alpha', priority: 'high' }), T0)).task;
      const c = (await s.submit(task({ agent: undefined, capability: 'search', priority: 'high' }), T0)).task;
      const b = (await s.submit(task({ agent: 'beta', priority: 'low' }), T0)).task;
      expect((await s.claim('d', LEASE, T0, { fullAgents: ['alpha'], fullCapabilities: ['search'] }))?.task_id).toBe(b.task_id);
      expect(await s.claim('d', LEASE, T0, { fullAgents: ['alpha'], fullCapabilities: ['search'] })).toBeUndefined();
      // a retry due later is not claimed before its run_at
      const ca = await s.claim('d', LEASE, T0, { fullCapabilities: ['search'] });
      expect(ca?.task_id).toBe(a.task_id);
      await s.complete(a.task_id, 'd', { status: 'queued', error: 'HTTP 503', run_at: T0 + 1000 }, T0 + 1);
      expect((await s.claim('d', LEASE, T0 + 2))?.task_id).toBe(c.task_id);
      expect(await s.claim('d', LEASE, T0 + 999)).toBeUndefined();
      const again = await s.claim('d', LEASE, T0 + 1000);
      expect(again).toMatchObject({ task_id: a.task_id, error: 'HTTP 503' });
      expect(again!.attempts).toHaveLength(1);
      await s.close();
    });

    it('gives each task to exactly one of many concurrent claimers on two clients', async () => {
      const s1 = await open();
      const s2 = await openAnother(s1);
      const submitted = new Set<string>();
      for (let i = 0; i < 40; i++) submitted.add((await s1.submit(task({ parameters: { i } }), T0)).task.task_id);
      const claimers = Array.from({ length: 8 }, (_, i) => (async () => {
        const got: string[] = [];
        const s = i % 2 ? s2 : s1;
        for (let c = await s.claim(`d${i}`, LEASE, T0); c; c = await s.claim(`d${i}`, LEASE, T0)) got.push(c.task_id);
        return got;
      })());
      const all = (await Promise.all(claimers)).flat();
      expect(all).toHaveLength(40);
      expect(new Set(all)).toEqual(submitted);
      expect((await s2.counts()).running).toBe(40);
      await s1.close();
      await s2.close();
    });

    it('returns expired leases to the queue and fences the late owner', async () => {
      const s = await open();
      const t = (await s.submit(task({ max_attempts: 2 }), T0)).task;
      await s.claim('dead-dispatcher', LEASE, T0);
      expect(await s.requeueExpired(T0 + LEASE - 1)).toBe(0);
      // renewing pushes the expiry
      expect(await s.renew(t.task_id, 'dead-dispatcher', LEASE, T0 + 1000)).toEqual({ held: true, cancelRequested: false });
      expect(await s.requeueExpired(T0 + LEASE + 500)).toBe(0);
      expect(await s.requeueExpired(T0 + LEASE + 1000)).toBe(1);
      const q = await s.get(t.task_id);
      expect(q).toMatchObject({ status: 'queued', error: LEASE_EXPIRED });
      expect(q!.attempts).toEqual([expect.objectContaining({ owner: 'dead-dispatcher', error: LEASE_EXPIRED, started_at: T0 })]);
      // the old owner's lease is gone: no renew, no completion
      expect((await s.renew(t.task_id, 'dead-dispatcher', LEASE, T0 + LEASE + 2000)).held).toBe(false);
      expect(await s.complete(t.task_id, 'dead-dispatcher', { status: 'succeeded', result: 1, agent: 'alpha', replica: 'r', http_status: 200 }, T0 + LEASE + 2000)).toBeUndefined();
      // a second expiry spends the budget of 2: dead
      await s.claim('d2', LEASE, T0 + 40_000);
      expect(await s.requeueExpired(T0 + 40_000 + LEASE)).toBe(1);
      expect(await s.get(t.task_id)).toMatchObject({ status: 'dead', error: LEASE_EXPIRED });
      await s.close();
    });

    it('returns the existing task for a known idempotency key, also from another client', async () => {
      const s1 = await open();
      const s2 = await openAnother(s1);
      const first = await s1.submit(task({ idempotency_key: 'order-42' }), T0);
      const again = await s2.submit(task({ idempotency_key: 'order-42', parameters: { other: true } }), T0 + 5);
      expect(again).toEqual({ task: first.task, created: false });
      const racing = await Promise.all([s1.submit(task({ idempotency_key: 'k2' }), T0), s2.submit(task({ idempotency_key: 'k2' }), T0)]);
      expect(racing.filter((r) => r.created)).toHaveLength(1);
      expect(racing[0].task.task_id).toBe(racing[1].task.task_id);
      expect((await s1.counts()).queued).toBe(2);
      await s1.close();
      await s2.close();
    });

    it('cancels a queued task (never claimed) and flags a running one', async () => {
      const s = await open();
      const q = (await s.submit(task(), T0)).task;
      const r = (await s.submit(task({ priority: 'high' }), T0)).task;
      await s.claim('d', LEASE, T0);
      expect(await s.cancel(q.task_id, T0 + 1)).toMatchObject({ status: 'cancelled', finished_at: T0 + 1 });
      expect(await s.claim('d', LEASE, T0 + 2)).toBeUndefined();
      expect(await s.cancel(r.task_id, T0 + 3)).toMatchObject({ status: 'running', cancel_requested: true });
      expect(await s.renew(r.task_id, 'd', LEASE, T0 + 4)).toEqual({ held: true, cancelRequested: true });
      expect(await s.complete(r.task_id, 'd', { status: 'cancelled', error: 'cancelled while running' }, T0 + 5)).toMatchObject({ status: 'cancelled' });
      await expect(s.cancel(r.task_id, T0 + 6)).rejects.toMatchObject({ code: 'TASK_STATE_CONFLICT' });
      await expect(s.cancel('ghost', T0)).rejects.toMatchObject({ code: 'TASK_NOT_FOUND' });
      await s.close();
    });

    it('re-drives a dead task with a fresh budget, keeping its history', async () => {
      const s = await open();
      const t = (await s.submit(task({ max_attempts: 1 }), T0)).task;
      await expect(s.redrive(t.task_id, T0)).rejects.toMatchObject({ code: 'TASK_STATE_CONFLICT' });
      await s.claim('d', LEASE, T0);
      await s.complete(t.task_id, 'd', { status: 'dead', error: 'HTTP 503', agent: 'alpha', replica: 'r1', http_status: 503 }, T0 + 1);
      expect((await s.list({ status: 'dead' })).tasks.map((x) => x.task_id)).toEqual([t.task_id]);
      const again = await s.redrive(t.task_id, T0 + 2);
      expect(again).toMatchObject({ status: 'queued', run: 1 });
      expect(again).not.toHaveProperty('finished_at');
      const c = await s.claim('d', LEASE, T0 + 3);
      expect(c).toMatchObject({ task_id: t.task_id, started_at: T0 + 3 });
      const done = await s.complete(t.task_id, 'd', { status: 'succeeded', result: 'ok', agent: 'alpha', replica: 'r2', http_status: 200 }, T0 + 4);
      expect(done!.attempts.map((a) => [a.run, a.error ?? 'ok'])).toEqual([[0, 'HTTP 503'], [1, 'ok']]);
      await s.close();
    });

    it('submits a batch in order (a repeated idempotency key inside it returns the first task), claims many within the agents\' room, completes a batch', async () => {
      const s = await open();
      const out = await s.submitMany(
        [
          task({ agent: 'alpha', parameters: { n: 1 } }),
          task({ agent: 'alpha', parameters: { n: 2 }, idempotency_key: 'b-1' }),
          task({ agent: 'beta', parameters: { n: 3 }, priority: 'low' }),
          task({ agent: 'alpha', parameters: { n: 4 }, idempotency_key: 'b-1' }),
          task({ agent: 'alpha', parameters: { n: 5 }, priority: 'high' }),
          task({ agent: 'gamma', parameters: { n: 6 } }),
        ],
        T0,
      );
      expect(out.map((o) => o.created)).toEqual([true, true, true, false, true, true]);
      expect(out[3]!.task.task_id).toBe(out[1]!.task.task_id);
      expect(new Set(out.map((o) => o.task.task_id)).size).toBe(5);
      for (const o of out) expect(await s.get(o.task.task_id)).toMatchObject({ status: 'queued' });
      expect(await s.submitMany([], T0)).toEqual([]);
      const n = (t: { parameters: Record<string, unknown> }) => t.parameters.n;
      // alpha has one slot left, gamma none, others two: claim order, skipping what does not fit
      const got = await s.claimMany('d', LEASE, T0 + 1, 10, { agentRoom: { alpha: 1, gamma: 0 }, perAgentRoom: 2 });
      expect(got.map(n)).toEqual([5, 3]);
      expect(got.every((t) => t.status === 'running' && t.lease_owner === 'd' && t.lease_expires_at === T0 + 1 + LEASE)).toBe(true);
      // no bound but max
      const rest = await s.claimMany('d', LEASE, T0 + 2, 2);
      expect(rest.map(n)).toEqual([1, 2]);
      expect((await s.claimMany('d', LEASE, T0 + 3, 5, { fullAgents: ['gamma'] })).map(n)).toEqual([]);
      const done = await s.completeMany(
        [
          { taskId: got[0]!.task_id, owner: 'd', outcome: { status: 'succeeded', result: 'five', agent: 'alpha', replica: 'r1', http_status: 200 } },
          { taskId: got[1]!.task_id, owner: 'someone-else', outcome: { status: 'succeeded', result: 'x', agent: 'beta', replica: 'r1', http_status: 200 } },
          { taskId: 'no-such-task', owner: 'd', outcome: { status: 'failed', error: 'x' } },
          { taskId: rest[0]!.task_id, owner: 'd', outcome: { status: 'queued', error: 'HTTP 503', run_at: T0 + 1000 } },
        ],
        T0 + 9,
      );
      expect(done[0]).toMatchObject({ status: 'succeeded', result: 'five', finished_at: T0 + 9 });
      expect(done.slice(1, 3)).toEqual([undefined, undefined]);
      expect(done[3]).toMatchObject({ status: 'queued', error: 'HTTP 503' });
      expect(await s.get(got[0]!.task_id)).toEqual(done[0]);
      expect(await s.get(got[1]!.task_id)).toMatchObject({ status: 'running', lease_owner: 'd' });
      expect(await s.completeMany([], T0)).toEqual([]);
      expect(await s.counts()).toEqual({ queued: 2, running: 2, succeeded: 1, failed: 0, cancelled: 0, dead: 0 });
      await s.close();
    });

    it('commits submits, completions and a claim in one go: the claim follows queue order over queued and new tasks, within the room', async () => {
      const s = await open();
      const n = (t: { parameters: Record<string, unknown> }) => t.parameters.n;
      await s.submitMany([task({ parameters: { n: 'old-normal' } }), task({ parameters: { n: 'old-low' }, priority: 'low' }), task({ agent: 'beta', parameters: { n: 'old-beta' } })], T0);
      const [running] = await s.claimMany('d', LEASE, T0, 1, { fullAgents: ['alpha'] });
      expect(n(running!)).toBe('old-beta');
      const r = await s.commit(
        {
          submits: [task({ parameters: { n: 'new-normal' } }), task({ parameters: { n: 'new-high' }, priority: 'high' }), task({ parameters: { n: 'dup' }, idempotency_key: 'k' }), task({ parameters: { n: 'dup2' }, idempotency_key: 'k' })],
          completions: [{ taskId: running!.task_id, owner: 'd', outcome: { status: 'succeeded', result: 1, agent: 'beta', replica: 'r', http_status: 200 } }],
          claim: { owner: 'd', leaseMs: LEASE, max: 3, filter: { agentRoom: { alpha: 3 } } },
        },
        T0 + 5,
      );
      expect(r.submitted.map((x) => [n(x.task), x.created, x.task.status])).toEqual([['new-normal', true, 'queued'], ['new-high', true, 'queued'], ['dup', true, 'queued'], ['dup', false, 'queued']]);
      expect(r.completed[0]).toMatchObject({ status: 'succeeded', finished_at: T0 + 5 });
      // high first (new), then the normal ones oldest first; the low one stays queued
      expect(r.claimed.map(n)).toEqual(['new-high', 'old-normal', 'new-normal']);
      for (const t of r.claimed) expect(await s.get(t.task_id)).toEqual(t);
      expect(r.claimed.every((t) => t.status === 'running' && t.lease_owner === 'd' && t.started_at === T0 + 5)).toBe(true);
      expect(await s.counts()).toEqual({ queued: 2, running: 3, succeeded: 1, failed: 0, cancelled: 0, dead: 0 });
      // room for one more alpha task: the commit claims only that many
      const r2 = await s.commit({ submits: [task({ parameters: { n: 'x' } })], claim: { owner: 'd', leaseMs: LEASE, max: 5, filter: { agentRoom: { alpha: 1 } } } }, T0 + 6);
      expect(r2.claimed.map(n)).toEqual(['dup']);
      await s.close();
    });

    it('gives each task to exactly one of many concurrent batch claimers on two clients', async () => {
      const s1 = await open();
      const s2 = await openAnother(s1);
      const submitted = new Set((await s1.submitMany(Array.from({ length: 60 }, (_, i) => task({ agent: `a${i % 3}`, parameters: { i } })), T0)).map((o) => o.task.task_id));
      expect(submitted.size).toBe(60);
      const claimers = Array.from({ length: 6 }, (_, i) => (async () => {
        const got: string[] = [];
        const s = i % 2 ? s2 : s1;
        for (let c = await s.claimMany(`d${i}`, LEASE, T0, 7); c.length > 0; c = await s.claimMany(`d${i}`, LEASE, T0, 7)) got.push(...c.map((t) => t.task_id));
        return got;
      })());
      const all = (await Promise.all(claimers)).flat();
      expect(all).toHaveLength(60);
      expect(new Set(all)).toEqual(submitted);
      await s1.close();
      await s2.close();
    });

    it('lists newest first, filtered by status and agent, in pages by cursor', async () => {
      const s = await open();
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) ids.push((await s.submit(task({ agent: i % 2 ? 'beta' : 'alpha' }), T0 + i)).task.task_id);
      const p1 = await s.list({ limit: 3 });
      expect(p1.tasks.map((t) => t.task_id)).toEqual([ids[6], ids[5], ids[4]]);
      const p2 = await s.list({ limit: 3, cursor: p1.next_cursor });
      const p3 = await s.list({ limit: 3, cursor: p2.next_cursor });
      expect([...p2.tasks, ...p3.tasks].map((t) => t.task_id)).toEqual([ids[3], ids[2], ids[1], ids[0]]);
      expect(p3.next_cursor).toBeUndefined();
      expect((await s.list({ agent: 'beta' })).tasks.map((t) => t.task_id)).toEqual([ids[5], ids[3], ids[1]]);
      const c = await s.claim('d', LEASE, T0 + 10);
      expect((await s.list({ status: 'running' })).tasks.map((t) => t.task_id)).toEqual([c!.task_id]);
      expect((await s.list({ status: 'queued', agent: 'alpha', limit: 2 })).tasks).toHaveLength(2);
      expect(await s.counts()).toEqual({ queued: 6, running: 1, succeeded: 0, failed: 0, cancelled: 0, dead: 0 });
      await expect(s.list({ cursor: '!!not-ours' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
      await s.close();
    });
  });
}
