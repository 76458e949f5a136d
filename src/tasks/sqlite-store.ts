/**
 * The embedded task store, the default: one SQLite file, `<workspace>/.nexus/tasks.db`, no server
 * to run (better-sqlite3). WAL mode so readers never block the writer and a SIGKILL loses nothing
 * that was committed (every submit commits before its 202); `synchronous=NORMAL` is durable
 * across a process crash in WAL mode (sqlite.org/pragma.html#pragma_synchronous; only a power
 * loss can drop the last transactions). Several processes may open the same file (busy timeout).
 *
 * A row keeps the task as JSON (`doc`) plus the columns the queue needs indexed (status, priority
 * rank, run_at, agent) and the fields a claim sets (lease owner and expiry, attempt start, first
 * start), which override the JSON on read: a claim reads the head of the queue by the partial
 * `tasks_queue` index and updates only those columns, inside one IMMEDIATE transaction (the write
 * lock first), so two claimers, in this process or another, never take the same task.
 *
 * Group commit: `commit` (and `submitMany`, `claimMany`, `completeMany`) do a whole batch in one
 * IMMEDIATE transaction (one WAL append instead of one per task); the dispatcher feeds it what
 * arrives in the same event-loop turn and answers each caller only after the commit.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { PRIORITY_RANK, type ClaimFilter, type CommitBatch, type CommitResult, type Completion, type ListQuery, type NewTask, type Outcome, type Task, type TaskPage, type TaskStatus } from './model.js';
import { checkStoredTask, corruptTask, decodeCursor, emptyCounts, encodeCursor, newTaskId, pageSize, parseStoredTask, taskNotFound, type TaskStore } from './store.js';
import { cancelled, claimed, completed, expired, newTask, redriven } from './transitions.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id TEXT NOT NULL UNIQUE,
  idempotency_key TEXT UNIQUE,
  status TEXT NOT NULL,
  prio INTEGER NOT NULL,
  agent TEXT,
  capability TEXT,
  ran_on_agent TEXT,
  run_at INTEGER NOT NULL,
  lease_owner TEXT,
  lease_expires_at INTEGER,
  attempt_started_at INTEGER,
  started_at INTEGER,
  doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_agent ON tasks (agent, seq);
CREATE INDEX IF NOT EXISTS tasks_ran_on ON tasks (ran_on_agent, seq);
CREATE INDEX IF NOT EXISTS tasks_status_seq ON tasks (status, seq);
`;

/**
 * Schema versions after the first (PRAGMA user_version), applied in order on open:
 * 1. the queue and lease indexes become partial (only queued, only running rows): a claim or a
 *    completion then rewrites small indexes, and finished tasks cost them nothing. They keep
 *    `status` first so the planner still prefers them (equality and order in one index).
 */
const MIGRATIONS = [
  `DROP INDEX IF EXISTS tasks_queue;
   DROP INDEX IF EXISTS tasks_lease;
   CREATE INDEX tasks_queue ON tasks (status, prio, seq) WHERE status = 'queued';
   CREATE INDEX tasks_lease ON tasks (status, lease_expires_at) WHERE status = 'running';`,
];

interface Row {
  seq: number;
  task_id: string;
  status: string;
  lease_owner: string | null;
  lease_expires_at: number | null;
  attempt_started_at: number | null;
  started_at: number | null;
  doc: string;
}

/** The fields kept in columns (set by a claim without rewriting the JSON). */
const COLUMN_FIELDS = ['status', 'lease_owner', 'lease_expires_at', 'attempt_started_at', 'started_at'] as const;

/**
 * The task of a row: its JSON with the column fields laid over. `parse` is parseStoredTask (full
 * zod, for what the API answers) or checkStoredTask (the cheap check of the hot path).
 */
function fromRow(row: Row, parse: (raw: unknown, where: string) => Task = parseStoredTask): Task {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(row.doc) as Record<string, unknown>;
  } catch (err) {
    throw corruptTask(row.task_id, 'its JSON does not parse', err);
  }
  for (const f of COLUMN_FIELDS) {
    const v = row[f];
    if (v === null) delete doc[f];
    else doc[f] = v;
  }
  return parse(doc, row.task_id);
}

function docOf(task: Task): string {
  // COLUMN_FIELDS left out (a rest copy: cheaper than deleting keys)
  const { status: _s, lease_owner: _o, lease_expires_at: _e, attempt_started_at: _a, started_at: _t, ...doc } = task;
  return JSON.stringify(doc);
}

