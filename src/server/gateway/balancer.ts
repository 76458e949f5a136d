/**
 * Load-balancing strategies of the gateway: pure pickers over the replicas currently in rotation.
 * A balancer keeps only its own small state (a counter, the weighted currents); the gateway gives
 * it the candidates each time, so replicas can come and go between picks.
 */
import * as z from 'zod';

/** How an agent's requests are spread over its replicas (DESIGN.md vocabulary). */
export const BalanceStrategySchema = z.enum(['round-robin', 'least-connections', 'weighted']);
export type BalanceStrategy = z.infer<typeof BalanceStrategySchema>;

/** What a balancer sees of a replica. */
export interface Candidate {
  /** Stable replica id (container id or name). */
  id: string;
  /** Requests the gateway has in flight on it now (least-connections). */
  inflight: number;
  /** Relative weight, a positive integer (weighted); default 1. */
  weight?: number;
}

export interface Balancer {
  readonly strategy: BalanceStrategy;
  /** The next replica among `candidates` (all in rotation), or undefined when there is none. */
  pick<C extends Candidate>(candidates: readonly C[]): C | undefined;
}

/** Round-robin: each candidate in turn, in the order given. */
class RoundRobin implements Balancer {
  readonly strategy = 'round-robin' as const;
  private next = 0;
  pick<C extends Candidate>(candidates: readonly C[]): C | undefined {
    if (candidates.length === 0) return undefined;
    const c = candidates[this.next % candidates.length];
    this.next = (this.next + 1) % Number.MAX_SAFE_INTEGER;
    return c;
  }
}

/** Least-connections: the fewest in flight; ties go round-robin so equal replicas share the load. */
class LeastConnections implements Balancer {
  readonly strategy = 'least-connections' as const;
  private tie = 0;
  pick<C extends Candidate>(candidates: readonly C[]): C | undefined {
    if (candidates.length === 0) return undefined;
    let min = Infinity;
    for (const c of candidates) min = Math.min(min, c.inflight);
    const least = candidates.filter((c) => c.inflight === min);
    const c = least[this.tie % least.length];
    this.tie = (this.tie + 1) % Number.MAX_SAFE_INTEGER;
    return c;
  }
}

/**
 * Smooth weighted round-robin, as nginx does it (ngx_http_upstream_round_robin.c,
 * ngx_http_upstream_get_peer): on every pick each candidate's `current` grows by its weight, the
 * largest `current` wins and loses the total weight. Weights 5,1,1 give a a b a c a a, not a a a a a b c.
 */
class SmoothWeighted implements Balancer {
  readonly strategy = 'weighted' as const;
  private readonly current = new Map<string, number>();
  pick<C extends Candidate>(candidates: readonly C[]): C | undefined {
    if (candidates.length === 0) return undefined;
    let total = 0;
    let best: C | undefined;
    let bestCurrent = -Infinity;
    for (const c of candidates) {
      const w = Math.max(1, Math.floor(c.weight ?? 1));
      const cur = (this.current.get(c.id) ?? 0) + w;
      this.current.set(c.id, cur);
      total += w;
      if (cur > bestCurrent) {
        best = c;
        bestCurrent = cur;
      }
    }
    this.current.set(best!.id, bestCurrent - total);
    // forget replicas that left, so a returning one starts fresh as nginx does on reload
    if (this.current.size > candidates.length) {
      const ids = new Set(candidates.map((c) => c.id));
      for (const id of this.current.keys()) if (!ids.has(id)) this.current.delete(id);
    }
    return best;
  }
}

/** A fresh balancer for `strategy` (one per agent). */
export function createBalancer(strategy: BalanceStrategy = 'round-robin'): Balancer {
  switch (strategy) {
    case 'least-connections':
      return new LeastConnections();
    case 'weighted':
      return new SmoothWeighted();
    default:
      return new RoundRobin();
  }
}
