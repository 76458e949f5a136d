/**
 * Integration-style, without Docker: three real agent runtimes in this process behind the gateway,
 * a bounded load (2,000 calls at concurrency 20), one replica killed mid-load (its listening socket
 * and every open connection destroyed, as a crash does).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { Gateway, type GatewayReplica } from '../../src/server/gateway/gateway.js';
import { startRuntime, type RunningRuntime } from '../helpers/gateway.js';

const TOTAL = 2000;
const CONCURRENCY = 20;
const KILL_AFTER = 600;

/** Kill a runtime the hard way: stop listening and destroy every connection, in-flight ones included. */
function crash(rt: RunningRuntime): void {
  rt.app.server.close();
  rt.app.server.closeAllConnections();
}

describe('gateway over three in-process runtimes', () => {
  const runtimes: RunningRuntime[] = [];
  let gw: Gateway;
  afterAll(async () => {
    await gw?.close();
    for (const r of runtimes) await r.app.close().catch(() => undefined);
  });

  it('under load, one replica killed: only calls in flight on it fail, its breaker opens, 503 when all are gone', async () => {
    for (let i = 0; i < 3; i++) runtimes.push(await startRuntime());
    const replicas: GatewayReplica[] = runtimes.map((r, i) => ({ id: `r${i}`, url: r.url, inRotation: true }));
    gw = new Gateway({ resolve: () => ({ slug: 'load', replicas }), breakerFailures: 3, breakerHalfOpenAfterMs: 600_000 });

    const victim = 'r1';
    let started = 0;
    let completed = 0;
    let killedAt = -1; // the number of calls started when the victim was killed
    let inflightAtKill = -1;
    const ok = new Map<string, number>();
    const failures: { startedIndex: number; err: unknown }[] = [];

    const worker = async () => {
      while (started < TOTAL) {
        const index = started++;
        try {
          const r = await gw.executeViaGateway('load', { tool_name: 'wait', parameters: { ms: 2 } });
          expect(r.status).toBe(200);
          ok.set(r.replica, (ok.get(r.replica) ?? 0) + 1);
        } catch (err) {
          failures.push({ startedIndex: index, err });
        }
        completed++;
        if (completed === KILL_AFTER) {
          // from outside any worker's continuation, as a crash is: count, then kill, in one callback
          setImmediate(() => {
            inflightAtKill = gw.replicaInflight(victim);
            killedAt = started;
            crash(runtimes[1]!);
          });
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    const answered = [...ok.values()].reduce((a, b) => a + b, 0);
    expect(answered + failures.length).toBe(TOTAL);
    // the victim had calls in flight when killed (a 2 ms tool at concurrency 20 over 3 replicas)
    expect(inflightAtKill).toBeGreaterThan(0);
    // every failure is a call that had reached the victim before it died, never retried (not idempotent)
    expect(failures.length).toBeLessThanOrEqual(inflightAtKill);
    // and they did fail: a gateway that re-sent them elsewhere would show none here
    expect(failures.length).toBeGreaterThan(0);
    for (const f of failures) {
      expect(f.err).toBeInstanceOf(AppError);
      expect((f.err as AppError).code).toBe('AGENT_CALL_FAILED');
      expect((f.err as AppError).details?.replica).toBe(victim);
      expect(f.startedIndex).toBeLessThan(killedAt);
    }
    // the victim's breaker opened (connection refused after the kill) and the other two carried the rest
    expect(gw.breakerState(victim)).toBe('open');
    expect(gw.replicaInflight(victim)).toBe(0);
    expect(gw.inflight('load')).toBe(0);

    crash(runtimes[0]!);
    crash(runtimes[2]!);
    // let the pools see their idle keep-alive connections closed (a call in the same tick as a
    // crash may still be written to one: that is the in-flight case above, not this one)
    await new Promise((r) => setTimeout(r, 20));
    const errors: AppError[] = [];
    for (let i = 0; i < 10; i++) {
      await gw.executeViaGateway('load', { tool_name: 'wait', parameters: { ms: 1 } }).catch((e: AppError) => errors.push(e));
    }
    expect(errors).toHaveLength(10);
    // connection failures before any byte was written are retried, then the answer is 503
    expect(errors.at(-1)).toMatchObject({ code: 'AGENT_UNAVAILABLE', httpStatus: 503 });
    expect(errors.at(-1)!.retryAfterS).toBeGreaterThan(0);
    expect(errors.every((e) => e.code === 'AGENT_UNAVAILABLE')).toBe(true);
    expect(['r0', 'r1', 'r2'].map((id) => gw.breakerState(id))).toEqual(['open', 'open', 'open']);
  });
});