/** The room of one claim (ClaimFilter), shared by the queued rows and a commit's new tasks. */
class ClaimRoom {
  readonly full: Set<string>;
  /** JSON list of the full capabilities (for the claim query). */
  readonly caps: string;
  private readonly fullCaps: ReadonlySet<string>;
  private readonly room: Map<string, number>;

  constructor(private readonly filter: ClaimFilter) {
    this.full = new Set(filter.fullAgents ?? []);
    this.fullCaps = new Set(filter.fullCapabilities ?? []);
    this.caps = JSON.stringify([...this.fullCaps]);
    this.room = new Map(Object.entries(filter.agentRoom ?? {}));
  }

  /** Take a slot for a task naming `agent` (or `capability`); false when it has none left. */
  admit(agent: string | undefined, capability: string | undefined): boolean {
    if (agent === undefined) return capability === undefined || !this.fullCaps.has(capability);
    const left = this.full.has(agent) ? 0 : (this.room.get(agent) ?? this.filter.perAgentRoom ?? Infinity);
    if (left <= 0) {
      this.full.add(agent);
      return false;
    }
    this.room.set(agent, left - 1);
    if (left <= 1) this.full.add(agent);
    return true;
  }
}

/** `<workspace>/.nexus/tasks.db`. */
export const tasksDbPath = (workspace: string): string => join(workspace, '.nexus', 'tasks.db');

export class SqliteTaskStore implements TaskStore {
  readonly kind = 'sqlite';
  private readonly db: Database.Database;
  private readonly stmts;
  /** The batch transactions, built once (better-sqlite3's `transaction` wraps a function). */
  private readonly tx;

