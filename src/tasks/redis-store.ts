/**
 * The shared task store: several manager instances on one Redis (7.x, Debian's `redis-server`),
 * plain Redis with Lua scripts through ioredis, not BullMQ (README "Tasks" says why: BullMQ has no
 * per-agent concurrency limit across workers in its open-source edition, no claim API a second
 * store could share a contract with, and no cancel of a running job in another process).
 *
 * Keys, all under `prefix` (default `nexus:tasks`):
 * - `<p>:t:<id>`  hash: `doc` (the task JSON), `seq`, `qscore`, `route` (`a:<agent>` or
 *   `c:<capability>`), `ver` (bumped by every write, for compare-and-set), `cancel`, and the fields
 *   a claim sets, which override the JSON on read: status, lease_owner, lease_expires_at,
 *   attempt_started_at, started_at;
 * - `<p>:queued`  zset by priority rank * 1e12 + seq (head = next to run);
 * - `<p>:delayed` zset by run_at (retry backoff), moved to `queued` when due by the claim script;
 * - `<p>:running` zset by lease expiry; `<p>:s:<status>` and `<p>:all` zsets by seq (listing);
 * - `<p>:idem` hash idempotency key -> id; `<p>:seq` the counter.
 * Submit, claim and renew are one Lua script each (atomic on the server; a batch of submits is one
 * pipelined round trip, a claim takes up to `max` tasks within each agent's room); the other transitions
 * run the pure functions of transitions.ts in Node and write back with a compare-and-set script on
 * `ver`, retried when another instance wrote first.
 */
import { Redis } from 'ioredis';
import { AppError, isAppError, messageOf } from '../errors.js';
import { PRIORITY_RANK, TASK_STATUSES, type ClaimFilter, type CommitBatch, type CommitResult, type Completion, type ListQuery, type NewTask, type Outcome, type Task, type TaskPage, type TaskStatus } from './model.js';
import { checkStoredTask, corruptTask, decodeCursor, emptyCounts, encodeCursor, newTaskId, pageSize, parseStoredTask, taskNotFound, type TaskStore } from './store.js';
import { cancelled, completed, expired, matchesAgent, newTask, redriven } from './transitions.js';

const SUBMIT = `
local p, id, key = ARGV[1], ARGV[2], ARGV[3]
if key ~= '' then
  local existing = redis.call('HGET', p..':idem', key)
  if existing then return {0, existing} end
end
local seq = redis.call('INCR', p..':seq')
local qscore = tonumber(ARGV[4]) * 1000000000000 + seq
redis.call('HSET', p..':t:'..id, 'seq', seq, 'status', 'queued', 'doc', ARGV[6], 'ver', 0, 'route', ARGV[5], 'qscore', qscore, 'cancel', 0)
if key ~= '' then redis.call('HSET', p..':idem', key, id) end
redis.call('ZADD', p..':queued', qscore, id)
redis.call('ZADD', p..':s:queued', seq, id)
redis.call('ZADD', p..':all', seq, id)
return {1, id}`;

