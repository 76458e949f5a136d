/**
 * Latency and throughput of the gateway per agent, for `GET /api/v1/metrics/performance`: the
 * last `window` calls (default 2048) of each agent, with their duration and outcome, in a ring.
 * Percentiles are nearest-rank over that window; throughput is calls per second over the time
 * the window spans (at most `spanMs`, default 60 s, back from now). Prometheus gets the same calls
 * as a histogram (`nexus_gateway_request_duration_seconds`); this is the human-sized view.
 */
export interface AgentFigures {
  agent: string;
  /** Calls recorded since the manager started (all outcomes). */
  calls: number;
  /** Of those, calls that did not end with an agent's answer (unavailable, failed, timeout). */
  errors: number;
  /** Calls per second over the last `spanMs`. */
  throughputPerS: number;
  /** Latency percentiles over the window, milliseconds (0 when no call yet). */
  latencyMs: { p50: number; p95: number; p99: number; max: number };
}

interface Sample {
  at: number;
  ms: number;
}

interface AgentRing {
  samples: Sample[];
  next: number;
  calls: number;
  errors: number;
}

export class GatewayFigures {
  private readonly agents = new Map<string, AgentRing>();

  /** @param window samples kept per agent; @param spanMs throughput window, ms. */
  constructor(private readonly window = 2048, private readonly spanMs = 60_000) {}

  /** Record one gateway call of `agent` (slug) that took `ms` (at clock time `at`, ms) and whether it got an answer. */
  record(agent: string, ms: number, answered: boolean, at: number): void {
    let r = this.agents.get(agent);
    if (!r) this.agents.set(agent, (r = { samples: [], next: 0, calls: 0, errors: 0 }));
    r.calls++;
    if (!answered) r.errors++;
    const s = { at, ms };
    if (r.samples.length < this.window) r.samples.push(s);
    else r.samples[r.next] = s;
    r.next = (r.next + 1) % this.window;
  }

  /** Every agent's figures at clock time `now` (ms), by agent slug order. */
  snapshot(now: number): AgentFigures[] {
    return [...this.agents.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([agent, r]) => {
        const sorted = r.samples.map((s) => s.ms).sort((a, b) => a - b);
        const rank = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : 0);
        const recent = r.samples.filter((s) => now - s.at <= this.spanMs);
        const oldest = recent.reduce((m, s) => Math.min(m, s.at), now);
        const spanS = Math.max(1, (now - oldest) / 1000);
        const round = (n: number) => Math.round(n * 100) / 100;
        return {
          agent,
          calls: r.calls,
          errors: r.errors,
          throughputPerS: round(recent.length / spanS),
          latencyMs: { p50: round(rank(50)), p95: round(rank(95)), p99: round(rank(99)), max: round(sorted.at(-1) ?? 0) },
        };
      });
  }
}
