/**
 * The autoscaler's decision for one agent: how many replicas, from the in-flight calls the gateway
 * saw. Pure: the caller samples `Gateway.inflight(agent)` (e.g. every probe tick) and gives the time.
 * Rules: clamp into [min, max] first; scale out when the AVERAGE in-flight over `scale_out_window_s`
 * (a sustained load, not one burst) needs more replicas than there are at `target_inflight_per_replica`
 * each; scale in only after `scale_in_cooldown_s` since the last scaling, to what the average over
 * the same window needs. Every decision carries its reason.
 */
import * as z from 'zod';

/** `autoscale:` in an agent's manifest or nexus.yaml. */
export const AutoscaleSchema = z
  .object({
    min: z.number().int().min(1).default(1),
    max: z.number().int().min(1),
    /** In-flight calls one replica should carry on average (> 0). */
    target_inflight_per_replica: z.number().positive(),
    /** Seconds after any scaling before scaling in (default 300). */
    scale_in_cooldown_s: z.number().min(0).default(300),
    /** Seconds of load the average is taken over (default 30). */
    scale_out_window_s: z.number().positive().default(30),
  })
  .strict()
  .refine((a) => a.max >= a.min, { message: 'max must be >= min', path: ['max'] });
export type AutoscaleConfig = z.infer<typeof AutoscaleSchema>;

/** One sample of an agent's in-flight calls. */
export interface InflightSample {
  /** ms since the epoch. */
  at: number;
  inflight: number;
}

export interface ScaleInput {
  config: AutoscaleConfig;
  replicas: number;
  /** Samples in time order; older than the window are ignored. */
  samples: readonly InflightSample[];
  now: number;
  /** ms since the epoch of the last scale out / in (0 if never). */
  lastScaleAt: number;
}

export type ScaleDecision =
  | { action: 'none'; replicas: number; reason: string }
  | { action: 'scale_out' | 'scale_in'; replicas: number; reason: string };

/** Decide the replica count (rules in the module docstring). */
export function decideScale(input: ScaleInput): ScaleDecision {
  const { config: c, replicas, now } = input;
  if (replicas < c.min) return { action: 'scale_out', replicas: c.min, reason: `${replicas} replica(s) is below min ${c.min}` };
  if (replicas > c.max) return { action: 'scale_in', replicas: c.max, reason: `${replicas} replica(s) is above max ${c.max}` };
  const windowMs = c.scale_out_window_s * 1000;
  const inWindow = input.samples.filter((s) => s.at > now - windowMs && s.at <= now);
  const first = input.samples[0];
  if (!first || first.at > now - windowMs || inWindow.length === 0) {
    return { action: 'none', replicas, reason: `not enough load history yet (need ${c.scale_out_window_s} s)` };
  }
  const avg = inWindow.reduce((a, s) => a + s.inflight, 0) / inWindow.length;
  const needed = Math.min(c.max, Math.max(c.min, Math.ceil(avg / c.target_inflight_per_replica)));
  const load = `average in-flight ${avg.toFixed(1)} over ${c.scale_out_window_s} s, target ${c.target_inflight_per_replica} per replica`;
  if (needed > replicas) return { action: 'scale_out', replicas: needed, reason: `${load}: ${replicas} -> ${needed}` };
  if (needed < replicas) {
    const left = input.lastScaleAt + c.scale_in_cooldown_s * 1000 - now;
    if (left > 0) return { action: 'none', replicas, reason: `${load}: would scale in to ${needed}, cool-down ${Math.ceil(left / 1000)} s left` };
    return { action: 'scale_in', replicas: needed, reason: `${load}: ${replicas} -> ${needed} after the ${c.scale_in_cooldown_s} s cool-down` };
  }
  return { action: 'none', replicas, reason: avg === 0 && replicas === c.min ? 'idle at min' : `${load}: ${replicas} replica(s) fit` };
}
