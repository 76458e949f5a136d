/**
 * The dispatcher (issue 10 §2, §3): takes queued tasks from a TaskStore and runs each as one
 * gateway call, BullMQ's worker model on our stores.
 *
 * - Order: the store's claim order (high, normal, low; oldest first within a priority).
 * - Concurrency: at most `perAgentLimit` (default 50, the source documents' figure) tasks per agent
 *   in flight in this dispatcher, and `maxInFlight` in all; tasks of a full agent stay queued
 *   (the claim skips them) so a later high-priority task still overtakes them when a slot frees.
 * - Capability tasks go to the least-busy healthy agent `resolveCapability` names; the gateway's
 *   balancer picks the replica.
 * - Outcomes (classify below): an answer 2xx succeeds; a 4xx answer (400 bad parameters, 404 no
 *   such tool, 413, 415, ...) fails at once; a 5xx answer (500 TOOL_ERROR, 504 TOOL_TIMEOUT), a
 *   gateway 502/503/504 (AGENT_CALL_FAILED, AGENT_UNAVAILABLE, AGENT_TIMEOUT), a connection error
 *   or no healthy agent for a capability are retried after an exponential backoff with jitter
 *   (cockatiel's halfJitterGenerator: between d/2 and d, d = initial * 2^attempt, capped) until
 *   `max_attempts`, then the task is dead.
 * - Leases: every claim holds a lease of `leaseMs`, renewed every `leaseMs / 3` while the call
 *   runs; a lost lease aborts the call and drops its answer. Expired leases (a dispatcher that died)
 *   return to the queue when any dispatcher ticks (at-least-once: the expiry is recorded as an
 *   attempt, so a task that ran twice always shows it).
 * - Cancel: a queued task is cancelled in the store and never runs; a running one is marked and its
 *   gateway call aborted through its signal (here at once; in another instance at its next renew).
 * - Group commit: the submits and completions of one event-loop turn (gathered until
 *   setImmediate) go to the store as one `commit`, which also claims tasks for the slots free at
 *   that point (the ones just submitted included): SQLite does the turn in one write transaction
 *   instead of three per task. A submitter is answered only once its batch committed, so a 202
 *   still means "durable". Commits and claim rounds never overlap (one lane), so the slots they
 *   count are never claimed twice. A slot is free as soon as its call ended (the record of the
 *   outcome follows in the next commit).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { halfJitterGenerator } from 'cockatiel';
import { systemClock, type Clock } from '../clock.js';
import { AppError, isAppError, messageOf } from '../errors.js';
import type { ExecuteOptions, ExecuteRequest, ExecuteResult } from '../server/gateway/gateway.js';
import { attemptsInRun, NewTaskSchema, type ClaimFilter, type ClaimRequest, type CommitResult, type Completion, type NewTask, type NewTaskInput, type Outcome, type Task, type TaskStatus } from './model.js';
import type { TaskStore } from './store.js';

/** The part of the gateway the dispatcher uses (src/server/gateway/gateway.ts). */
export interface TaskGateway {
  executeViaGateway(agent: string, req: ExecuteRequest, opts?: ExecuteOptions): Promise<ExecuteResult>;
}

/** A task changed state (for streams and logs). */
export interface TaskEvent {
  task_id: string;
  status: TaskStatus;
  agent?: string;
  replica?: string;
  /** Attempts in the current run so far. */
  attempts: number;
  error?: string;
}

export interface DispatcherOptions {
  store: TaskStore;
  gateway: TaskGateway;
  /** Slugs of the healthy agents that have `capability` now (the registry's capabilities + the supervisor's health). */
  resolveCapability?: (capability: string) => readonly string[] | Promise<readonly string[]>;
  /** Stamps and backoff deadlines (tests: ManualClock). Polling and lease renewal use real timers. */
  clock?: Clock;
  /** This dispatcher's lease owner id (default `<host>:<pid>:<random>`). */
  owner?: string;
  /** Tasks in flight per agent in this dispatcher (default 50). */
  perAgentLimit?: number;
  /** Tasks in flight in this dispatcher (default 500). */
  maxInFlight?: number;
  /** Lease length in ms (default 30000); renewed every third of it. */
  leaseMs?: number;
  /** Idle poll interval in ms when nothing wakes it (default 200): other instances' work, due retries. */
  pollMs?: number;
  /** Retry backoff in ms: first delay (default 1000) and cap (default 60000). */
  backoff?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Every state change the dispatcher makes. */
  onEvent?: (e: TaskEvent) => void;
}

