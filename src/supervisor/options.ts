/** The supervisor's options (src/supervisor/supervisor.ts), checked once at construction. */
import { AppError } from '../errors.js';
import type { AutoscaleSource } from './autoscale-source.js';
import type { ProbeFn, SupervisorEvent } from './prober.js';
import { RestartPolicySchema, type RestartPolicy } from './restart.js';
import type { AgentLoad } from './view.js';

export interface SupervisorOptions {
  /** ms between ticks (default 5000). */
  probeIntervalMs?: number;
  /** ms before a probe counts as failed (default 2000). */
  probeTimeoutMs?: number;
  /** Failing checks that take a replica out of rotation (default 3). */
  failureThreshold?: number;
  /** Restart policy as written (seconds; RestartPolicySchema defaults). */
  restartPolicy?: Partial<{ check_restart: Partial<RestartPolicy['check_restart']>; restart: Partial<RestartPolicy['restart']> }>;
  /** Autoscaling per agent (default: manifest, then nexus.yaml). */
  autoscale?: AutoscaleSource;
  /** The gateway's load of an agent; without it only min/max are enforced. */
  loadOf?: (slug: string) => AgentLoad;
  /** Where events go; default: the fleet's typed stream (deps.onEvent) as `note` FleetEvents, `phase` the event type. */
  onEvent?: (e: SupervisorEvent) => void;
  /** ms the engine gets to apply its own restart policy to a stopped container (default 10000). */
  engineGraceMs?: number;
  /** Router port for scaling (default the fleet's, 8088). */
  routerPort?: number;
  /** Tests: the probe and the jitter source. */
  probe?: ProbeFn;
  random?: () => number;
}

/**
 * Check the options; returns the restart policy with its defaults.
 * @throws AppError USAGE naming the option: an interval, timeout or grace that is not a positive
 *   number of ms, a failure threshold that is not a whole number >= 1, a restart policy outside
 *   RestartPolicySchema.
 */
export function checkOptions(opts: SupervisorOptions): RestartPolicy {
  for (const k of ['probeIntervalMs', 'probeTimeoutMs', 'engineGraceMs'] as const) {
    const v = opts[k];
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new AppError('USAGE', `supervisor option ${k} must be a positive number of ms`, { hint: `e.g. ${k}: 5000` });
  }
  const t = opts.failureThreshold;
  if (t !== undefined && !(Number.isInteger(t) && t >= 1)) throw new AppError('USAGE', 'supervisor option failureThreshold must be a whole number >= 1', { hint: 'e.g. failureThreshold: 3' });
  const policy = RestartPolicySchema.safeParse(opts.restartPolicy ?? {});
  if (!policy.success) {
    const issue = policy.error.issues[0]!;
    throw new AppError('USAGE', `supervisor restart policy: ${issue.path.join('.') || '(policy)'}: ${issue.message}`, { hint: 'see RestartPolicySchema in src/supervisor/restart.ts' });
  }
  return policy.data;
}
