/**
 * The supervisor loop (issue 9 §5, §6): every `probeIntervalMs` (default 5000) it observes the
 * workspace (registry records + labelled containers), probes every replica's /health
 * (HealthProber: rotation and Nomad check_restart/restart, prober.ts, restart.ts), and acts through
 * the fleet's use cases (actions.ts):
 * - `failureThreshold` (3) failing checks take a replica out of rotation; after the policy's grace
 *   and limit it is recreated (removed + the start use case) after a backoff with jitter; past the
 *   restart limit the agent is `failed` (event, history, record status/lastError); a new or
 *   restarted replica is out of rotation until its first passing check;
 * - desired state wins: an agent recorded desired=running whose container was killed, removed or
 *   never started is started again (also at start(), e.g. after a reboot or a manager restart). An
 *   absent container is acted on when seen absent on two ticks in a row (a CLI `stop` removes the
 *   containers before it records desired=stopped), except on the first tick. Failed restores count
 *   against the same restart policy. It never fights the engine's own restart policy
 *   (reconcile.ts: decisions by the container's start time). Records desired=stopped are left alone;
 * - engine events (die, oom, kill, pause, destroy) wake the loop for an immediate tick;
 * - listings of registered agents follow health (unavailable while no replica is in rotation);
 * - autoscaling: per agent (autoscale-source.ts) the in-flight load from `loadOf` is sampled each
 *   tick and `decideScale` (autoscale.ts) decides; scaling goes through the fleet's scale use case.
 * - rollouts: an agent whose rollout or rollback is in progress (a fresh marker under
 *   .nexus/rollouts, src/fleet/rollout-lock.ts, held by whichever process runs it) is left alone:
 *   its new replicas are in their grace period and its old ones are draining, which is neither a
 *   fault to restart nor a desired state to restore nor load to scale for. Its replicas are still
 *   probed (the rotation follows them), but failing checks neither request a restart nor fail the
 *   agent, and no action starts; `rollout_hold` / `rollout_resume` events mark the span. After it,
 *   a missing container again needs two ticks in a row, and the new primary (same name, new start
 *   time) gets a new grace period.
 * Every decision is a SupervisorEvent with its reason; lifecycle events also go to the registry
 * history. Time goes through deps.clock.
 */
import { workspaceLabels } from '../conventions.js';
import { rolloutsInProgress } from '../fleet/rollout-lock.js';
import { messageOf } from '../errors.js';
import type { FleetDeps } from '../fleet/context.js';
import { logger } from '../log.js';
import type { AgentRecord } from '../registry/registry.js';
import { systemClock } from '../clock.js';
import { Recorder, asFleetNotes, convergeAgent, givenUp } from './actions.js';
import { workspaceAutoscale } from './autoscale-source.js';
import { HealthProber, type ProbeTarget, type SupervisorEvent } from './prober.js';
import { reconcileReplica } from './reconcile.js';
import { RestartTracker, type RestartPolicy } from './restart.js';
import { checkOptions, type SupervisorOptions } from './options.js';
import { Autoscaler } from './scaler.js';
import { observeAgents, observedOf, parseDate, type AgentLoad, type ReplicaView, type Seen } from './view.js';

export type { AgentLoad, ReplicaView, SupervisorOptions };

const log = logger('supervisor');


export class Supervisor implements AsyncDisposable {
  private readonly clock;
  private readonly prober: HealthProber;
  private readonly rec: Recorder;
  private readonly policy: RestartPolicy;
  private readonly autoscaler: Autoscaler;
  private views = new Map<string, ReplicaView[]>();
  private readonly busy = new Map<string, Promise<void>>();
  /** Per agent: restore attempts (limit 1: each failed start asks for another, per the restart block). */
  private readonly restores = new Map<string, { tracker: RestartTracker; notBefore: number }>();
  private readonly restartDue = new Map<string, { at: number; reason: string }>();
  private readonly lastDecision = new Map<string, number>();
  private readonly absentBefore = new Set<string>();
  private readonly down = new Set<string>();
  private readonly failed = new Set<string>();
  /** Agents whose rollout is in progress (markers seen at the last tick). */
  private rolling = new Set<string>();
  /** Health events of the current probe round, handled after it. */
  private readonly probed: SupervisorEvent[] = [];
  private ticks = 0;
  private ac: AbortController | undefined;
  private loops: Promise<unknown>[] = [];
  private wake: (() => void) | undefined;
  private firstTick: Promise<void> = Promise.resolve();