/** Most tasks one claim takes (one write transaction), and most items one group commit writes. */
const CLAIM_BATCH = 128;
const COMMIT_BATCH = 512;

/** The abort reason of a cancelled running task. */
class CancelRequested extends Error {}
/** The abort reason when another dispatcher took the task over. */
class LeaseLost extends Error {}

/** How an attempt's result is treated. */
type Verdict = { kind: 'success' } | { kind: 'retry'; error: string } | { kind: 'fail'; error: string };

/**
 * Classify a gateway answer or error (module docstring). Pure, exported for tests.
 * @param r the agent's answer, or undefined when the call threw `err`.
 */
export function classify(r: ExecuteResult | undefined, err?: unknown): Verdict {
  if (r) {
    if (r.status >= 200 && r.status < 300) return { kind: 'success' };
    const code = (r.body as { error?: { code?: string; message?: string } } | undefined)?.error;
    const error = `HTTP ${r.status}${code?.code ? ` ${code.code}` : ''}${code?.message ? `: ${code.message}` : ''}`;
    // 408 and 429 are the client-side statuses that mean "later", as in HTTP retry practice
    if (r.status >= 500 || r.status === 408 || r.status === 429) return { kind: 'retry', error };
    return { kind: 'fail', error };
  }
  if (isAppError(err) && (err.code === 'AGENT_NOT_FOUND' || err.code === 'BAD_REQUEST')) return { kind: 'fail', error: `${err.code}: ${err.message}` };
  return { kind: 'retry', error: isAppError(err) ? `${err.code}: ${err.message}` : messageOf(err) };
}

interface Running {
  task: Task;
  ctl: AbortController;
  agent?: string;
  /** Its slot was given back (the call ended). */
  freed?: boolean;
}

/** A submit or a completion waiting for the next group commit. */
interface PendingSubmit {
  input: NewTask;
  resolve: (r: { task: Task; created: boolean }) => void;
  reject: (err: unknown) => void;
}
interface PendingCompletion {
  completion: Completion;
  resolve: (t: Task | undefined) => void;
}

export class Dispatcher {
  readonly owner: string;
  private readonly store: TaskStore;
  private readonly gateway: TaskGateway;
  private readonly clock: Clock;
  private readonly opts: Required<Pick<DispatcherOptions, 'perAgentLimit' | 'maxInFlight' | 'leaseMs' | 'pollMs'>> & { initialDelayMs: number; maxDelayMs: number };
  private readonly resolveCapability: NonNullable<DispatcherOptions['resolveCapability']>;
  private readonly onEvent: (e: TaskEvent) => void;
  private readonly running = new Map<string, Running>();
  private readonly perAgent = new Map<string, number>();
  /** Capabilities seen in claimed tasks, to tell the claim which are full. */
  private readonly knownCapabilities = new Set<string>();
  private readonly slotWaiters: (() => void)[] = [];
  private readonly inflight = new Set<Promise<void>>();
  /** The next group commit's items (module docstring), and whether its turn is scheduled. */
  private submits: PendingSubmit[] = [];
  private completions: PendingCompletion[] = [];
  private flushScheduled = false;
  /** Commits and claim rounds run one at a time, in order. */
  private lane: Promise<unknown> = Promise.resolve();
  private readonly totals = { succeeded: 0, failed: 0, dead: 0, cancelled: 0, retried: 0, lease_lost: 0, requeued_expired: 0 };
  private ticking: Promise<number> | undefined;
  private lastRequeue = -Infinity;
  private loop: Promise<void> | undefined;
  private stopping = false;
  private wakeUp: (() => void) | undefined;
  /** A wake that came while a tick ran: the loop ticks again at once instead of sleeping. */
  private woken = false;

  constructor(o: DispatcherOptions) {
    this.store = o.store;
    this.gateway = o.gateway;
    this.clock = o.clock ?? systemClock;
    this.owner = o.owner ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.resolveCapability = o.resolveCapability ?? (() => []);
    this.onEvent = o.onEvent ?? (() => undefined);
    this.opts = {
      perAgentLimit: o.perAgentLimit ?? 50,
      maxInFlight: o.maxInFlight ?? 500,
      leaseMs: o.leaseMs ?? 30_000,
      pollMs: o.pollMs ?? 200,
      initialDelayMs: o.backoff?.initialDelayMs ?? 1000,
      maxDelayMs: o.backoff?.maxDelayMs ?? 60_000,
    };
  }

