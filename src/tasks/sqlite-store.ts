/**
 * The embedded task store, the default: one SQLite file, `<workspace>/.nexus/tasks.db`, no server
 * to run (better-sqlite3). WAL mode so readers never block the writer and a SIGKILL loses nothing
 * that was committed (every submit commits before its 202); `synchronous=NORMAL` is durable
 * across a process crash in WAL mode (sqlite.org/pragma.html#pragma_synchronous; only a power
 * loss can drop the last transactions). Several processes may open the same file (busy timeout).
 *
 * A row keeps the task as JSON (`doc`) plus the columns the queue needs indexed (status, priority
 * rank, run_at, agent) and the fields a claim sets (lease owner and expiry, attempt start, first
 * start), which override the JSON on read: a claim is then one `UPDATE ... RETURNING` picking the
 * head of the queue by index, atomic without reading first.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { PRIORITY_RANK, type ClaimFilter, type ListQuery, type NewTask, type Outcome, type Task, type TaskPage, type TaskStatus } from './model.js';
import { corruptTask, decodeCursor, emptyCounts, encodeCursor, pageSize, parseStoredTask, taskNotFound, type TaskStore } from './store.js';
import { cancelled, completed, expired, newTask, redriven } from './transitions.js';

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
CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (status, prio, seq);
CREATE INDEX IF NOT EXISTS tasks_lease ON tasks (status, lease_expires_at);
CREATE INDEX IF NOT EXISTS tasks_agent ON tasks (agent, seq);
CREATE INDEX IF NOT EXISTS tasks_ran_on ON tasks (ran_on_agent, seq);
CREATE INDEX IF NOT EXISTS tasks_status_seq ON tasks (status, seq);
`;

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

function fromRow(row: Row): Task {
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
  return parseStoredTask(doc, row.task_id);
}

function docOf(task: Task): string {
  const doc: Record<string, unknown> = { ...task };
  for (const f of COLUMN_FIELDS) delete doc[f];
  return JSON.stringify(doc);
}

/** `<workspace>/.nexus/tasks.db`. */
export const tasksDbPath = (workspace: string): string => join(workspace, '.nexus', 'tasks.db');

export class SqliteTaskStore implements TaskStore {
  readonly kind = 'sqlite';
  private readonly db: Database.Database;
  private readonly stmts;

  /** Open (creating) the database at `file` (`:memory:` for a private in-memory store). */
  constructor(file: string) {
    if (file !== ':memory:') mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    const db = this.db;
    this.stmts = {
      insert: db.prepare(
        `INSERT INTO tasks (task_id, idempotency_key, status, prio, agent, capability, run_at, doc)
         VALUES (@task_id, @idempotency_key, 'queued', @prio, @agent, @capability, @run_at, @doc)`,
      ),
      byId: db.prepare<[string], Row>('SELECT * FROM tasks WHERE task_id = ?'),
      byKey: db.prepare<[string], Row>('SELECT * FROM tasks WHERE idempotency_key = ?'),
      // the head of the queue, taken in one statement: no other claimer can take it in between
      claim: db.prepare<{ owner: string; exp: number; now: number; agents: string; caps: string }, Row>(
        `UPDATE tasks SET status = 'running', lease_owner = @owner, lease_expires_at = @exp,
           attempt_started_at = @now, started_at = coalesce(started_at, @now)
         WHERE seq = (
           SELECT seq FROM tasks
           WHERE status = 'queued' AND run_at <= @now
             AND (agent IS NULL OR agent NOT IN (SELECT value FROM json_each(@agents)))
             AND (capability IS NULL OR capability NOT IN (SELECT value FROM json_each(@caps)))
           ORDER BY prio, seq LIMIT 1)
         RETURNING *`,
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
      expired: db.prepare<[number], Row>(`SELECT * FROM tasks WHERE status = 'running' AND lease_expires_at <= ?`),
      counts: db.prepare<[], { status: string; n: number }>('SELECT status, count(*) AS n FROM tasks GROUP BY status'),
      list: db.prepare<{ cursor: number | null; status: string | null; agent: string | null; limit: number }, Row>(
        `SELECT * FROM tasks
         WHERE (@cursor IS NULL OR seq < @cursor) AND (@status IS NULL OR status = @status)
           AND (@agent IS NULL OR agent = @agent OR ran_on_agent = @agent)
         ORDER BY seq DESC LIMIT @limit`,
      ),
    };
  }

  /** The embedded store of a workspace: `<workspace>/.nexus/tasks.db`. */
  static forWorkspace(workspace: string): SqliteTaskStore {
    return new SqliteTaskStore(tasksDbPath(workspace));
  }

  private put(t: Task): void {
    this.stmts.put.run({
      task_id: t.task_id,
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

  async submit(input: NewTask, now: number): Promise<{ task: Task; created: boolean }> {
    return this.db
      .transaction(() => {
        if (input.idempotency_key !== undefined) {
          const row = this.stmts.byKey.get(input.idempotency_key);
          if (row) return { task: fromRow(row), created: false };
        }
        const task = newTask(input, randomUUID(), now);
        this.stmts.insert.run({
          task_id: task.task_id,
          idempotency_key: task.idempotency_key ?? null,
          prio: PRIORITY_RANK[task.priority],
          agent: task.agent ?? null,
          capability: task.capability ?? null,
          run_at: task.run_at,
          doc: docOf(task),
        });
        return { task, created: true };
      })
      .immediate();
  }

  async get(taskId: string): Promise<Task | undefined> {
    const row = this.stmts.byId.get(taskId);
    return row ? fromRow(row) : undefined;
  }

  async claim(owner: string, leaseMs: number, now: number, filter: ClaimFilter = {}): Promise<Task | undefined> {
    // one statement is its own (autocommit) write transaction: atomic across connections and processes
    const row = this.stmts.claim.get({ owner, exp: now + leaseMs, now, agents: JSON.stringify(filter.fullAgents ?? []), caps: JSON.stringify(filter.fullCapabilities ?? []) });
    return row ? fromRow(row) : undefined;
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

  async requeueExpired(now: number): Promise<number> {
    return this.db
      .transaction(() => {
        let n = 0;
        for (const row of this.stmts.expired.all(now)) {
          const next = expired(fromRow(row), now);
          if (next) {
            this.put(next);
            n++;
          }
        }
        return n;
      })
      .immediate();
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
    return { tasks: page.map(fromRow), ...(rows.length > limit ? { next_cursor: encodeCursor(page[page.length - 1]!.seq) } : {}) };
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