  /**
   * @param deps the fleet's deps (engine, registry, clock, config); nothing starts before start().
   * @throws AppError USAGE for a bad option, naming it (checkOptions, options.ts).
   */
  constructor(
    private readonly deps: FleetDeps,
    private readonly opts: SupervisorOptions = {},
  ) {
    this.clock = deps.clock ?? systemClock;
    this.policy = checkOptions(opts);
    this.rec = new Recorder(deps, opts.onEvent ?? asFleetNotes(deps));
    this.prober = new HealthProber({
      clock: this.clock,
      intervalMs: opts.probeIntervalMs ?? 5000,
      timeoutMs: opts.probeTimeoutMs ?? 2000,
      failureThreshold: opts.failureThreshold ?? 3,
      restartPolicy: this.policy,
      onEvent: (e) => this.probed.push(e),
      ...(opts.probe ? { probe: opts.probe } : {}),
      ...(opts.random ? { random: opts.random } : {}),
    });
    this.autoscaler = new Autoscaler(deps, this.rec, opts.autoscale ?? workspaceAutoscale(deps.config), opts.loadOf, opts.routerPort);
  }

  /** The replicas of an agent (slug) as last observed, with their rotation. Unknown agent: []. */
  rotation(slug: string): ReplicaView[] {
    return (this.views.get(slug) ?? []).map((v) => ({ ...v, inRotation: this.prober.inRotation(v.name) }));
  }

  /**
   * Start the loop and the engine event watch; idempotent. Resolves once the first tick has run
   * (desired state restores it started go on in the background), so the rotation is known before
   * the gateway takes calls. Never rejects: a failing tick is logged and retried next interval.
   */
  start(): Promise<void> {
    if (this.ac) return this.firstTick;
    const ac = (this.ac = new AbortController());
    let ready!: () => void;
    this.firstTick = new Promise<void>((r) => (ready = r));
    this.loops = [this.loop(ac.signal, ready), this.watch(ac.signal)];
    return this.firstTick;
  }

