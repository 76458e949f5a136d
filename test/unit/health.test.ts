import { describe, expect, it } from 'vitest';
import type { Clock } from '../../src/fleet/context.js';
import { waitUntil } from '../../src/fleet/health.js';

/** A clock whose sleep advances virtual time instantly. */
function fakeClock(): Clock & { slept: number[] } {
  let t = 0;
  const slept: number[] = [];
  return { slept, now: () => t, sleep: async (ms) => void (slept.push(ms), (t += ms)) };
}

describe('waitUntil', () => {
  it('returns the first defined value', async () => {
    const clock = fakeClock();
    let n = 0;
    expect(await waitUntil(async () => (++n === 3 ? 'ok' : undefined), { timeoutMs: 10_000, intervalMs: 100, clock })).toBe('ok');
    expect(clock.slept).toEqual([100, 100]);
  });

  it('gives up at the deadline without oversleeping', async () => {
    const clock = fakeClock();
    expect(await waitUntil(async () => undefined, { timeoutMs: 1000, intervalMs: 300, clock })).toBeUndefined();
    expect(clock.now()).toBe(1000);
    expect(clock.slept).toEqual([300, 300, 300, 100]);
  });

  it('backs off geometrically up to the maximum interval', async () => {
    const clock = fakeClock();
    await waitUntil(async () => undefined, { timeoutMs: 3000, intervalMs: 100, backoff: 2, maxIntervalMs: 500, clock });
    expect(clock.slept).toEqual([100, 200, 400, 500, 500, 500, 500, 300]);
  });
});
