import type { Clock } from '../clock.js';
import { request } from './http.js';

/** Result of one GET /health probe. */
export interface HealthProbe {
  ok: boolean;
  status?: number;
  error?: string;
}

/** One GET `<url>/health` with a deadline in ms. Never throws. */
export async function probeHealth(baseUrl: string, timeoutMs = 1000): Promise<HealthProbe> {
  try {
    const res = await request(`${baseUrl}/health`, { timeoutMs });
    return { ok: res.status === 200, status: res.status };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return { ok: false, error: cause?.code ?? (err as Error).name };
  }
}

export interface WaitOptions {
  timeoutMs: number;
  /** First pause between checks in ms (default 200). */
  intervalMs?: number;
  /** Each pause is the previous one times this factor (default 1: fixed interval)... */
  backoff?: number;
  /** ...up to this many ms (default: intervalMs). */
  maxIntervalMs?: number;
  clock: Clock;
}

/**
 * Poll `check` until it returns a value other than undefined, or the deadline passes.
 * `check` may throw to stop waiting early (e.g. the container exited).
 * Returns the value, or undefined on timeout. Time comes from the injected clock.
 */
export async function waitUntil<T>(check: () => Promise<T | undefined>, opts: WaitOptions): Promise<T | undefined> {
  const deadline = opts.clock.now() + opts.timeoutMs;
  let interval = opts.intervalMs ?? 200;
  const max = Math.max(interval, opts.maxIntervalMs ?? interval);
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    const left = deadline - opts.clock.now();
    if (left <= 0) return undefined;
    await opts.clock.sleep(Math.min(interval, left));
    interval = Math.min(max, interval * (opts.backoff ?? 1));
  }
}
