/**
 * The task model (issue 10 §1-3), BullMQ's job model kept with our own stores (STYLE.md): explicit
 * states, attempts with backoff, a dead set you can re-drive.
 *
 *   queued --claim--> running --success--> succeeded
 *     ^                 |  --400/404/...--> failed          (non-retriable: at once)
 *     |                 |  --retriable, attempts left--> queued (run_at = now + backoff)
 *     |                 |  --retriable, none left--> dead --re-drive--> queued
 *     |                 |  --cancel--> cancelled
 *     +--lease expired--+  (the owner died: at-least-once, the expiry is recorded as an attempt)
 *
 * What a store reads back for the API is parsed with these zod schemas, so a corrupt row or a
 * foreign writer is an error (TASK_STORE_CORRUPT), never a half-typed object; the dispatcher's hot
 * path (claim, complete) uses the cheaper structural check of store.ts `checkStoredTask`, which
 * falls back to the full parse when a record looks wrong.
 */
import * as z from 'zod';

export const PRIORITIES = ['high', 'normal', 'low'] as const;
export const PrioritySchema = z.enum(PRIORITIES);
export type Priority = z.infer<typeof PrioritySchema>;
/** Sort rank of a priority: lower runs first. */
export const PRIORITY_RANK: Record<Priority, number> = { high: 0, normal: 1, low: 2 };

export const TASK_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'dead'] as const;
export const TaskStatusSchema = z.enum(TASK_STATUSES);
export type TaskStatus = z.infer<typeof TaskStatusSchema>;
/** States a task never leaves (but `dead`, which a re-drive sends back to `queued`). */
export const FINAL_STATUSES: readonly TaskStatus[] = ['succeeded', 'failed', 'cancelled', 'dead'];

/** Attempts per task when the submitter gives none (BullMQ's `attempts`). */
export const DEFAULT_MAX_ATTEMPTS = 3;
/** Largest `max_attempts` accepted. */
export const MAX_MAX_ATTEMPTS = 20;
/** Largest `timeout_ms` accepted (10 min). */
export const MAX_TIMEOUT_MS = 600_000;

const slug = z.string().min(1).max(63);
const ms = z.number().int().nonnegative();

/** What a submitter sends (POST /tasks/submit): exactly one of `agent` or `capability`. */
export const NewTaskSchema = z
  .object({
    agent: slug.optional(),
    capability: z.string().min(1).max(63).optional(),
    tool_name: z.string().min(1).max(128),
    parameters: z.record(z.string(), z.unknown()).default({}),
    priority: PrioritySchema.default('normal'),
    idempotency_key: z.string().min(1).max(200).optional(),
    timeout_ms: z.number().int().min(1).max(MAX_TIMEOUT_MS).optional(),
    max_attempts: z.number().int().min(1).max(MAX_MAX_ATTEMPTS).default(DEFAULT_MAX_ATTEMPTS),
  })
  .strict()
  .refine((t) => (t.agent === undefined) !== (t.capability === undefined), { message: 'give exactly one of agent or capability' });
export type NewTaskInput = z.input<typeof NewTaskSchema>;
export type NewTask = z.output<typeof NewTaskSchema>;

/** One finished attempt of a task (ms since the epoch). */
export const AttemptSchema = z
  .object({
    /** Which run of the task it belongs to: 0, then +1 per re-drive (the attempt budget is per run). */
    run: z.number().int().nonnegative(),
    started_at: ms,
    finished_at: ms,
    /** The dispatcher that held the lease. */
    owner: z.string(),
    agent: z.string().optional(),
    replica: z.string().optional(),
    /** The agent's HTTP status, when it answered. */
    http_status: z.number().int().optional(),
    /** Why it failed (absent on success). */
    error: z.string().optional(),
  })
  .strict();
export type Attempt = z.infer<typeof AttemptSchema>;

