/**
 * The autoscaling side of the supervisor loop: per agent with an `autoscale` setting, one load
 * sample per tick from the gateway (`loadOf`), `decideScale` (autoscale.ts: sustained load over
 * the window scales out, quiet after the cool-down scales in, min/max clamp first), and the fleet's
 * scale use case. Every decision is an event with its reason (`scale_out`, `scale_in`, `scale_hold`);
 * applied ones also go to the registry history as `scaled`.
 */
import { messageOf } from '../errors.js';
import type { FleetDeps } from '../fleet/context.js';
import type { AgentRecord } from '../registry/registry.js';
import { Recorder, scaleTo } from './actions.js';
import { decideScale, type AutoscaleConfig, type InflightSample } from './autoscale.js';
import type { AutoscaleSource } from './autoscale-source.js';

export class Autoscaler {
  private readonly samples = new Map<string, InflightSample[]>();
  private readonly lastScaleAt = new Map<string, number>();
  private readonly lastConfigError = new Map<string, string>();

  constructor(
    private readonly deps: FleetDeps,
    private readonly rec: Recorder,
    private readonly source: AutoscaleSource,
    private readonly loadOf: ((slug: string) => { inflight: number; replicas: number }) | undefined,
    private readonly routerPort: number | undefined,
  ) {}

  /** One tick for one agent running `replicas` containers, at `now` (ms). Never throws. */
  async tick(rec: AgentRecord, replicas: number, now: number): Promise<void> {
    const slug = rec.slug;
    let config: AutoscaleConfig | undefined;
    try {
      config = await this.source(slug);
      this.lastConfigError.delete(slug);
    } catch (err) {
      const reason = messageOf(err);
      if (this.lastConfigError.get(slug) !== reason) await this.rec.note({ type: 'action_failed', agent: slug, at: now, action: 'autoscale', reason });
      this.lastConfigError.set(slug, reason);
      return;
    }
    if (!config) {
      this.samples.delete(slug);
      return;
    }
    const samples = this.sample(slug, config, now);
    const d = decideScale({ config, replicas, samples, now, lastScaleAt: this.lastScaleAt.get(slug) ?? 0 });
    if (d.action === 'none') {
      await this.rec.note({ type: 'scale_hold', agent: slug, at: now, replicas: d.replicas, reason: d.reason });
      return;
    }
    await this.rec.note({ type: d.action, agent: slug, at: now, replicas: d.replicas, reason: d.reason });
    this.lastScaleAt.set(slug, now);
    const res = await scaleTo(this.deps, slug, d.replicas, this.routerPort);
    if (res.ok) await this.deps.registry.appendHistory(slug, { event: 'scaled', reason: `${replicas} -> ${d.replicas}: ${d.reason}` }).catch(() => undefined);
    else await this.rec.note({ type: 'action_failed', agent: slug, at: this.deps.clock?.now() ?? now, action: d.action, reason: res.reason });
  }

  /** Add this tick's sample; keep the window plus the one sample just before it (decideScale needs the history to reach back a whole window). */
  private sample(slug: string, config: AutoscaleConfig, now: number): InflightSample[] {
    const list = this.samples.get(slug) ?? [];
    if (this.loadOf) list.push({ at: now, inflight: this.loadOf(slug).inflight });
    const from = now - config.scale_out_window_s * 1000;
    while (list.length > 1 && list[1]!.at <= from) list.shift();
    this.samples.set(slug, list);
    return list;
  }
}