// up to ARGV[6] tasks; ARGV[7] the room left per agent route (JSON {"a:<agent>": n}), ARGV[8]
// the room of a route absent from it (-1: no bound); answers a list of HGETALL replies
const CLAIM = `
local p, owner, exp, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p..':delayed', '-inf', now)) do
  redis.call('ZREM', p..':delayed', id)
  redis.call('ZADD', p..':queued', redis.call('HGET', p..':t:'..id, 'qscore'), id)
end
local full = {}
for _, r in ipairs(cjson.decode(ARGV[5])) do full[r] = true end
local max, room, default = tonumber(ARGV[6]), cjson.decode(ARGV[7]), tonumber(ARGV[8])
local out, offset, skipped = {}, 0, 0
while #out < max and offset < 10000 do
  local ids = redis.call('ZRANGE', p..':queued', offset, offset + 99)
  if #ids == 0 then break end
  skipped = 0
  for _, id in ipairs(ids) do
    if #out >= max then break end
    local k = p..':t:'..id
    local route = redis.call('HGET', k, 'route')
    local left = -1
    if string.sub(route, 1, 2) == 'a:' then
      left = room[route] or default
      if left == 0 then full[route] = true end
    end
    if full[route] then
      skipped = skipped + 1
    else
      if left > 0 then room[route] = left - 1 end
      redis.call('ZREM', p..':queued', id)
      redis.call('ZADD', p..':running', exp, id)
      redis.call('ZREM', p..':s:queued', id)
      redis.call('ZADD', p..':s:running', redis.call('HGET', k, 'seq'), id)
      redis.call('HSET', k, 'status', 'running', 'lease_owner', owner, 'lease_expires_at', exp, 'attempt_started_at', now)
      redis.call('HSETNX', k, 'started_at', now)
      redis.call('HINCRBY', k, 'ver', 1)
      table.insert(out, redis.call('HGETALL', k))
    end
  end
  -- the taken ids left the zset: only the skipped ones are still in front
  offset = offset + skipped
end
return out`;

const RENEW = `
local k = ARGV[1]..':t:'..ARGV[2]
local cur = redis.call('HMGET', k, 'status', 'lease_owner', 'cancel')
if cur[1] ~= 'running' or cur[2] ~= ARGV[3] then return -1 end
redis.call('HSET', k, 'lease_expires_at', ARGV[4])
redis.call('HINCRBY', k, 'ver', 1)
redis.call('ZADD', ARGV[1]..':running', ARGV[4], ARGV[2])
return tonumber(cur[3])`;

// compare-and-set of a whole task: indexes follow the status change
const PUT = `
local p, id = ARGV[1], ARGV[2]
local k = p..':t:'..id
local cur = redis.call('HMGET', k, 'ver', 'status', 'seq', 'qscore')
if not cur[1] then return -1 end
if cur[1] ~= ARGV[3] then return 0 end
local old, new = cur[2], ARGV[4]
redis.call('ZREM', p..':queued', id)
redis.call('ZREM', p..':delayed', id)
redis.call('ZREM', p..':running', id)
if old ~= new then
  redis.call('ZREM', p..':s:'..old, id)
  redis.call('ZADD', p..':s:'..new, cur[3], id)
end
if new == 'queued' then
  if tonumber(ARGV[6]) > tonumber(ARGV[7]) then redis.call('ZADD', p..':delayed', ARGV[6], id)
  else redis.call('ZADD', p..':queued', cur[4], id) end
elseif new == 'running' then
  redis.call('ZADD', p..':running', ARGV[10], id)
end
redis.call('HSET', k, 'status', new, 'doc', ARGV[5], 'cancel', ARGV[8])
local names = {'lease_owner', 'lease_expires_at', 'attempt_started_at', 'started_at'}
for i, f in ipairs(names) do
  local v = ARGV[8 + i]
  if v == '' then redis.call('HDEL', k, f) else redis.call('HSET', k, f, v) end
end
redis.call('HINCRBY', k, 'ver', 1)
return 1`;

type Script = (...args: (string | number)[]) => Promise<unknown>;

/** The fields a claim sets, kept beside the JSON. */
const OVERLAY = ['status', 'lease_owner', 'lease_expires_at', 'attempt_started_at', 'started_at'] as const;
const NUMERIC = new Set(['lease_expires_at', 'attempt_started_at', 'started_at']);

/** Compare-and-set rounds before giving up (only under heavy contention on one task). */
const CAS_ROUNDS = 50;

export interface RedisTaskStoreOptions {
  /** redis://host:port[/db] */
  url: string;
  /** Key prefix (default `nexus:tasks`); tests use one per store. */
  prefix?: string;
}