/** A task as a store holds it. Timestamps are ms since the epoch (the injected clock). */
export const TaskSchema = z
  .object({
    task_id: z.string().min(1),
    agent: slug.optional(),
    capability: z.string().optional(),
    tool_name: z.string(),
    parameters: z.record(z.string(), z.unknown()),
    priority: PrioritySchema,
    idempotency_key: z.string().optional(),
    timeout_ms: z.number().int().positive().optional(),
    max_attempts: z.number().int().positive(),
    status: TaskStatusSchema,
    attempts: z.array(AttemptSchema),
    /** Current run (re-drives so far). */
    run: z.number().int().nonnegative(),
    created_at: ms,
    /** First claim of the current run. */
    started_at: ms.optional(),
    finished_at: ms.optional(),
    /** Not claimed before this time (retry backoff). */
    run_at: ms,
    /** While running: the dispatcher holding it and when its lease ends. */
    lease_owner: z.string().optional(),
    lease_expires_at: ms.optional(),
    /** Start of the attempt in progress. */
    attempt_started_at: ms.optional(),
    /** A cancel asked while running: the owner aborts and records `cancelled`. */
    cancel_requested: z.boolean(),
    /** The agent and replica that ran the last attempt. */
    ran_on_agent: z.string().optional(),
    ran_on_replica: z.string().optional(),
    /** The agent's answer body (succeeded, or failed with an answer). */
    result: z.unknown().optional(),
    /** The last error (failed, dead, cancelled). */
    error: z.string().optional(),
  })
  .strict();
export type Task = z.infer<typeof TaskSchema>;

/** Attempts spent in the task's current run. */
export function attemptsInRun(task: Pick<Task, 'attempts' | 'run'>): number {
  return task.attempts.filter((a) => a.run === task.run).length;
}

/** How a running attempt ended, as the dispatcher reports it to `TaskStore.complete`. */
export type Outcome =
  | { status: 'succeeded'; result: unknown; agent: string; replica: string; http_status: number }
  | { status: 'failed'; error: string; result?: unknown; agent?: string; replica?: string; http_status?: number }
  | { status: 'queued'; error: string; run_at: number; agent?: string; replica?: string; http_status?: number }
  | { status: 'dead'; error: string; result?: unknown; agent?: string; replica?: string; http_status?: number }
  | { status: 'cancelled'; error: string; agent?: string; replica?: string };

/** Filters and page of `TaskStore.list`: newest first; `cursor` is the previous page's `next_cursor`. */
export interface ListQuery {
  status?: TaskStatus | undefined;
  agent?: string | undefined;
  /** 1-500, default 50. */
  limit?: number | undefined;
  cursor?: string | undefined;
}
export interface TaskPage {
  tasks: Task[];
  next_cursor?: string;
}

/**
 * What `claim` / `claimMany` may not pick: tasks of agents (and capabilities) whose concurrency
 * limit is full; and, for `claimMany`, how many more tasks naming an agent it may take.
 */
export interface ClaimFilter {
  fullAgents?: readonly string[];
  fullCapabilities?: readonly string[];
  /** claimMany: free slots of the agents that have tasks in flight (agent slug -> slots). */
  agentRoom?: Readonly<Record<string, number>>;
  /** claimMany: free slots of an agent absent from `agentRoom` (default: no bound but `max`). */
  perAgentRoom?: number;
}

/** One completion for `TaskStore.completeMany`. */
export interface Completion {
  taskId: string;
  owner: string;
  outcome: Outcome;
}

/** The claim inside a group commit: up to `max` tasks for `owner`, as `TaskStore.claimMany`. */
export interface ClaimRequest {
  owner: string;
  leaseMs: number;
  max: number;
  filter?: ClaimFilter;
}

/** One group commit (`TaskStore.commit`): what a dispatcher gathered in one event-loop turn. */
export interface CommitBatch {
  submits?: readonly NewTask[];
  completions?: readonly Completion[];
  claim?: ClaimRequest;
}

/** The answers of a group commit, in the order of the batch's lists. */
export interface CommitResult {
  submitted: { task: Task; created: boolean }[];
  completed: (Task | undefined)[];
  claimed: Task[];
}
