import { describe, expect, it } from 'vitest';
import { BalanceStrategySchema, createBalancer, type Candidate } from '../../src/server/gateway/balancer.js';

const counts = (picks: (Candidate | undefined)[]) => {
  const m: Record<string, number> = {};
  for (const p of picks) m[p!.id] = (m[p!.id] ?? 0) + 1;
  return m;
};

describe('balancer strategies', () => {
  it('round-robin takes each replica in turn and spreads N picks evenly', () => {
    const b = createBalancer();
    const cs = [{ id: 'a', inflight: 0 }, { id: 'b', inflight: 0 }, { id: 'c', inflight: 0 }];
    const picks = Array.from({ length: 300 }, () => b.pick(cs));
    expect(picks.slice(0, 4).map((p) => p!.id)).toEqual(['a', 'b', 'c', 'a']);
    expect(counts(picks)).toEqual({ a: 100, b: 100, c: 100 });
  });

  it('round-robin over a shrinking set still picks only the candidates given', () => {
    const b = createBalancer('round-robin');
    b.pick([{ id: 'a', inflight: 0 }, { id: 'b', inflight: 0 }]);
    expect(b.pick([{ id: 'b', inflight: 0 }])!.id).toBe('b');
    expect(b.pick([])).toBeUndefined();
  });

  it('least-connections picks the fewest in flight and alternates on ties', () => {
    const b = createBalancer('least-connections');
    expect(b.pick([{ id: 'a', inflight: 3 }, { id: 'b', inflight: 1 }, { id: 'c', inflight: 2 }])!.id).toBe('b');
    const tied = [{ id: 'a', inflight: 0 }, { id: 'b', inflight: 0 }, { id: 'c', inflight: 5 }];
    expect(counts(Array.from({ length: 100 }, () => b.pick(tied)))).toEqual({ a: 50, b: 50 });
  });

  it('weighted follows nginx smooth weighted round-robin: 5,1,1 -> a a b a c a a', () => {
    const b = createBalancer('weighted');
    const cs = [{ id: 'a', inflight: 0, weight: 5 }, { id: 'b', inflight: 0, weight: 1 }, { id: 'c', inflight: 0, weight: 1 }];
    const seq = Array.from({ length: 7 }, () => b.pick(cs)!.id);
    expect(seq).toEqual(['a', 'a', 'b', 'a', 'c', 'a', 'a']);
    expect(counts(Array.from({ length: 700 }, () => b.pick(cs)))).toEqual({ a: 500, b: 100, c: 100 });
  });

  it('weighted treats a missing weight as 1', () => {
    const b = createBalancer('weighted');
    const cs = [{ id: 'a', inflight: 0, weight: 2 }, { id: 'b', inflight: 0 }];
    expect(counts(Array.from({ length: 300 }, () => b.pick(cs)))).toEqual({ a: 200, b: 100 });
  });

  it('rejects an unknown strategy name at the schema', () => {
    expect(BalanceStrategySchema.safeParse('random').success).toBe(false);
    expect(BalanceStrategySchema.parse('weighted')).toBe('weighted');
  });
});
