import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { AutoscaleSchema, decideScale, type InflightSample } from '../../src/supervisor/autoscale.js';
import { HealthTracker } from '../../src/supervisor/health.js';
import { HealthProber, type SupervisorEvent } from '../../src/supervisor/prober.js';
import { reconcileReplica, type ReconcileInput } from '../../src/supervisor/reconcile.js';
import { RestartPolicySchema, RestartTracker } from '../../src/supervisor/restart.js';
import { refusedUrl, startRuntime } from '../helpers/gateway.js';

const T0 = Date.UTC(2030, 0, 1);
const s = (n: number) => n * 1000;

describe('HealthTracker', () => {
  it('keeps a new replica out until its first pass, takes it out after 3 failures in a row, back in after one pass', () => {
    const h = new HealthTracker();
    h.add('r');
    expect(h.inRotation('r')).toBe(false);
    expect(h.record('r', false, T0)).toBeNull();
    expect(h.inRotation('r')).toBe(false);
    expect(h.record('r', true, T0 + s(5))).toBe('in');
    expect(h.record('r', false, T0 + s(10))).toBeNull();
    expect(h.record('r', false, T0 + s(15))).toBeNull();
    expect(h.inRotation('r')).toBe(true);
    expect(h.record('r', false, T0 + s(20))).toBe('out');
    expect(h.inRotation('r')).toBe(false);
    expect(h.record('r', false, T0 + s(25))).toBeNull();
    expect(h.record('r', true, T0 + s(30))).toBe('in');
  });

  it('a pass in between resets the failure streak; the threshold is configurable and validated', () => {
    const h = new HealthTracker(2);
    h.record('r', true, T0);
    h.record('r', false, T0 + 1);
    h.record('r', true, T0 + 2);
    expect(h.record('r', false, T0 + 3)).toBeNull();
    expect(h.record('r', false, T0 + 4)).toBe('out');
    expect(() => new HealthTracker(0)).toThrow(RangeError);
  });
});

describe('RestartTracker (Nomad check_restart + restart)', () => {
  const policy = (over: { grace_s?: number; limit?: number; attempts?: number; interval_s?: number; delay_s?: number; max_delay_s?: number; mode?: 'fail' | 'delay' }) =>
    RestartPolicySchema.parse({
      check_restart: { limit: over.limit ?? 3, grace_s: over.grace_s ?? 10 },
      restart: { attempts: over.attempts ?? 2, interval_s: over.interval_s ?? 600, delay_s: over.delay_s ?? 1, max_delay_s: over.max_delay_s ?? 60, mode: over.mode ?? 'fail' },
    });
  /** Feed `n` failing checks 5 s apart from `from`; returns the decisions. */
  const fail = (t: RestartTracker, from: number, n: number) => Array.from({ length: n }, (_, i) => t.check(false, from + s(5) * i));

  it('ignores failures during the grace period after start', () => {
    const t = new RestartTracker(policy({ grace_s: 10 }), T0, () => 0);
    const d = fail(t, T0, 2); // at 0 s and 5 s
    expect(d.map((x) => x.action)).toEqual(['none', 'none']);
    expect(d[0]!.reason).toMatch(/grace/);
    const after = fail(t, T0 + s(10), 3);
    expect(after.map((x) => x.action)).toEqual(['none', 'none', 'restart']);
  });

  it('asks for a restart after `limit` failures in a row; one pass forgives the streak', () => {
    const t = new RestartTracker(policy({ grace_s: 0, limit: 3 }), T0, () => 0);
    fail(t, T0, 2);
    expect(t.check(true, T0 + s(10)).reason).toMatch(/2 failing check\(s\) forgiven/);
    expect(fail(t, T0 + s(15), 2).map((d) => d.action)).toEqual(['none', 'none']);
    expect(t.check(false, T0 + s(25)).action).toBe('restart');
  });

  it('backs off exponentially, with jitter bounded by 25 %, capped at max_delay', () => {
    const delays = (random: number) => {
      const t = new RestartTracker(policy({ grace_s: 0, limit: 1, attempts: 10, delay_s: 1, max_delay_s: 5 }), T0, () => random);
      const out: number[] = [];
      for (let i = 0; i < 5; i++) {
        const at = T0 + s(10) * i;
        const d = t.check(false, at);
        if (d.action !== 'restart') throw new Error(d.reason);
        out.push(d.delayMs);
        t.started(at + d.delayMs);
      }
      return out;
    };
    expect(delays(0)).toEqual([1000, 2000, 4000, 5000, 5000]);
    // random -> 1 is the upper bound: 25 % more
    expect(delays(0.999999)).toEqual([1250, 2500, 5000, 6250, 6250]);
  });

  it('mode fail: gives up after `attempts` restarts within the interval, with a reason', () => {
    const events: string[] = [];
    const t = new RestartTracker(policy({ grace_s: 0, limit: 1, attempts: 2, interval_s: 600, mode: 'fail' }), T0, () => 0);
    for (let i = 0; i < 3; i++) {
      const d = t.check(false, T0 + s(30) * i);
      events.push(d.action);
      t.started(T0 + s(30) * i + 1);
    }
    expect(events).toEqual(['restart', 'restart', 'failed']);
    expect(t.failed).toBe(true);
    expect(t.check(false, T0 + s(200)).action).toBe('none');
    expect(t.check(true, T0 + s(205)).reason).toMatch(/failed/);
  });

  it('counts restarts per interval: a new interval starts the count again', () => {
    const t = new RestartTracker(policy({ grace_s: 0, limit: 1, attempts: 1, interval_s: 60, mode: 'fail' }), T0, () => 0);
    expect(t.check(false, T0 + s(1)).action).toBe('restart');
    t.started(T0 + s(2));
    expect(t.check(false, T0 + s(70)).action).toBe('restart');
    expect(t.restarts).toBe(1);
  });

  it('a pass does not reset the restart count: a flapping agent still reaches failed', () => {
    const t = new RestartTracker(policy({ grace_s: 0, limit: 1, attempts: 2, mode: 'fail' }), T0, () => 0);
    const actions: string[] = [];
    for (let i = 0; i < 3; i++) {
      t.check(true, T0 + s(20) * i);
      actions.push(t.check(false, T0 + s(20) * i + s(5)).action);
      t.started(T0 + s(20) * i + s(6));
    }
    expect(actions).toEqual(['restart', 'restart', 'failed']);
  });

  it('mode delay: after `attempts`, waits until the interval ends instead of failing', () => {
    const t = new RestartTracker(policy({ grace_s: 0, limit: 1, attempts: 1, interval_s: 300, mode: 'delay' }), T0, () => 0);
    expect(t.check(false, T0 + s(10)).action).toBe('restart');
    t.started(T0 + s(11));
    const d = t.check(false, T0 + s(100));
    expect(d).toMatchObject({ action: 'restart', delayMs: s(200) });
    expect(d.reason).toMatch(/applying a delay/);
    expect(t.failed).toBe(false);
    t.started(T0 + s(300));
    expect(t.check(false, T0 + s(305))).toMatchObject({ action: 'restart', attempt: 1, delayMs: 1000 });
  });

  it('does not ask twice while a restart is pending, and attempts 0 fails at once', () => {
    const t = new RestartTracker(policy({ grace_s: 0, limit: 1 }), T0, () => 0);
    expect(t.check(false, T0).action).toBe('restart');
    expect(t.check(false, T0 + s(5)).reason).toBe('restart already requested');
    const none = new RestartTracker(policy({ grace_s: 0, limit: 1, attempts: 0 }), T0);
    expect(none.check(false, T0)).toMatchObject({ action: 'failed' });
  });

  it('rejects a bad policy at the schema', () => {
    expect(RestartPolicySchema.safeParse({ restart: { mode: 'sometimes' } }).success).toBe(false);
    expect(RestartPolicySchema.safeParse({ check_restart: { limit: 0 } }).success).toBe(false);
    expect(RestartPolicySchema.parse({})).toMatchObject({ check_restart: { limit: 3 }, restart: { attempts: 2, mode: 'fail' } });
  });
});

