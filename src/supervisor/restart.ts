/**
 * When the supervisor restarts an unhealthy replica, and when it gives up: Nomad's `check_restart`
 * and `restart` blocks, as decisions over check results. Pure: time and randomness are injected.
 *
 * check_restart {limit, grace} (Nomad client/serviceregistration/watcher.go, checkRestart.apply):
 * - checks failing during `grace` after a (re)start do not count;
 * - `limit` failing checks in a row ask for a restart (Nomad counts the time since the first failure
 *   against (limit-1) check intervals; with a fixed probe interval that is `limit` checks in a row);
 * - one passing check cancels the pending restart (resets the failing streak).
 * restart {attempts, interval, delay, mode} (Nomad client/allocrunner/taskrunner/restarts/restarts.go,
 * RestartTracker.GetState):
 * - a new interval starts when `interval` has passed since the current one began; the count resets;
 * - each restart increments the count; while count <= attempts the restart waits `delay` plus up to
 *   25 % jitter (Nomad's `jitter = 0.25`);
 * - count > attempts: mode "fail" gives up (Nomad: `Exceeded allowed attempts %d in interval %v and
 *   mode is "fail"`), mode "delay" waits until the interval ends, then restarts.
 * Where we go further than Nomad's restart block: the delay grows exponentially with the count
 * (delay * 2^(count-1), capped at max_delay), as Nomad's `reschedule` block does with
 * `delay_function = "exponential"`, so a crash-looping agent is not hammered.
 * Decided here, not in the brief's wording: a passing check resets the failing streak (Nomad's
 * check_restart), NOT the restart count of the interval (Nomad's restart block): otherwise an agent
 * that passes one check after each restart and then hangs again would never reach `failed`.
 */
import * as z from 'zod';

/** A policy as written in an agent's manifest or nexus.yaml (seconds), defaults Nomad-like. */
export const RestartPolicySchema = z
  .object({
    check_restart: z
      .object({
        /** Failing checks in a row that ask for a restart. */
        limit: z.number().int().min(1).default(3),
        /** Seconds after a (re)start during which failing checks do not count. */
        grace_s: z.number().min(0).default(10),
      })
      .prefault({}),
    restart: z
      .object({
        /** Restarts allowed within one interval (Nomad service default 2). */
        attempts: z.number().int().min(0).default(2),
        /** Seconds of one interval (Nomad service default 30 min). */
        interval_s: z.number().positive().default(1800),
        /** Seconds before the first restart (doubles with each restart of the interval). */
        delay_s: z.number().min(0).default(1),
        /** Largest delay in seconds. */
        max_delay_s: z.number().min(0).default(60),
        /** After `attempts`: "fail" gives up, "delay" waits for the next interval. */
        mode: z.enum(['fail', 'delay']).default('fail'),
      })
      .prefault({}),
  })
  .strict();
export type RestartPolicy = z.infer<typeof RestartPolicySchema>;

/** What to do after a check. */
export type RestartDecision =
  | { action: 'none'; reason: string }
  | { action: 'restart'; delayMs: number; attempt: number; reason: string }
  | { action: 'failed'; reason: string };

/** Nomad's restart jitter: up to 25 % added to the delay. */
export const RESTART_JITTER = 0.25;

/**
 * The restart bookkeeping of one replica. Call `started(at)` when it (re)starts, `check(passed, at)`
 * after every probe; a `restart` decision is acted on by the caller, who calls `started` again when
 * the replica is back. `random` returns [0, 1) (tests pass a constant).
 */
export class RestartTracker {
  private graceUntil = 0;
  private streak = 0;
  private intervalStart: number;
  private count = 0;
  private pending = false;
  private dead = false;

  constructor(
    private readonly policy: RestartPolicy,
    startedAt: number,
    private readonly random: () => number = Math.random,
  ) {
    this.intervalStart = startedAt;
    this.started(startedAt);
  }

  /** The replica (re)started at `at` (ms): a new grace period, no pending restart. */
  started(at: number): void {
    this.graceUntil = at + this.policy.check_restart.grace_s * 1000;
    this.streak = 0;
    this.pending = false;
  }

  /** Restarts counted in the current interval. */
  get restarts(): number {
    return this.count;
  }

  get failed(): boolean {
    return this.dead;
  }

  /** Forget `failed` and the count (an operator restarted the agent by hand). */
  reset(at: number): void {
    this.dead = false;
    this.count = 0;
    this.intervalStart = at;
    this.started(at);
  }

  /** One check result at `at` (ms since the epoch). */
  check(passed: boolean, at: number): RestartDecision {
    if (this.dead) return { action: 'none', reason: 'failed: restart limit reached earlier; waiting for an operator' };
    if (passed) {
      const had = this.streak;
      this.streak = 0;
      this.pending = false; // a pending restart is cancelled (Nomad check_restart)
      return { action: 'none', reason: had ? `check passed: ${had} failing check(s) forgiven` : 'healthy' };
    }
    if (this.pending) return { action: 'none', reason: 'restart already requested' };
    if (at < this.graceUntil) return { action: 'none', reason: `in grace period (${Math.ceil((this.graceUntil - at) / 1000)} s left): failure not counted` };
    this.streak++;
    const { limit } = this.policy.check_restart;
    if (this.streak < limit) return { action: 'none', reason: `check failed ${this.streak}/${limit}` };
    return this.restartDecision(at, `${limit} failing checks in a row`);
  }

  /** Nomad's RestartTracker.GetState for a failure, with exponential delay. */
  private restartDecision(at: number, why: string): RestartDecision {
    const { attempts, interval_s, delay_s, max_delay_s, mode } = this.policy.restart;
    const intervalMs = interval_s * 1000;
    if (attempts === 0) {
      this.dead = true;
      return { action: 'failed', reason: `${why}; policy allows no restarts` };
    }
    if (at > this.intervalStart + intervalMs) {
      this.count = 0;
      this.intervalStart = at;
    }
    this.count++;
    if (this.count > attempts) {
      if (mode === 'fail') {
        this.dead = true;
        return { action: 'failed', reason: `${why}; exceeded allowed attempts ${attempts} in interval ${interval_s} s and mode is "fail"` };
      }
      this.pending = true;
      // the next failure after this wait falls in a new interval, where the count starts again
      const wait = this.intervalStart + intervalMs - at;
      return { action: 'restart', delayMs: wait, attempt: this.count, reason: `${why}; exceeded allowed attempts ${attempts}, applying a delay until the interval ends` };
    }
    this.pending = true;
    const base = Math.min(delay_s * 1000 * 2 ** (this.count - 1), max_delay_s * 1000);
    const delayMs = Math.round(base + base * RESTART_JITTER * this.random());
    return { action: 'restart', delayMs, attempt: this.count, reason: `${why}; restart ${this.count}/${attempts} in this interval after ${delayMs} ms` };
  }
}