  /** Open (creating) the database at `file` (`:memory:` for a private in-memory store). */
  constructor(file: string) {
    if (file !== ':memory:') mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.migrate();
    const db = this.db;
    this.stmts = {
      insert: db.prepare(
        `INSERT INTO tasks (task_id, idempotency_key, status, prio, agent, capability, run_at, lease_owner, lease_expires_at, attempt_started_at, started_at, doc)
         VALUES (@task_id, @idempotency_key, @status, @prio, @agent, @capability, @run_at, @lease_owner, @lease_expires_at, @attempt_started_at, @started_at, @doc)`,
      ),
      byId: db.prepare<[string], Row>('SELECT * FROM tasks WHERE task_id = ?'),
      byKey: db.prepare<[string], Row>('SELECT * FROM tasks WHERE idempotency_key = ?'),
      // the head of the queue (by the tasks_queue index), read and taken inside one IMMEDIATE
      // transaction: no other claimer, in this process or another, can take it in between
      candidates: db.prepare<{ now: number; agents: string; caps: string; limit: number }, Row & { agent: string | null }>(
        `SELECT * FROM tasks
         WHERE status = 'queued' AND run_at <= @now
           AND (agent IS NULL OR agent NOT IN (SELECT value FROM json_each(@agents)))
           AND (capability IS NULL OR capability NOT IN (SELECT value FROM json_each(@caps)))
         ORDER BY prio, seq LIMIT @limit`,
      ),
      // the same, within one priority (a commit merges its new tasks in after each priority's queue)
      candidatesAt: db.prepare<{ now: number; agents: string; caps: string; limit: number; prio: number }, Row & { agent: string | null }>(
        `SELECT * FROM tasks
         WHERE status = 'queued' AND prio = @prio AND run_at <= @now
           AND (agent IS NULL OR agent NOT IN (SELECT value FROM json_each(@agents)))
           AND (capability IS NULL OR capability NOT IN (SELECT value FROM json_each(@caps)))
         ORDER BY seq LIMIT @limit`,
      ),
      anyRunnable: db.prepare<{ now: number; agents: string; caps: string; limit: number }, { seq: number; agent: string | null }>(
        `SELECT seq, agent FROM tasks
         WHERE status = 'queued' AND run_at <= @now
           AND (agent IS NULL OR agent NOT IN (SELECT value FROM json_each(@agents)))
           AND (capability IS NULL OR capability NOT IN (SELECT value FROM json_each(@caps)))
         ORDER BY prio, seq LIMIT @limit`,
      ),
      take: db.prepare<{ seq: number; owner: string; exp: number; now: number; started: number }>(
        `UPDATE tasks SET status = 'running', lease_owner = @owner, lease_expires_at = @exp,
           attempt_started_at = @now, started_at = @started
         WHERE seq = @seq AND status = 'queued'`,
      ),
      renew: db.prepare<{ id: string; owner: string; exp: number }, { cancel: number | null }>(
        `UPDATE tasks SET lease_expires_at = @exp WHERE task_id = @id AND status = 'running' AND lease_owner = @owner
         RETURNING json_extract(doc, '$.cancel_requested') AS cancel`,
      ),
      put: db.prepare(
        `UPDATE tasks SET status = @status, run_at = @run_at, ran_on_agent = @ran_on_agent, lease_owner = @lease_owner,
           lease_expires_at = @lease_expires_at, attempt_started_at = @attempt_started_at, started_at = @started_at, doc = @doc
         WHERE task_id = @task_id`,
      ),
      putSeq: db.prepare(
        `UPDATE tasks SET status = @status, run_at = @run_at, ran_on_agent = @ran_on_agent, lease_owner = @lease_owner,
           lease_expires_at = @lease_expires_at, attempt_started_at = @attempt_started_at, started_at = @started_at, doc = @doc
         WHERE seq = @seq`,
      ),
      expired: db.prepare<[number], Row>(`SELECT * FROM tasks WHERE status = 'running' AND lease_expires_at <= ?`),
      anyExpired: db.prepare<[number], { one: number }>(`SELECT 1 AS one FROM tasks WHERE status = 'running' AND lease_expires_at <= ? LIMIT 1`),
      counts: db.prepare<[], { status: string; n: number }>('SELECT status, count(*) AS n FROM tasks GROUP BY status'),
      list: db.prepare<{ cursor: number | null; status: string | null; agent: string | null; limit: number }, Row>(
        `SELECT * FROM tasks
         WHERE (@cursor IS NULL OR seq < @cursor) AND (@status IS NULL OR status = @status)
           AND (@agent IS NULL OR agent = @agent OR ran_on_agent = @agent)
         ORDER BY seq DESC LIMIT @limit`,
      ),
    };
    this.tx = {
      submit: db.transaction((inputs: readonly NewTask[], now: number) => inputs.map((input) => this.insert(input, now))),
      claim: db.transaction((owner: string, exp: number, now: number, max: number, filter: ClaimFilter) => this.take(owner, exp, now, max, new ClaimRoom(filter), [])),
      complete: db.transaction((items: readonly Completion[], now: number) => items.map((c) => this.completeRow(c, now))),
      commit: db.transaction((batch: CommitBatch, now: number) => this.commitBatch(batch, now)),
      requeue: db.transaction((now: number) => {
        let n = 0;
        for (const row of this.stmts.expired.all(now)) {
          const next = expired(fromRow(row), now);
          if (next) {
            this.put(next);
            n++;
          }
        }
        return n;
      }),
    };
  }

  /** Apply the MIGRATIONS this file has not had yet, each in a write transaction (another process may race). */
  private migrate(): void {
    MIGRATIONS.forEach((sql, i) => {
      this.db
        .transaction(() => {
          if ((this.db.pragma('user_version', { simple: true }) as number) > i) return;
          this.db.exec(sql);
          this.db.pragma(`user_version = ${i + 1}`);
        })
        .immediate();
    });
  }

  /** The embedded store of a workspace: `<workspace>/.nexus/tasks.db`. */
  static forWorkspace(workspace: string): SqliteTaskStore {
    return new SqliteTaskStore(tasksDbPath(workspace));
  }

  /** Write a task's row back (by its storage `seq` when known: no index lookup). */
  private put(t: Task, seq?: number): void {
    (seq === undefined ? this.stmts.put : this.stmts.putSeq).run({
      ...(seq === undefined ? { task_id: t.task_id } : { seq }),
      status: t.status,
      run_at: t.run_at,
      ran_on_agent: t.ran_on_agent ?? null,
      lease_owner: t.lease_owner ?? null,
      lease_expires_at: t.lease_expires_at ?? null,
      attempt_started_at: t.attempt_started_at ?? null,
      started_at: t.started_at ?? null,
      doc: docOf(t),
    });
  }

