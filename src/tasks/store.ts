/**
 * Where tasks live: one interface, two implementations run against one contract suite
 * (test/helpers/task-store-contract.ts):
 * - SqliteTaskStore (src/tasks/sqlite-store.ts): the embedded default, `<workspace>/.nexus/tasks.db`;
 * - RedisTaskStore (src/tasks/redis-store.ts): shared by several manager instances.
 * Times are ms since the epoch, passed in (the caller's clock), never read by the store.
 */
import { v7 as uuidv7 } from 'uuid';
import { ZodError } from 'zod';
import { AppError } from '../errors.js';
import { PRIORITIES, TASK_STATUSES, TaskSchema, type ClaimFilter, type CommitBatch, type CommitResult, type Completion, type ListQuery, type NewTask, type Outcome, type Task, type TaskPage, type TaskStatus } from './model.js';

export interface TaskStore {
  /** `sqlite` or `redis` (logs, metrics). */
  readonly kind: string;
  /**
   * Queue a validated task. With an `idempotency_key` already known, nothing is written and the
   * existing task is returned with `created: false` (whatever its state).
   */
  submit(input: NewTask, now: number): Promise<{ task: Task; created: boolean }>;
  /**
   * Group commit: `submit` for each input, in order, in one write (an input repeating an earlier
   * one's idempotency key gets that task back, `created: false`). Resolves once every task is
   * durable (committed), with one answer per input; when it rejects, none of them was written.
   */
  submitMany(inputs: readonly NewTask[], now: number): Promise<{ task: Task; created: boolean }[]>;
  /** The task, or undefined. @throws AppError TASK_STORE_CORRUPT when the stored record breaks TaskSchema. */
  get(taskId: string): Promise<Task | undefined>;
  /**
   * Atomically take the next runnable task (status queued, `run_at <= now`), high before normal
   * before low, oldest first within a priority, skipping tasks of `filter`'s full agents and
   * capabilities; it becomes `running` under `owner`'s lease until `now + leaseMs`. Two claimers
   * never get the same task. Undefined when nothing is runnable.
   */
  claim(owner: string, leaseMs: number, now: number, filter?: ClaimFilter): Promise<Task | undefined>;
  /**
   * `claim` up to `max` tasks in one write, in claim order, taking at most `filter.agentRoom[agent]`
   * (else `filter.perAgentRoom`) tasks naming one agent; a full agent's tasks are skipped, not
   * waited for. Empty when nothing is runnable.
   */
  claimMany(owner: string, leaseMs: number, now: number, max: number, filter?: ClaimFilter): Promise<Task[]>;
  /**
   * Extend `owner`'s lease to `now + leaseMs`. `held: false` when the task is no longer running
   * under that lease (the caller must stop and drop its answer); `cancelRequested` when a cancel
   * was asked (possibly through another manager instance).
   */
  renew(taskId: string, owner: string, leaseMs: number, now: number): Promise<{ held: boolean; cancelRequested: boolean }>;
  /** Record the end of `owner`'s attempt (transitions.ts `completed`); undefined when the lease was lost. */
  complete(taskId: string, owner: string, outcome: Outcome, now: number): Promise<Task | undefined>;
  /**
   * `complete` for each item in one write (group commit): one answer per item, undefined where the
   * lease was lost or the task is gone. Resolves once all are durable.
   */
  completeMany(items: readonly Completion[], now: number): Promise<(Task | undefined)[]>;
  /**
   * The dispatcher's group commit: the submits (as `submitMany`), then the completions (as
   * `completeMany`), then the claim (as `claimMany`, so it can take the tasks just submitted and
   * the slots just freed), in one write where the store can (SQLite: one transaction; Redis: in
   * that order, each step atomic). Resolves once all of it is durable; when it rejects, SQLite
   * wrote none of it (the dispatcher then retries the items one by one).
   */
  commit(batch: CommitBatch, now: number): Promise<CommitResult>;
  /** Return every task whose lease ended before `now` to the queue (transitions.ts `expired`); how many. */
  requeueExpired(now: number): Promise<number>;
  /** Cancel (transitions.ts `cancelled`). @throws AppError TASK_NOT_FOUND, TASK_STATE_CONFLICT. */
  cancel(taskId: string, now: number): Promise<Task>;
  /** Re-drive a dead task (transitions.ts `redriven`). @throws AppError TASK_NOT_FOUND, TASK_STATE_CONFLICT. */
  redrive(taskId: string, now: number): Promise<Task>;
  /** Newest first, filtered, paged by an opaque cursor. */
  list(query: ListQuery): Promise<TaskPage>;
  /** Tasks per status now. */
  counts(): Promise<Record<TaskStatus, number>>;
  close(): Promise<void>;
}

