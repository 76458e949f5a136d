/**
 * The supervisor's active health check: GET <replica>/health every `intervalMs` (default 5000) with a
 * timeout, fed into the HealthTracker (rotation) and a RestartTracker per replica (Nomad semantics,
 * restart.ts). It decides and reports; acting (restarting a container, scaling) is the caller's job,
 * done on the typed events it receives. Time goes through the injected clock.
 */
import { Agent, request } from 'undici';
import { systemClock, type Clock } from '../clock.js';
import { HealthTracker } from './health.js';
import { RestartTracker, RestartPolicySchema, type RestartPolicy } from './restart.js';

/** What the supervisor reports, each with its reason (for the registry history and the API). */
export type SupervisorEvent =
  | { type: 'replica_out' | 'replica_in'; agent: string; replica: string; at: number; reason: string }
  | { type: 'restart_requested'; agent: string; replica: string; at: number; delayMs: number; attempt: number; reason: string }
  | { type: 'failed'; agent: string; replica?: string | undefined; at: number; reason: string }
  | { type: 'scale_out' | 'scale_in' | 'scale_hold'; agent: string; at: number; replicas: number; reason: string }
  /** The supervisor acted (supervisor.ts): restarted a replica, restored an agent's desired state. */
  | { type: 'restarted' | 'restored'; agent: string; replica?: string | undefined; at: number; reason: string }
  /** An agent that was down (no replica in rotation) has a replica in rotation again. */
  | { type: 'recovered'; agent: string; at: number; reason: string }
  /**
   * A rollout or rollback of the agent started (its marker appeared, src/fleet/rollout-lock.ts): the
   * supervisor leaves it alone until `rollout_resume` (no restart, restore or autoscaling; probes go on).
   */
  | { type: 'rollout_hold' | 'rollout_resume'; agent: string; at: number; reason: string }
  /** An action of the supervisor did not work (it is retried per the restart policy). */
  | { type: 'action_failed'; agent: string; at: number; action: string; reason: string };

/** A replica to probe. */
export interface ProbeTarget {
  agent: string;
  id: string;
  url: string;
  /** ms since the epoch the replica (re)started: its grace period starts here. */
  startedAt: number;
}

/** One probe: resolves true when healthy. Must not reject. */
export type ProbeFn = (url: string, timeoutMs: number) => Promise<boolean>;

export interface ProberOptions {
  onEvent: (e: SupervisorEvent) => void;
  clock?: Clock;
  /** ms between probe rounds (default 5000). */
  intervalMs?: number;
  /** ms before a probe counts as failed (default 2000). */
  timeoutMs?: number;
  /** Failing checks that take a replica out of rotation (default 3). */
  failureThreshold?: number;
  /** Restart policy (defaults: RestartPolicySchema). */
  restartPolicy?: RestartPolicy;
  /** The probe; default GET /health over undici expecting 200 and `status: "healthy"`. */
  probe?: ProbeFn;
  /** For restart jitter; [0, 1). */
  random?: () => number;
}

/** GET `url`/health over `dispatcher`; true on 200 with `{"status":"healthy"}`. Never rejects. */
export async function probeHealthOnce(dispatcher: Agent, url: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await request(new URL('/health', url), { dispatcher, signal: AbortSignal.timeout(timeoutMs) });
    const body = (await res.body.json().catch(() => undefined)) as { status?: string } | undefined;
    return res.statusCode === 200 && body?.status === 'healthy';
  } catch {
    return false;
  }
}

export class HealthProber {
  readonly tracker: HealthTracker;
  private readonly targets = new Map<string, ProbeTarget>();
  private readonly restarts = new Map<string, RestartTracker>();
  private readonly clock: Clock;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly policy: RestartPolicy;
  private readonly dispatcher = new Agent({ keepAliveTimeout: 10_000, connections: 2 });
  private readonly probe: ProbeFn;

  constructor(private readonly opts: ProberOptions) {
    this.clock = opts.clock ?? systemClock;
    this.intervalMs = opts.intervalMs ?? 5000;
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.policy = opts.restartPolicy ?? RestartPolicySchema.parse({});
    this.tracker = new HealthTracker(opts.failureThreshold ?? 3);
    this.probe = opts.probe ?? ((url, t) => probeHealthOnce(this.dispatcher, url, t));
  }

  /**
   * Replace the set of replicas to probe. New ones start out of rotation; a changed `startedAt`
   * (the replica restarted or was recreated under the same id) opens a new grace period and puts
   * it out of rotation until its next passing check, keeping its restart count; gone ones are
   * forgotten.
   */
  setTargets(targets: readonly ProbeTarget[]): void {
    const ids = new Set(targets.map((t) => t.id));
    for (const id of this.targets.keys()) {
      if (!ids.has(id)) {
        this.targets.delete(id);
        this.restarts.delete(id);
        this.tracker.remove(id);
      }
    }
    for (const t of targets) {
      const prev = this.targets.get(t.id);
      this.targets.set(t.id, t);
      this.tracker.add(t.id);
      const rt = this.restarts.get(t.id);
      if (!rt) this.restarts.set(t.id, new RestartTracker(this.policy, t.startedAt, this.opts.random));
      else if (prev && prev.startedAt !== t.startedAt) {
        rt.started(t.startedAt);
        this.tracker.remove(t.id);
        this.tracker.add(t.id);
      }
    }
  }

  /** Whether the gateway may use the replica. */
  inRotation(id: string): boolean {
    return this.tracker.inRotation(id);
  }

  /** Probe every target once, concurrently, and report what changed. */
  async tick(): Promise<void> {
    const targets = [...this.targets.values()];
    const results = await Promise.all(targets.map((t) => this.probe(t.url, this.timeoutMs)));
    const at = this.clock.now();
    targets.forEach((t, i) => this.apply(t, results[i]!, at));
  }

  /** Probe every `intervalMs` until `signal` aborts; then close the probe connections. */
  async run(signal: AbortSignal): Promise<void> {
    try {
      while (!signal.aborted) {
        await this.tick();
        if (signal.aborted) break;
        await this.clock.sleep(this.intervalMs);
      }
    } finally {
      await this.dispatcher.close().catch(() => undefined);
    }
  }

  /** Close the probe connections (run() does it when it ends). */
  async close(): Promise<void> {
    await this.dispatcher.close().catch(() => undefined);
  }

  private apply(t: ProbeTarget, passed: boolean, at: number): void {
    if (!this.targets.has(t.id)) return; // removed while probing
    const emit = this.opts.onEvent;
    const change = this.tracker.record(t.id, passed, at);
    const failures = this.tracker.get(t.id)?.consecutiveFailures ?? 0;
    if (change === 'in') emit({ type: 'replica_in', agent: t.agent, replica: t.id, at, reason: 'health check passed' });
    if (change === 'out') emit({ type: 'replica_out', agent: t.agent, replica: t.id, at, reason: `${failures} failing health checks in a row` });
    const d = this.restarts.get(t.id)!.check(passed, at);
    if (d.action === 'restart') emit({ type: 'restart_requested', agent: t.agent, replica: t.id, at, delayMs: d.delayMs, attempt: d.attempt, reason: d.reason });
    if (d.action === 'failed') emit({ type: 'failed', agent: t.agent, replica: t.id, at, reason: d.reason });
  }
}