describe('reconcileReplica', () => {
  const base: ReconcileInput = { desired: 'running', container: undefined, restartRequested: false, lastDecisionAt: 0, now: T0 + s(100) };
  const running = { state: 'running' as const, startedAt: T0, restartPolicy: 'unless-stopped' as const };

  it.each<[string, Partial<ReconcileInput>, string]>([
    ['no container while recorded running', {}, 'create'],
    ['running as recorded', { container: running }, 'none'],
    ['restart requested, engine did nothing since', { container: running, restartRequested: true, lastDecisionAt: T0 + s(50) }, 'restart'],
    ['restart requested, but the engine restarted it after our last decision', { container: { ...running, startedAt: T0 + s(60) }, restartRequested: true, lastDecisionAt: T0 + s(50) }, 'none'],
    ['engine is restarting it', { container: { ...running, state: 'restarting' }, restartRequested: true }, 'none'],
    ['exited 2 s ago under unless-stopped: the engine restarts it', { container: { ...running, state: 'exited', finishedAt: T0 + s(98), exitCode: 137 } }, 'none'],
    ['exited long ago under unless-stopped (engine gave up or daemon restarted)', { container: { ...running, state: 'exited', finishedAt: T0 + s(10), exitCode: 137 } }, 'start'],
    ['exited 0 under on-failure: the engine will not restart it', { container: { ...running, restartPolicy: 'on-failure', state: 'exited', finishedAt: T0 + s(99), exitCode: 0 } }, 'start'],
    ['created but never started (after a reboot)', { container: { state: 'created', startedAt: 0, restartPolicy: 'no' } }, 'start'],
    ['our own start is still in progress', { container: { state: 'exited', startedAt: T0, finishedAt: T0 + s(10), restartPolicy: 'no' }, lastDecisionAt: T0 + s(98) }, 'none'],
    ['recorded stopped but running', { desired: 'stopped', container: running }, 'stop'],
    ['recorded stopped and gone', { desired: 'stopped' }, 'none'],
  ])('%s -> %s', (_name, over, action) => {
    const d = reconcileReplica({ ...base, ...over });
    expect(d.action).toBe(action);
    expect(d.reason.length).toBeGreaterThan(0);
  });
});