  /** Stop the loop and wait for actions in progress to end. Idempotent. */
  async stop(): Promise<void> {
    this.ac?.abort();
    this.wake?.();
    await Promise.allSettled(this.loops);
    await this.idle();
    await this.prober.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Resolves when no action (restart, restore, scale) is in progress. */
  async idle(): Promise<void> {
    while (this.busy.size) await Promise.allSettled([...this.busy.values()]);
  }

  private async loop(signal: AbortSignal, ready: () => void): Promise<void> {
    while (!signal.aborted) {
      await this.tick().catch((err) => log.warn({ err: messageOf(err) }, 'tick failed'));
      ready();
      if (signal.aborted) break;
      await new Promise<void>((r) => {
        this.wake = r;
        void this.clock.sleep(this.opts.probeIntervalMs ?? 5000).then(r);
      });
    }
  }

  /** Engine events wake the loop; a broken stream is opened again after one interval. */
  private async watch(signal: AbortSignal): Promise<void> {
    let since = this.clock.now();
    while (!signal.aborted) {
      try {
        for await (const ev of this.deps.engine.events(workspaceLabels(this.deps.config), signal, since)) {
          since = ev.at;
          if (ev.kind !== 'start' && ev.kind !== 'unpause') this.wake?.();
        }
      } catch (err) {
        log.debug({ err: messageOf(err) }, 'engine events stream ended');
      }
      if (!signal.aborted) await this.clock.sleep(this.opts.probeIntervalMs ?? 5000);
    }
  }

  /** One round: observe, probe, act (tests call it directly on a ManualClock). */
  async tick(): Promise<void> {
    const first = this.ticks++ === 0;
    const seen = await this.observe();
    await this.observeRollouts(seen);
    this.prober.setTargets(
      [...seen.values()].flatMap((s) =>
        this.failed.has(s.rec.slug) ? [] : s.containers.filter((c) => c.url && (c.details.state === 'running' || c.details.state === 'paused')).map((c): ProbeTarget => ({ agent: s.rec.slug, id: c.name, url: c.url!, startedAt: parseDate(c.details.startedAt) })),
      ),
    );
    await this.prober.tick();
    // a passing check cancels a pending restart (restart.ts, Nomad check_restart)
    for (const id of this.restartDue.keys()) if (this.prober.tracker.get(id)?.consecutiveFailures === 0) this.restartDue.delete(id);
    const events = this.probed.splice(0);
    for (const e of events) await this.onProbe(e, seen.get(e.agent)?.rec);
    for (const s of seen.values()) {
      if (this.busy.has(s.rec.slug)) continue;
      if (this.rolling.has(s.rec.slug)) {
        this.hold(s);
        continue;
      }
      this.act(s, first);
    }
  }

  /** Which agents are being rolled out now; a `rollout_hold` / `rollout_resume` event when that changes. */
  private async observeRollouts(seen: Map<string, Seen>): Promise<void> {
    const now = await rolloutsInProgress(this.deps.config.workspace);
    const at = this.clock.now();
    for (const slug of now) {
      if (!this.rolling.has(slug) && seen.has(slug)) await this.rec.note({ type: 'rollout_hold', agent: slug, at, reason: 'a rollout is in progress: no restart, restore or scaling until it ends' });
    }
    for (const slug of this.rolling) {
      if (!now.has(slug) && seen.has(slug)) await this.rec.note({ type: 'rollout_resume', agent: slug, at, reason: 'the rollout ended: supervising again' });
    }
    this.rolling = now;
  }

  /** An agent in a rollout: nothing is due for it afterwards from what was seen meanwhile. */
  private hold(s: Seen): void {
    this.absentBefore.delete(s.rec.slug);
    for (const c of s.containers) this.restartDue.delete(c.name);
  }

  private async observe(): Promise<Map<string, Seen>> {
    const seen = await observeAgents(this.deps);
    for (const { rec } of seen.values()) {
      if (this.failed.has(rec.slug) && !givenUp(rec)) this.forgive(rec.slug); // an operator started it again
      if (givenUp(rec)) this.failed.add(rec.slug);
    }
    this.views = new Map([...seen.values()].map((x) => [x.rec.slug, x.containers.filter((c) => c.url).map((c) => c.view)]));
    return seen;
  }

  private forgive(slug: string): void {
    this.failed.delete(slug);
    this.restores.delete(slug);
  }

  /** Health events: rotation, listings, record status, restart requests, giving up. */
  private async onProbe(e: SupervisorEvent, rec: AgentRecord | undefined): Promise<void> {
    const slug = e.agent;
    if (this.rolling.has(slug) && (e.type === 'restart_requested' || e.type === 'failed')) {
      // an old replica draining or a new one in its grace period: the rollout decides (it rolls back on its own)
      log.debug({ agent: slug, type: e.type, reason: e.reason }, 'ignored during a rollout');
      return;
    }
    if (e.type === 'restart_requested') this.restartDue.set(e.replica, { at: e.at + e.delayMs, reason: e.reason });
    if (e.type === 'failed') {
      this.failed.add(slug);
      await this.rec.fail(rec, slug, e.at, e.reason, e.replica);
      return;
    }
    await this.rec.note(e);
    const anyIn = () => (this.views.get(slug) ?? []).some((v) => this.prober.inRotation(v.name));
    if (e.type === 'replica_out' && !anyIn() && !this.down.has(slug)) {
      this.down.add(slug);
      await this.rec.status(slug, { status: 'unhealthy', lastError: e.reason });
      await this.rec.listing(rec, 'unavailable');
    }
    if (e.type === 'replica_in' && this.down.delete(slug)) {
      await this.rec.status(slug, { status: 'running', lastError: undefined });
      await this.rec.note({ type: 'recovered', agent: slug, at: e.at, reason: `${e.replica} passed its health check` }, 'recovered');
      await this.rec.listing(rec, 'available');
    }
  }

  /** Decide and start (in the background) at most one action for an agent. */
  private act(s: Seen, first: boolean): void {
    const { rec } = s;
    const slug = rec.slug;
    const now = this.clock.now();
    if (rec.desired !== 'running' || this.failed.has(slug)) return;
    const replicas = Math.max(1, ...s.containers.map((c) => c.replica + 1));
    if (!s.containers.some((c) => c.replica === 0)) {
      const confirmed = first || this.absentBefore.has(slug);
      this.absentBefore.add(slug);
      if (confirmed) this.restore(slug, now, 'restored', 'recorded as running but no container exists', { replicas });
      return;
    }
    this.absentBefore.delete(slug);
    const gap = Array.from({ length: replicas }, (_, n) => n).find((n) => !s.containers.some((c) => c.replica === n));
    if (gap !== undefined) {
      this.restore(slug, now, 'restored', `replica ${gap} of ${replicas} is missing`, { replicas });
      return;
    }
    for (const c of s.containers) {
      const due = this.restartDue.get(c.name);
      const decision = reconcileReplica({
        desired: 'running',
        container: observedOf(c.details),
        restartRequested: !!due && due.at <= now,
        lastDecisionAt: this.lastDecision.get(c.name) ?? 0,
        now,
        ...(this.opts.engineGraceMs !== undefined ? { engineGraceMs: this.opts.engineGraceMs } : {}),
      });
      if (decision.action === 'none') {
        if (due && due.at <= now) this.restartDue.delete(c.name); // the engine restarted it already
        continue;
      }
      this.lastDecision.set(c.name, now);
      this.restartDue.delete(c.name);
      const restart = decision.action === 'restart';
      this.restore(slug, now, restart ? 'restarted' : 'restored', restart ? (due?.reason ?? decision.reason) : decision.reason, { replicas, replica: c.name, ...(restart ? { remove: [c.id] } : {}) });
      return;
    }
    this.run(slug, () => this.autoscaler.tick(rec, replicas, now));
  }

  /** Converge the agent through the start use case; a failed attempt counts against the restart policy. */
  private restore(slug: string, now: number, kind: 'restored' | 'restarted', reason: string, o: { replicas: number; replica?: string; remove?: string[] }): void {
    let r = this.restores.get(slug);
    if (!r) {
      const tracker = new RestartTracker({ check_restart: { limit: 1, grace_s: 0 }, restart: this.policy.restart }, now, this.opts.random);
      this.restores.set(slug, (r = { tracker, notBefore: 0 }));
    }
    if (now < r.notBefore) return;
    const entry = r;
    entry.tracker.started(now);
    this.run(slug, async () => {
      const res = await convergeAgent(this.deps, slug, { remove: o.remove, replicas: o.replicas });
      const at = this.clock.now();
      if (res.ok) {
        await this.rec.note({ type: kind, agent: slug, ...(o.replica ? { replica: o.replica } : {}), at, reason }, kind);
        return;
      }
      await this.rec.note({ type: 'action_failed', agent: slug, at, action: kind === 'restarted' ? 'restart' : 'restore', reason: res.reason });
      const d = entry.tracker.check(false, at);
      if (d.action === 'restart') entry.notBefore = at + d.delayMs;
      if (d.action === 'failed') {
        this.failed.add(slug);
        const rec = await this.deps.registry.get(slug).catch(() => undefined);
        await this.rec.fail(rec, slug, at, `could not start it: ${res.reason}; ${d.reason}`);
      }
    });
  }

  private run(slug: string, fn: () => Promise<void>): void {
    const p = fn()
      .catch((err) => log.warn({ agent: slug, err: messageOf(err) }, 'action failed'))
      .finally(() => this.busy.delete(slug));
    this.busy.set(slug, p);
  }
}