  /** Read-modify-write of one task in an IMMEDIATE transaction (the write lock is taken first). */
  private update<T>(taskId: string, change: (t: Task) => { next?: Task; out: T }): T {
    return this.db
      .transaction(() => {
        const row = this.stmts.byId.get(taskId);
        if (!row) throw taskNotFound(taskId);
        const { next, out } = change(fromRow(row));
        if (next) this.put(next);
        return out;
      })
      .immediate();
  }

  /** One submit inside a write transaction. */
  private insert(input: NewTask, now: number): { task: Task; created: boolean } {
    if (input.idempotency_key !== undefined) {
      const row = this.stmts.byKey.get(input.idempotency_key);
      if (row) return { task: fromRow(row, checkStoredTask), created: false };
    }
    const task = newTask(input, newTaskId(), now);
    this.write(task);
    return { task, created: true };
  }

  /** Insert a new task's row (queued, or running when a commit claimed it at once). */
  private write(task: Task): void {
    this.stmts.insert.run({
      task_id: task.task_id,
      idempotency_key: task.idempotency_key ?? null,
      status: task.status,
      prio: PRIORITY_RANK[task.priority],
      agent: task.agent ?? null,
      capability: task.capability ?? null,
      run_at: task.run_at,
      lease_owner: task.lease_owner ?? null,
      lease_expires_at: task.lease_expires_at ?? null,
      attempt_started_at: task.attempt_started_at ?? null,
      started_at: task.started_at ?? null,
      doc: docOf(task),
    });
  }

  /**
   * The group commit inside one write transaction: the completions, then the submits, with the
   * claim in queue order over both: per priority, the queued rows (older) first, then this
   * batch's new tasks in submission order. A new task claimed at once is inserted as running (one
   * write instead of an insert and an update); its submitter still gets it as queued (accepted).
   */
  private commitBatch(batch: CommitBatch, now: number): CommitResult {
    const completed = (batch.completions ?? []).map((c) => this.completeRow(c, now));
    const byKey = new Map<string, { task: Task; created: boolean }>();
    const fresh: Task[] = [];
    const submitted = (batch.submits ?? []).map((input) => {
      const key = input.idempotency_key;
      let r = key === undefined ? undefined : byKey.get(key);
      if (r) return { task: r.task, created: false };
      const row = key === undefined ? undefined : this.stmts.byKey.get(key);
      if (row) r = { task: fromRow(row, checkStoredTask), created: false };
      else {
        r = { task: newTask(input, newTaskId(), now), created: true };
        fresh.push(r.task);
      }
      if (key !== undefined) byKey.set(key, r);
      return r;
    });
    const claimedNow = new Map<Task, Task>();
    const out: Task[] = [];
    const c = batch.claim;
    if (c && c.max >= 1) {
      const max = Math.floor(c.max);
      const room = new ClaimRoom(c.filter ?? {});
      // most turns find the queue empty (its tasks were claimed when submitted): one read says so
      const queued = this.stmts.anyRunnable.get({ now, agents: JSON.stringify([...room.full]), caps: room.caps, limit: 1 }) !== undefined;
      for (let prio = 0; prio <= 2 && out.length < max; prio++) {
        if (queued) this.take(c.owner, now + c.leaseMs, now, max, room, out, prio);
        for (const t of fresh) {
          if (out.length >= max) break;
          if (PRIORITY_RANK[t.priority] !== prio || !room.admit(t.agent, t.capability)) continue;
          const running = claimed(t, c.owner, c.leaseMs, now);
          claimedNow.set(t, running);
          out.push(running);
        }
      }
    }
    for (const t of fresh) this.write(claimedNow.get(t) ?? t);
    return { submitted, completed, claimed: out };
  }

  /** One completion inside a write transaction: undefined when the task is gone or the lease lost. */
  private completeRow({ taskId, owner, outcome }: Completion, now: number): Task | undefined {
    const row = this.stmts.byId.get(taskId);
    if (!row) return undefined;
    const next = completed(fromRow(row, checkStoredTask), owner, outcome, now);
    if (next) this.put(next, row.seq);
    return next;
  }