export class RedisTaskStore implements TaskStore {
  readonly kind = 'redis';
  private readonly redis: Redis;
  private readonly p: string;
  private readonly scripts: { submit: Script; claim: Script; renew: Script; put: Script };

  /** Connects lazily on the first command; a server that does not answer fails calls with TASK_STORE_UNREACHABLE. */
  constructor(opts: RedisTaskStoreOptions) {
    this.p = opts.prefix ?? 'nexus:tasks';
    this.redis = new Redis(opts.url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
    this.redis.on('error', () => undefined); // surfaced per call (guard)
    const define = (name: string, lua: string): Script => {
      this.redis.defineCommand(name, { numberOfKeys: 0, lua });
      const r = this.redis as unknown as Record<string, Script>;
      return (...args) => r[name]!.call(this.redis, ...args);
    };
    this.scripts = { submit: define('nexusTaskSubmit', SUBMIT), claim: define('nexusTaskClaim', CLAIM), renew: define('nexusTaskRenew', RENEW), put: define('nexusTaskPut', PUT) };
  }

  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isAppError(err)) throw err;
      throw new AppError('TASK_STORE_UNREACHABLE', `task store (redis) failed to ${what}: ${messageOf(err)}`, { hint: 'check that redis-server runs and the URL is right', cause: err });
    }
  }

  /** `parse`: parseStoredTask (full zod, what the API answers) or checkStoredTask (hot path). */
  private fromHash(id: string, h: Record<string, string>, parse: (raw: unknown, where: string) => Task = parseStoredTask): { task: Task; ver: string } {
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(h.doc ?? '') as Record<string, unknown>;
    } catch (err) {
      throw corruptTask(id, 'its JSON does not parse', err);
    }
    for (const f of OVERLAY) {
      const v = h[f];
      if (v === undefined) delete doc[f];
      else doc[f] = NUMERIC.has(f) ? Number(v) : v;
    }
    return { task: parse(doc, id), ver: h.ver ?? '' };
  }

  private async read(id: string, parse?: (raw: unknown, where: string) => Task): Promise<{ task: Task; ver: string; seq: number } | undefined> {
    const h = await this.redis.hgetall(`${this.p}:t:${id}`);
    if (!h.doc) return undefined;
    return { ...this.fromHash(id, h, parse), seq: Number(h.seq) };
  }

  private docOf(t: Task): string {
    const doc: Record<string, unknown> = { ...t };
    for (const f of OVERLAY) delete doc[f];
    return JSON.stringify(doc);
  }

  /** Write `next` if the task is still at version `ver`: 1 written, 0 changed meanwhile, -1 gone. */
  private async put(next: Task, ver: string, now: number): Promise<number> {
    const opt = (v: string | number | undefined) => (v === undefined ? '' : String(v));
    return Number(
      await this.scripts.put(this.p, next.task_id, ver, next.status, this.docOf(next), next.run_at, now, next.cancel_requested ? 1 : 0,
        opt(next.lease_owner), opt(next.lease_expires_at), opt(next.attempt_started_at), opt(next.started_at)),
    );
  }

  /** Read, apply `change`, compare-and-set; again when another writer came first. */
  private async update<T>(taskId: string, now: number, change: (t: Task) => { next?: Task; out: T }, parse?: (raw: unknown, where: string) => Task): Promise<T> {
    for (let round = 0; round < CAS_ROUNDS; round++) {
      const cur = await this.read(taskId, parse);
      if (!cur) throw taskNotFound(taskId);
      const { next, out } = change(cur.task);
      if (!next) return out;
      const r = await this.put(next, cur.ver, now);
      if (r === 1) return out;
      if (r === -1) throw taskNotFound(taskId);
    }
    throw new AppError('TASK_STORE_UNREACHABLE', `task ${taskId} kept changing under ${CAS_ROUNDS} writes`, { hint: 'retry the request' });
  }

  async submit(input: NewTask, now: number): Promise<{ task: Task; created: boolean }> {
    return (await this.submitMany([input], now))[0]!;
  }

  /** One round trip: the submit scripts pipelined (each atomic on the server, run in order). */
  async submitMany(inputs: readonly NewTask[], now: number): Promise<{ task: Task; created: boolean }[]> {
    if (inputs.length === 0) return [];
    return this.guard('submit', async () => {
      const tasks = inputs.map((input) => newTask(input, newTaskId(), now));
      const pipe = this.redis.pipeline();
      const r = pipe as unknown as Record<string, (...args: (string | number)[]) => unknown>;
      for (const task of tasks) {
        const route = task.agent !== undefined ? `a:${task.agent}` : `c:${task.capability}`;
        r.nexusTaskSubmit!.call(pipe, this.p, task.task_id, task.idempotency_key ?? '', PRIORITY_RANK[task.priority], route, this.docOf(task));
      }
      const replies = (await pipe.exec()) ?? [];
      return Promise.all(
        tasks.map(async (task, i) => {
          const [err, reply] = replies[i] ?? [new Error('no reply'), undefined];
          if (err) throw err;
          const [created, id] = reply as [number, string];
          if (created === 1) return { task, created: true };
          const existing = await this.read(id, checkStoredTask);
          if (!existing) throw corruptTask(id, 'its idempotency key names a task that is gone');
          return { task: existing.task, created: false };
        }),
      );
    });
  }

  async get(taskId: string): Promise<Task | undefined> {
    return this.guard('read', async () => (await this.read(taskId))?.task);
  }

  async claim(owner: string, leaseMs: number, now: number, filter: ClaimFilter = {}): Promise<Task | undefined> {
    return (await this.claimMany(owner, leaseMs, now, 1, filter))[0];
  }

  async claimMany(owner: string, leaseMs: number, now: number, max: number, filter: ClaimFilter = {}): Promise<Task[]> {
    if (max < 1) return [];
    return this.guard('claim', async () => {
      const full = [...(filter.fullAgents ?? []).map((a) => `a:${a}`), ...(filter.fullCapabilities ?? []).map((c) => `c:${c}`)];
      const room = Object.fromEntries(Object.entries(filter.agentRoom ?? {}).map(([a, n]) => [`a:${a}`, Math.max(0, Math.floor(n))]));
      const perAgent = filter.perAgentRoom === undefined ? -1 : Math.max(0, Math.floor(filter.perAgentRoom));
      const replies = (await this.scripts.claim(this.p, owner, now + leaseMs, now, JSON.stringify(full), Math.floor(max), JSON.stringify(room), perAgent)) as string[][];
      return replies.map((flat) => {
        const h: Record<string, string> = {};
        for (let i = 0; i < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
        const id = JSON.parse(h.doc ?? '{}').task_id as string;
        return this.fromHash(id, h, checkStoredTask).task;
      });
    });
  }

  async renew(taskId: string, owner: string, leaseMs: number, now: number): Promise<{ held: boolean; cancelRequested: boolean }> {
    return this.guard('renew a lease', async () => {
      const r = Number(await this.scripts.renew(this.p, taskId, owner, now + leaseMs));
      return { held: r >= 0, cancelRequested: r === 1 };
    });
  }

  async complete(taskId: string, owner: string, outcome: Outcome, now: number): Promise<Task | undefined> {
    return this.completeOne(taskId, owner, outcome, now);
  }

  private completeOne(taskId: string, owner: string, outcome: Outcome, now: number, parse?: (raw: unknown, where: string) => Task): Promise<Task | undefined> {
    return this.guard('complete', () =>
      this.update(
        taskId,
        now,
        (t) => {
          const next = completed(t, owner, outcome, now);
          return next ? { next, out: next } : { out: undefined };
        },
        parse,
      ),
    );
  }

  /** Each completion is its own compare-and-set (they touch different tasks), all in flight at once. */
  async completeMany(items: readonly Completion[], now: number): Promise<(Task | undefined)[]> {
    return Promise.all(items.map((c) => this.completeOne(c.taskId, c.owner, c.outcome, now, checkStoredTask).catch((err: unknown) => (isAppError(err) && err.code === 'TASK_NOT_FOUND' ? undefined : Promise.reject(err)))));
  }

  /** Not one transaction on Redis: the three steps in order, each atomic (scripts), each durable as Redis is. */
  async commit(batch: CommitBatch, now: number): Promise<CommitResult> {
    const submitted = await this.submitMany(batch.submits ?? [], now);
    const completed = await this.completeMany(batch.completions ?? [], now);
    const c = batch.claim;
    const claimed = c ? await this.claimMany(c.owner, c.leaseMs, now, c.max, c.filter) : [];
    return { submitted, completed, claimed };
  }

  async requeueExpired(now: number): Promise<number> {
    return this.guard('re-queue expired leases', async () => {
      let n = 0;
      for (const id of await this.redis.zrangebyscore(`${this.p}:running`, '-inf', now)) {
        const moved = await this.update(id, now, (t) => {
          const next = expired(t, now);
          return next ? { next, out: true } : { out: false };
        }).catch((err: unknown) => (isAppError(err) && err.code === 'TASK_NOT_FOUND' ? false : Promise.reject(err)));
        if (moved) n++;
      }
      return n;
    });
  }

  async cancel(taskId: string, now: number): Promise<Task> {
    return this.guard('cancel', () =>
      this.update(taskId, now, (t) => {
        const next = cancelled(t, now);
        return { next, out: next };
      }),
    );
  }

  async redrive(taskId: string, now: number): Promise<Task> {
    return this.guard('re-drive', () =>
      this.update(taskId, now, (t) => {
        const next = redriven(t, now);
        return { next, out: next };
      }),
    );
  }

  async list(query: ListQuery): Promise<TaskPage> {
    return this.guard('list', async () => {
      const limit = pageSize(query.limit);
      const key = query.status ? `${this.p}:s:${query.status}` : `${this.p}:all`;
      let max = decodeCursor(query.cursor);
      const out: { task: Task; seq: number }[] = [];
      // scan newest first in batches, filtering by agent here; bounded so one page stays cheap
      for (let scanned = 0; out.length <= limit && scanned < 20_000; ) {
        const ids = await this.redis.zrevrangebyscore(key, max === undefined ? '+inf' : `(${max}`, '-inf', 'LIMIT', 0, 200);
        if (ids.length === 0) break;
        scanned += ids.length;
        const pipe = this.redis.pipeline();
        for (const id of ids) pipe.hgetall(`${this.p}:t:${id}`);
        const rows = (await pipe.exec()) ?? [];
        for (let i = 0; i < ids.length; i++) {
          const h = rows[i]?.[1] as Record<string, string> | undefined;
          if (!h?.doc) continue;
          const seq = Number(h.seq);
          max = seq;
          const { task } = this.fromHash(ids[i]!, h);
          if (query.agent !== undefined && !matchesAgent(task, query.agent)) continue;
          out.push({ task, seq });
          if (out.length > limit) break;
        }
      }
      const page = out.slice(0, limit);
      return { tasks: page.map((x) => x.task), ...(out.length > limit ? { next_cursor: encodeCursor(page[page.length - 1]!.seq) } : {}) };
    });
  }

  async counts(): Promise<Record<TaskStatus, number>> {
    return this.guard('count', async () => {
      const pipe = this.redis.pipeline();
      for (const s of TASK_STATUSES) pipe.zcard(`${this.p}:s:${s}`);
      const rows = (await pipe.exec()) ?? [];
      const out = emptyCounts();
      TASK_STATUSES.forEach((s, i) => (out[s] = Number(rows[i]?.[1] ?? 0)));
      return out;
    });
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