  /** Run `fn` after everything already in the lane (commits and claim rounds never overlap). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.lane.then(fn, fn);
    this.lane = p.catch(() => undefined);
    return p;
  }

  /** Schedule the group commit of this turn (once per turn). */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      void this.serial(() => this.flush());
    });
  }

  /**
   * One group commit: the pending submits and completions, plus a claim for the free slots; then
   * answer each caller and start what was claimed. When the store refuses the batch as a whole,
   * each item is tried alone (one bad input fails only its own caller; a completion that still
   * fails leaves its lease to expire: at-least-once).
   */
  private async flush(): Promise<void> {
    const submits = this.submits.splice(0, COMMIT_BATCH);
    const completions = this.completions.splice(0, COMMIT_BATCH);
    if (this.submits.length > 0 || this.completions.length > 0) this.scheduleFlush();
    if (submits.length === 0 && completions.length === 0) return;
    // only a started dispatcher claims in its commits (before start() there may be no gateway yet)
    const claim = this.loop ? await this.claimRequest() : undefined;
    const now = this.clock.now();
    let res: CommitResult;
    try {
      res = await this.store.commit({ submits: submits.map((s) => s.input), completions: completions.map((c) => c.completion), ...(claim ? { claim } : {}) }, now);
    } catch {
      await Promise.all([
        ...submits.map((s) => this.store.submit(s.input, now).then((r) => {
          if (r.created) this.emit(r.task);
          s.resolve(r);
        }, s.reject)),
        ...completions.map(({ completion: c, resolve }) => this.store.complete(c.taskId, c.owner, c.outcome, now).then(resolve, () => resolve(undefined))),
      ]);
      this.wake();
      return;
    }
    submits.forEach((s, i) => {
      const r = res.submitted[i]!;
      if (r.created) this.emit(r.task);
      s.resolve(r);
    });
    completions.forEach((c, i) => c.resolve(res.completed[i]));
    for (const task of res.claimed) this.run(task);
    if (claim && res.claimed.length >= claim.max) this.wake(); // there may be more to claim
  }

  /** The claim of a commit or a round: as many tasks as there are free slots (none while stopping). */
  private async claimRequest(): Promise<ClaimRequest | undefined> {
    const max = Math.min(CLAIM_BATCH, this.opts.maxInFlight - this.running.size);
    if (this.stopping || max < 1) return undefined;
    return { owner: this.owner, leaseMs: this.opts.leaseMs, max, filter: await this.claimFilter() };
  }

  /**
   * Validate and queue a task (the body of POST /tasks/submit); with a known `idempotency_key`
   * the existing task comes back with `created: false`.
   * @throws AppError BAD_REQUEST (one line naming the first bad field), TASK_STORE_UNREACHABLE.
   */
  async submit(input: NewTaskInput | unknown): Promise<{ task: Task; created: boolean }> {
    const parsed = NewTaskSchema.safeParse(input);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      throw new AppError('BAD_REQUEST', `invalid task: ${i.path.join('.') || '(body)'} ${i.message}`, { hint: 'send {agent | capability, tool_name, parameters, priority?, idempotency_key?, timeout_ms?, max_attempts?}' });
    }
    const out = await new Promise<{ task: Task; created: boolean }>((resolve, reject) => {
      this.submits.push({ input: parsed.data, resolve, reject });
      this.scheduleFlush();
    });
    return out;
  }

  /**
   * Cancel a task: queued -> cancelled (never runs); running -> its call is aborted (cancelled).
   * @throws AppError TASK_NOT_FOUND, TASK_STATE_CONFLICT (already finished).
   */
  async cancel(taskId: string): Promise<Task> {
    const t = await this.store.cancel(taskId, this.clock.now());
    if (t.status === 'cancelled') {
      this.totals.cancelled++;
      this.emit(t);
    }
    this.running.get(taskId)?.ctl.abort(new CancelRequested('cancelled while running'));
    return t;
  }

  /** Re-drive a dead task. @throws AppError TASK_NOT_FOUND, TASK_STATE_CONFLICT (not dead). */
  async redrive(taskId: string): Promise<Task> {
    const t = await this.store.redrive(taskId, this.clock.now());
    this.emit(t);
    this.wake();
    return t;
  }

  /**
   * One round: return expired leases to the queue (at most once per pollMs, and always on the
   * first tick), then claim and start tasks while slots are free. Resolves with how many started
   * (their calls go on; `idle()` waits for them). Rounds never overlap.
   */
  tick(): Promise<number> {
    this.ticking ??= this.serial(() => this.round()).finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async round(): Promise<number> {
    const now = this.clock.now();
    if (now - this.lastRequeue >= this.opts.pollMs) {
      this.lastRequeue = now;
      const n = await this.store.requeueExpired(now);
      this.totals.requeued_expired += n;
    }
    let started = 0;
    for (let claim = await this.claimRequest(); claim; claim = await this.claimRequest()) {
      const tasks = await this.store.claimMany(claim.owner, claim.leaseMs, this.clock.now(), claim.max, claim.filter);
      for (const task of tasks) this.run(task);
      started += tasks.length;
      if (tasks.length < claim.max) break; // nothing else runnable now (or every agent with work is full)
    }
    return started;
  }

  /** Start a claimed task's call. */
  private run(task: Task): void {
    if (task.capability !== undefined) this.knownCapabilities.add(task.capability);
    const ctl = new AbortController();
    const entry: Running = { task, ctl, ...(task.agent !== undefined ? { agent: task.agent } : {}) };
    this.running.set(task.task_id, entry);
    if (task.agent !== undefined) this.take(task.agent);
    this.emit(task);
    const p = this.execute(entry).finally(() => {
      this.inflight.delete(p);
      this.free(entry);
    });
    this.inflight.add(p);
  }

  /** Full agents and capabilities, and the room of the agents with tasks in flight. */
  private async claimFilter(): Promise<Required<Omit<ClaimFilter, 'agentRoom'>> & { agentRoom: Record<string, number> }> {
    const fullAgents: string[] = [];
    const agentRoom: Record<string, number> = {};
    for (const [a, n] of this.perAgent) {
      agentRoom[a] = Math.max(0, this.opts.perAgentLimit - n);
      if (n >= this.opts.perAgentLimit) fullAgents.push(a);
    }
    const fullCapabilities: string[] = [];
    if (fullAgents.length > 0) {
      for (const cap of this.knownCapabilities) {
        const agents = await this.resolveCapability(cap);
        if (agents.length > 0 && agents.every((a) => fullAgents.includes(a))) fullCapabilities.push(cap);
      }
    }
    return { fullAgents, fullCapabilities, agentRoom, perAgentRoom: this.opts.perAgentLimit };
  }

  /** Give a running task's slot back (once). */
  private free(entry: Running): void {
    if (entry.freed) return;
    entry.freed = true;
    this.running.delete(entry.task.task_id);
    if (entry.agent !== undefined) this.release(entry.agent);
  }

  private take(agent: string): void {
    this.perAgent.set(agent, (this.perAgent.get(agent) ?? 0) + 1);
  }

  private release(agent: string): void {
    const n = (this.perAgent.get(agent) ?? 1) - 1;
    if (n <= 0) this.perAgent.delete(agent);
    else this.perAgent.set(agent, n);
    this.slotWaiters.splice(0).forEach((w) => w());
  }

  /**
   * The least-busy healthy agent with `capability` that has a free slot, waiting for one if all are
   * full; its slot is taken before this returns (in the same turn as the choice, so tasks claimed
   * together spread over the agents).
   */
  private async agentFor(capability: string, signal: AbortSignal): Promise<string> {
    for (;;) {
      const agents = await this.resolveCapability(capability);
      if (agents.length === 0) throw new AppError('AGENT_UNAVAILABLE', `no healthy agent has capability '${capability}'`, { hint: 'start an agent with that capability' });
      const best = [...agents].sort((a, b) => (this.perAgent.get(a) ?? 0) - (this.perAgent.get(b) ?? 0))[0]!;
      if ((this.perAgent.get(best) ?? 0) < this.opts.perAgentLimit) {
        this.take(best);
        return best;
      }
      await new Promise<void>((resolve, reject) => {
        this.slotWaiters.push(resolve);
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    }
  }

  private async execute(entry: Running): Promise<void> {
    const { task, ctl } = entry;
    const renew = setInterval(() => {
      this.store.renew(task.task_id, this.owner, this.opts.leaseMs, this.clock.now()).then(
        (r) => {
          if (!r.held) ctl.abort(new LeaseLost('lease lost'));
          else if (r.cancelRequested) ctl.abort(new CancelRequested('cancelled while running'));
        },
        () => undefined, // the store is away: keep going; the lease decides
      );
    }, Math.max(10, Math.floor(this.opts.leaseMs / 3)));
    let result: ExecuteResult | undefined;
    let error: unknown;
    try {
      if (task.cancel_requested) throw new CancelRequested('cancelled while running');
      if (entry.agent === undefined) {
        entry.agent = await this.agentFor(task.capability!, ctl.signal);
      }
      result = await this.gateway.executeViaGateway(entry.agent, { tool_name: task.tool_name, parameters: task.parameters }, {
        signal: ctl.signal,
        ...(task.timeout_ms !== undefined ? { timeoutMs: task.timeout_ms } : {}),
      });
    } catch (err) {
      error = ctl.signal.aborted ? ctl.signal.reason : err;
    } finally {
      clearInterval(renew);
      this.free(entry); // the call is over: its slot is free for the next claim
    }
    if (error instanceof LeaseLost) {
      this.totals.lease_lost++;
      this.wake(); // no commit follows to claim for the freed slot
      return;
    }
    const outcome = this.outcomeOf(task, entry.agent, result, error);
    const done = await new Promise<Task | undefined>((resolve) => {
      this.completions.push({ completion: { taskId: task.task_id, owner: this.owner, outcome }, resolve });
      this.scheduleFlush();
    });
    if (!done) {
      this.totals.lease_lost++;
      return;
    }
    this.totals[done.status === 'queued' ? 'retried' : (done.status as 'succeeded' | 'failed' | 'dead' | 'cancelled')]++;
    this.emit(done);
  }

  private outcomeOf(task: Task, agent: string | undefined, r: ExecuteResult | undefined, err: unknown): Outcome {
    const on = { ...(agent !== undefined ? { agent } : {}), ...(r ? { replica: r.replica, http_status: r.status } : {}) };
    if (err instanceof CancelRequested) return { status: 'cancelled', error: err.message, ...on };
    const v = classify(r, err);
    if (v.kind === 'success') return { status: 'succeeded', result: r!.body, agent: agent!, replica: r!.replica, http_status: r!.status };
    const body = r ? { result: r.body } : {};
    if (v.kind === 'fail') return { status: 'failed', error: v.error, ...body, ...on };
    const attempt = attemptsInRun(task) + 1;
    if (attempt >= task.max_attempts) return { status: 'dead', error: v.error, ...body, ...on };
    const [delay] = halfJitterGenerator(attempt - 1, { generator: halfJitterGenerator, exponent: 2, initialDelay: this.opts.initialDelayMs, maxDelay: this.opts.maxDelayMs });
    return { status: 'queued', error: v.error, run_at: this.clock.now() + delay, ...on };
  }

  private emit(t: Task): void {
    this.onEvent({
      task_id: t.task_id,
      status: t.status,
      attempts: attemptsInRun(t),
      ...(t.ran_on_agent ?? t.agent ? { agent: (t.ran_on_agent ?? t.agent)! } : {}),
      ...(t.ran_on_replica ? { replica: t.ran_on_replica } : {}),
      ...(t.error && t.status !== 'succeeded' ? { error: t.error } : {}),
    });
  }

  /** Run a tick now instead of at the next poll (a submit, a freed slot). */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Resolves when no call is in flight (after the current tick). */
  async idle(): Promise<void> {
    for (;;) {
      await this.ticking;
      if (this.inflight.size === 0) return;
      await Promise.all([...this.inflight]);
    }
  }

  /** Tick until `stop()`: at once when woken, else every `pollMs`. */
  start(): void {
    if (this.loop) return;
    this.stopping = false;
    this.loop = (async () => {
      while (!this.stopping) {
        this.woken = false;
        await this.tick().catch(() => undefined); // store away: try again next poll
        if (this.stopping) break;
        if (this.woken) continue;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.opts.pollMs);
          this.wakeUp = () => {
            clearTimeout(timer);
            this.wakeUp = undefined;
            resolve();
          };
        });
      }
    })();
  }

  /**
   * Stop claiming and wait for the calls in flight to finish and be recorded (graceful; a killed
   * process leaves leases that expire instead). With `abort`, in-flight calls are aborted and
   * their tasks left to lease expiry.
   */
  async stop(opts: { abort?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.loop;
    this.loop = undefined;
    if (opts.abort) for (const r of this.running.values()) r.ctl.abort(new LeaseLost('dispatcher stopping'));
    await this.idle();
  }

  /** What this dispatcher is doing (GET /metrics/tasks): in flight per agent and totals since start. */
  stats(): { owner: string; in_flight: number; per_agent: Record<string, number>; per_agent_limit: number; totals: Record<string, number> } {
    return { owner: this.owner, in_flight: this.running.size, per_agent: Object.fromEntries(this.perAgent), per_agent_limit: this.opts.perAgentLimit, totals: { ...this.totals } };
  }
}