  /**
   * Claims inside a write transaction, appended to `out` until it holds `max`: read the head of
   * the queue (of priority rank `prio` when given) without the full agents, take each row whose
   * agent has room left, again without the agents that filled up, until nothing runnable is left.
   */
  private take(owner: string, exp: number, now: number, max: number, room: ClaimRoom, out: Task[], prio?: number): Task[] {
    while (out.length < max) {
      const q = { now, agents: JSON.stringify([...room.full]), caps: room.caps, limit: max - out.length };
      const rows = prio === undefined ? this.stmts.candidates.all(q) : this.stmts.candidatesAt.all({ ...q, prio });
      let skipped = false;
      for (const r of rows) {
        if (!room.admit(r.agent ?? undefined, undefined)) {
          skipped = true;
          continue;
        }
        // the row was read inside this write transaction: the update cannot miss, and the task
        // is the row with the claim's fields (transitions.ts `claimed`)
        const task = claimed(fromRow(r, checkStoredTask), owner, exp - now, now);
        this.stmts.take.run({ seq: r.seq, owner, exp, now, started: task.started_at! });
        out.push(task);
      }
      if (!skipped) break; // all taken (max reached) or nothing more is runnable
    }
    return out;
  }

  async submit(input: NewTask, now: number): Promise<{ task: Task; created: boolean }> {
    return this.tx.submit.immediate([input], now)[0]!;
  }

  async submitMany(inputs: readonly NewTask[], now: number): Promise<{ task: Task; created: boolean }[]> {
    return inputs.length === 0 ? [] : this.tx.submit.immediate(inputs, now);
  }

  async get(taskId: string): Promise<Task | undefined> {
    const row = this.stmts.byId.get(taskId);
    return row ? fromRow(row) : undefined;
  }

  async claim(owner: string, leaseMs: number, now: number, filter: ClaimFilter = {}): Promise<Task | undefined> {
    return this.tx.claim.immediate(owner, now + leaseMs, now, 1, filter)[0];
  }

  async claimMany(owner: string, leaseMs: number, now: number, max: number, filter: ClaimFilter = {}): Promise<Task[]> {
    if (max < 1) return [];
    // a read first: the write lock (and a commit) only when something looks runnable; the
    // transaction reads again, so a task another claimer took meanwhile is not taken twice
    if (!this.stmts.anyRunnable.get({ now, agents: JSON.stringify(filter.fullAgents ?? []), caps: JSON.stringify(filter.fullCapabilities ?? []), limit: 1 })) return [];
    return this.tx.claim.immediate(owner, now + leaseMs, now, Math.floor(max), filter);
  }

  async renew(taskId: string, owner: string, leaseMs: number, now: number): Promise<{ held: boolean; cancelRequested: boolean }> {
    const r = this.stmts.renew.get({ id: taskId, owner, exp: now + leaseMs });
    return { held: r !== undefined, cancelRequested: r?.cancel === 1 };
  }

  async complete(taskId: string, owner: string, outcome: Outcome, now: number): Promise<Task | undefined> {
    return this.update(taskId, (t) => {
      const next = completed(t, owner, outcome, now);
      return next ? { next, out: next } : { out: undefined };
    });
  }

  async completeMany(items: readonly Completion[], now: number): Promise<(Task | undefined)[]> {
    return items.length === 0 ? [] : this.tx.complete.immediate(items, now);
  }

  async commit(batch: CommitBatch, now: number): Promise<CommitResult> {
    return this.tx.commit.immediate(batch, now);
  }

  async requeueExpired(now: number): Promise<number> {
    // a read first: the write lock only when there is something to re-queue (this runs every poll)
    if (!this.stmts.anyExpired.get(now)) return 0;
    return this.tx.requeue.immediate(now);
  }

  async cancel(taskId: string, now: number): Promise<Task> {
    return this.update(taskId, (t) => {
      const next = cancelled(t, now);
      return { next, out: next };
    });
  }

  async redrive(taskId: string, now: number): Promise<Task> {
    return this.update(taskId, (t) => {
      const next = redriven(t, now);
      return { next, out: next };
    });
  }

  async list(query: ListQuery): Promise<TaskPage> {
    const limit = pageSize(query.limit);
    const rows = this.stmts.list.all({ cursor: decodeCursor(query.cursor) ?? null, status: query.status ?? null, agent: query.agent ?? null, limit: limit + 1 });
    const page = rows.slice(0, limit);
    return { tasks: page.map((r) => fromRow(r)), ...(rows.length > limit ? { next_cursor: encodeCursor(page[page.length - 1]!.seq) } : {}) };
  }

  async counts(): Promise<Record<TaskStatus, number>> {
    const out = emptyCounts();
    for (const { status, n } of this.stmts.counts.all()) if (status in out) out[status as TaskStatus] = n;
    return out;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
