/**
 * The task state machine as pure functions (no I/O): every store applies the same transitions, so
 * the embedded and the shared store cannot drift apart. Times are ms since the epoch.
 * Claiming is the one transition a store does natively (one atomic statement or script); its
 * result is `claimed()`.
 */
import { AppError } from '../errors.js';
import { attemptsInRun, FINAL_STATUSES, type Attempt, type NewTask, type Outcome, type Task } from './model.js';

/** The error recorded when a lease runs out: the dispatcher holding it died or stalled. */
export const LEASE_EXPIRED = 'lease expired: the dispatcher holding the task stopped renewing it';

/** A freshly queued task. */
export function newTask(input: NewTask, taskId: string, now: number): Task {
  return {
    task_id: taskId,
    ...(input.agent !== undefined ? { agent: input.agent } : {}),
    ...(input.capability !== undefined ? { capability: input.capability } : {}),
    tool_name: input.tool_name,
    parameters: input.parameters,
    priority: input.priority,
    ...(input.idempotency_key !== undefined ? { idempotency_key: input.idempotency_key } : {}),
    ...(input.timeout_ms !== undefined ? { timeout_ms: input.timeout_ms } : {}),
    max_attempts: input.max_attempts,
    status: 'queued',
    attempts: [],
    run: 0,
    created_at: now,
    run_at: now,
    cancel_requested: false,
  };
}

/** The fields a claim sets (queued -> running under `owner`'s lease until `now + leaseMs`). */
export function claimed(task: Task, owner: string, leaseMs: number, now: number): Task {
  return { ...task, status: 'running', lease_owner: owner, lease_expires_at: now + leaseMs, attempt_started_at: now, started_at: task.started_at ?? now };
}

/** Drop the running-only fields. */
function released(task: Task): Task {
  const { lease_owner: _o, lease_expires_at: _e, attempt_started_at: _s, ...rest } = task;
  return rest;
}

function attemptOf(task: Task, owner: string, now: number, o: { error?: string; agent?: string; replica?: string; http_status?: number }): Attempt {
  return {
    run: task.run,
    started_at: task.attempt_started_at ?? now,
    finished_at: now,
    owner,
    ...(o.agent !== undefined ? { agent: o.agent } : {}),
    ...(o.replica !== undefined ? { replica: o.replica } : {}),
    ...(o.http_status !== undefined ? { http_status: o.http_status } : {}),
    ...(o.error !== undefined ? { error: o.error } : {}),
  };
}

/**
 * Record how the running attempt of `owner` ended. Returns undefined (and changes nothing) when
 * the task is not running under `owner`'s lease any more (it expired and was re-queued, or
 * another dispatcher holds it): a late answer never overwrites newer state (fencing).
 */
export function completed(task: Task, owner: string, outcome: Outcome, now: number): Task | undefined {
  if (task.status !== 'running' || task.lease_owner !== owner) return undefined;
  const base = released({ ...task, attempts: [...task.attempts, attemptOf(task, owner, now, outcome)] });
  const ranOn = {
    ...(outcome.agent !== undefined ? { ran_on_agent: outcome.agent } : {}),
    ...(outcome.replica !== undefined ? { ran_on_replica: outcome.replica } : {}),
  };
  const { error: _e, result: _r, ...clean } = base;
  switch (outcome.status) {
    case 'succeeded':
      return { ...clean, ...ranOn, status: 'succeeded', result: outcome.result, finished_at: now };
    case 'queued':
      return { ...clean, ...ranOn, status: 'queued', run_at: outcome.run_at, error: outcome.error };
    case 'failed':
    case 'dead':
      return { ...clean, ...ranOn, status: outcome.status, error: outcome.error, ...('result' in outcome && outcome.result !== undefined ? { result: outcome.result } : {}), finished_at: now };
    case 'cancelled':
      return { ...clean, ...ranOn, status: 'cancelled', error: outcome.error, cancel_requested: true, finished_at: now };
  }
}

/**
 * A running task whose lease ended before `now`: the expiry is recorded as an attempt, then the
 * task is cancelled (a cancel was asked), dead (its attempt budget is spent) or queued again at
 * once (at-least-once). Returns undefined when the lease has not expired.
 */
export function expired(task: Task, now: number): Task | undefined {
  if (task.status !== 'running' || task.lease_expires_at === undefined || task.lease_expires_at > now) return undefined;
  const owner = task.lease_owner ?? 'unknown';
  const t = released({ ...task, attempts: [...task.attempts, attemptOf(task, owner, now, { error: LEASE_EXPIRED })] });
  if (task.cancel_requested) return { ...t, status: 'cancelled', error: 'cancelled while its dispatcher was gone', finished_at: now };
  if (attemptsInRun(t) >= t.max_attempts) return { ...t, status: 'dead', error: LEASE_EXPIRED, finished_at: now };
  return { ...t, status: 'queued', run_at: now, error: LEASE_EXPIRED };
}

/**
 * Cancel: a queued task is cancelled at once (it never runs); a running one is marked
 * `cancel_requested` (its dispatcher aborts the call and records `cancelled`).
 * @throws AppError TASK_STATE_CONFLICT (409) when the task already finished.
 */
export function cancelled(task: Task, now: number): Task {
  if (task.status === 'queued') return { ...task, status: 'cancelled', cancel_requested: true, error: 'cancelled before it ran', finished_at: now };
  if (task.status === 'running') return { ...task, cancel_requested: true };
  throw new AppError('TASK_STATE_CONFLICT', `task ${task.task_id} is already ${task.status}`, { hint: 'only queued or running tasks can be cancelled', details: { task_id: task.task_id, status: task.status } });
}

/**
 * Re-drive a dead task (BullMQ's retry of a failed job): queued again with a fresh attempt budget
 * (a new `run`); its past attempts stay in the history.
 * @throws AppError TASK_STATE_CONFLICT (409) when the task is not dead.
 */
export function redriven(task: Task, now: number): Task {
  if (task.status !== 'dead') {
    throw new AppError('TASK_STATE_CONFLICT', `task ${task.task_id} is ${task.status}, not dead`, { hint: 'only dead tasks (GET /tasks/dead-letter) can be re-driven', details: { task_id: task.task_id, status: task.status } });
  }
  const { started_at: _s, finished_at: _f, error: _e, result: _r, ...rest } = task;
  return { ...rest, status: 'queued', run: task.run + 1, run_at: now, cancel_requested: false };
}

/** True when `task` is for agent `slug` (named, or the one that ran it). */
export function matchesAgent(task: Task, slug: string): boolean {
  return task.agent === slug || task.ran_on_agent === slug;
}

export function isFinal(task: Task): boolean {
  return FINAL_STATUSES.includes(task.status);
}