/**
 * A new task's id: a UUIDv7 (RFC 9562: time-ordered, 74 random bits), so the ids of a batch land at
 * the right edge of an index on them (SQLite: a few pages written per commit instead of one random
 * page per task) and sort by submission time.
 */
export const newTaskId = (): string => uuidv7();

/** Page size bounds of `list`. */
export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 500;

export function pageSize(limit: number | undefined): number {
  return Math.min(MAX_PAGE, Math.max(1, Math.floor(limit ?? DEFAULT_PAGE)));
}

/** Parse a task read back from a store. @throws AppError TASK_STORE_CORRUPT naming the task and the first bad field. */
export function parseStoredTask(raw: unknown, where: string): Task {
  try {
    return TaskSchema.parse(raw);
  } catch (err) {
    const issue = err instanceof ZodError ? err.issues[0] : undefined;
    throw corruptTask(where, issue ? `${issue.path.join('.') || '(root)'} ${issue.message}` : 'unreadable', err);
  }
}

const STATUS_SET: ReadonlySet<unknown> = new Set(TASK_STATUSES);
const PRIORITY_SET: ReadonlySet<unknown> = new Set(PRIORITIES);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The hot path's read of a record this store wrote itself (claim, complete, a repeated
 * idempotency key): a cheap check of the fields the state machine relies on (ids, status,
 * priority, counters, attempts, parameters) instead of the full TaskSchema parse, which runs when
 * the check fails (so a bad record still gets its precise TASK_STORE_CORRUPT) and on every read
 * the API answers with (`get`, `list`). Records enter only through `submit`, validated by
 * NewTaskSchema, and the pure transitions.
 * @throws AppError TASK_STORE_CORRUPT as parseStoredTask.
 */
export function checkStoredTask(raw: unknown, where: string): Task {
  const t = raw as Record<string, unknown>;
  if (
    isObject(t) &&
    typeof t.task_id === 'string' &&
    typeof t.tool_name === 'string' &&
    STATUS_SET.has(t.status) &&
    PRIORITY_SET.has(t.priority) &&
    Number.isInteger(t.max_attempts) &&
    Number.isInteger(t.run) &&
    Number.isInteger(t.run_at) &&
    typeof t.cancel_requested === 'boolean' &&
    Array.isArray(t.attempts) &&
    t.attempts.every(isObject) &&
    isObject(t.parameters)
  ) {
    return t as unknown as Task;
  }
  return parseStoredTask(raw, where);
}

/** AppError TASK_STORE_CORRUPT for the task record `where`. */
export function corruptTask(where: string, why: string, cause?: unknown): AppError {
  return new AppError('TASK_STORE_CORRUPT', `task record ${where} is malformed: ${why}`, {
    hint: 'the store was written by something else or by hand; remove the record or restore the store',
    cause,
  });
}

export function taskNotFound(taskId: string): AppError {
  return new AppError('TASK_NOT_FOUND', `no task '${taskId}'`, { hint: 'list tasks with GET /api/v1/tasks', details: { task_id: taskId } });
}

/** The cursor of a page: the storage sequence of its last task, opaque to clients. */
export function encodeCursor(seq: number): string {
  return Buffer.from(String(seq)).toString('base64url');
}

/** @throws AppError BAD_REQUEST for a cursor this API did not give. */
export function decodeCursor(cursor: string | undefined): number | undefined {
  if (cursor === undefined) return undefined;
  const n = Number(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!Number.isSafeInteger(n) || n < 0) throw new AppError('BAD_REQUEST', 'cursor is not one this API gave', { hint: 'pass the next_cursor of the previous page, unchanged' });
  return n;
}

export const emptyCounts = (): Record<TaskStatus, number> => ({ queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0, dead: 0 });