describe('decideScale', () => {
  const config = AutoscaleSchema.parse({ min: 1, max: 4, target_inflight_per_replica: 10, scale_in_cooldown_s: 120, scale_out_window_s: 30 });
  const load = (values: number[], from = T0) => values.map<InflightSample>((inflight, i) => ({ at: from + s(5) * i, inflight }));
  const now = T0 + s(35); // 8 samples 0..35 s: the window (5, 35] holds the last 6

  it.each<[string, { replicas: number; samples: InflightSample[]; lastScaleAt?: number; at?: number }, string, number]>([
    ['below min', { replicas: 0, samples: [] }, 'scale_out', 1],
    ['above max', { replicas: 6, samples: [] }, 'scale_in', 4],
    ['not enough history', { replicas: 1, samples: load([50, 50], T0 + s(30)) }, 'none', 1],
    ['sustained load over target', { replicas: 1, samples: load([25, 25, 25, 25, 25, 25, 25, 25]) }, 'scale_out', 3],
    ['one burst in a quiet window is not sustained', { replicas: 1, samples: load([0, 0, 0, 0, 0, 0, 0, 60]) }, 'none', 1],
    ['capped at max', { replicas: 2, samples: load([90, 90, 90, 90, 90, 90, 90, 90]) }, 'scale_out', 4],
    ['quiet but within the cool-down', { replicas: 3, samples: load([0, 0, 0, 0, 0, 0, 0, 0]), lastScaleAt: T0 }, 'none', 3],
    ['quiet after the cool-down', { replicas: 3, samples: load([0, 0, 0, 0, 0, 0, 0, 0]), lastScaleAt: T0 - s(200) }, 'scale_in', 1],
    ['load fits', { replicas: 2, samples: load([15, 15, 15, 15, 15, 15, 15, 15]) }, 'none', 2],
  ])('%s -> %s %i', (_name, i, action, replicas) => {
    const d = decideScale({ config, replicas: i.replicas, samples: i.samples, now: i.at ?? now, lastScaleAt: i.lastScaleAt ?? 0 });
    expect(d.action).toBe(action);
    expect(d.replicas).toBe(replicas);
    expect(d.reason.length).toBeGreaterThan(0);
  });

  it('rejects max < min and a non-positive target', () => {
    expect(AutoscaleSchema.safeParse({ min: 3, max: 2, target_inflight_per_replica: 5 }).success).toBe(false);
    expect(AutoscaleSchema.safeParse({ min: 1, max: 2, target_inflight_per_replica: 0 }).success).toBe(false);
  });
});

describe('HealthProber', () => {
  it('probes on the clock, takes a replica in/out of rotation and asks for a restart, with typed events', async () => {
    const clock = new ManualClock(T0);
    const events: SupervisorEvent[] = [];
    let healthy = true;
    const prober = new HealthProber({
      clock,
      onEvent: (e) => events.push(e),
      // a real probe yields to the event loop; so does this one (the run loop below relies on it)
      probe: async () => {
        await new Promise((r) => setImmediate(r));
        return healthy;
      },
      restartPolicy: RestartPolicySchema.parse({ check_restart: { limit: 3, grace_s: 0 } }),
      random: () => 0,
    });
    prober.setTargets([{ agent: 'a', id: 'r1', url: 'http://127.0.0.1:1', startedAt: T0 }]);
    expect(prober.inRotation('r1')).toBe(false);
    await prober.tick();
    expect(prober.inRotation('r1')).toBe(true);
    healthy = false;
    for (let i = 0; i < 3; i++) {
      clock.advance(5000);
      await prober.tick();
    }
    expect(events.map((e) => e.type)).toEqual(['replica_in', 'replica_out', 'restart_requested']);
    expect(events[2]).toMatchObject({ agent: 'a', replica: 'r1', attempt: 1, delayMs: 1000 });
    // the run loop sleeps intervalMs between rounds on the injected clock
    const stop = new AbortController();
    const running = prober.run(stop.signal);
    await new Promise((r) => setTimeout(r, 10));
    stop.abort();
    await running;
    expect(clock.sleeps.every((ms) => ms === 5000)).toBe(true);
    expect(clock.sleeps.length).toBeGreaterThan(0);
  });

  it('probes a real runtime /health and a dead port with undici', async () => {
    const rt = await startRuntime();
    const dead = await refusedUrl();
    const events: SupervisorEvent[] = [];
    const prober = new HealthProber({ onEvent: (e) => events.push(e), timeoutMs: 1000 });
    try {
      prober.setTargets([
        { agent: 'a', id: 'live', url: rt.url, startedAt: Date.now() },
        { agent: 'a', id: 'dead', url: dead, startedAt: Date.now() },
      ]);
      await prober.tick();
      expect(prober.inRotation('live')).toBe(true);
      expect(prober.inRotation('dead')).toBe(false);
      expect(events).toEqual([expect.objectContaining({ type: 'replica_in', replica: 'live' })]);
    } finally {
      await prober.run(AbortSignal.abort()).catch(() => undefined);
      await rt.app.close();
    }
  });
});
