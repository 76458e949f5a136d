/**
 * Time, as everything that waits or stamps a time sees it (style: testcontainers' common/clock.ts).
 * Production code takes a Clock from its deps; tests inject a ManualClock and control time
 * instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Resolve after `ms` milliseconds. */
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/** An ISO-8601 timestamp (UTC, ms precision) of the clock's now, for records and exports. */
export function isoNow(clock: Clock = systemClock): string {
  return new Date(clock.now()).toISOString();
}

/**
 * A clock that only moves when told: `sleep(ms)` advances it by `ms` at once (yielding to other
 * promises first), `advance(ms)` moves it by hand. Starts at `start` ms since the epoch.
 */
export class ManualClock implements Clock {
  private t: number;
  /** Every sleep requested, in ms, in order (to assert on polling). */
  readonly sleeps: number[] = [];

  constructor(start = Date.UTC(2030, 0, 1)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    await Promise.resolve();
    this.t += ms;
  }

  advance(ms: number): void {
    this.t += ms;
  }
}
