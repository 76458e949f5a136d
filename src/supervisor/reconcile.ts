/**
 * Desired state against one observed container: what the supervisor should do, never fighting the
 * engine's own restart policy. Pure: the caller observes the container and gives the time.
 *
 * The engine restarts containers itself (Docker's --restart always|unless-stopped|on-failure); the
 * supervisor restarts them for failing health checks (moby#28400: Docker does not). To not restart
 * twice, every decision is compared with the container's start time: if the engine (re)started the
 * container AFTER our last decision, that restart already happened and we do nothing.
 */

/** The engine's view of a replica's container. */
export interface ObservedContainer {
  state: 'created' | 'running' | 'paused' | 'restarting' | 'exited' | 'dead';
  /** ms since the epoch the container last started (0 if never). */
  startedAt: number;
  /** ms since the epoch it last stopped (0 if never). */
  finishedAt?: number;
  exitCode?: number;
  /** The engine's restart policy on it. */
  restartPolicy?: 'no' | 'always' | 'unless-stopped' | 'on-failure';
}

export interface ReconcileInput {
  desired: 'running' | 'stopped';
  /** undefined: no container (removed, or never created after a reboot). */
  container: ObservedContainer | undefined;
  /** The health side asks for a restart (RestartTracker said `restart`). */
  restartRequested: boolean;
  /** ms since the epoch of our last start/restart decision for this replica (0 if none). */
  lastDecisionAt: number;
  now: number;
  /** How long the engine gets to apply its own restart policy to a stopped container (ms, default 10000). */
  engineGraceMs?: number;
}

export type ReconcileAction = 'none' | 'create' | 'start' | 'restart' | 'stop';

/** One action with its reason (for the event log). */
export interface ReconcileDecision {
  action: ReconcileAction;
  reason: string;
}

/** Whether the engine's policy would restart a container that stopped with `exitCode`. */
function engineWillRestart(c: ObservedContainer): boolean {
  if (c.restartPolicy === 'always' || c.restartPolicy === 'unless-stopped') return true;
  return c.restartPolicy === 'on-failure' && (c.exitCode ?? 0) !== 0;
}

/** Decide the action for one replica (rules in the module docstring, in order of precedence). */
export function reconcileReplica(input: ReconcileInput): ReconcileDecision {
  const { desired, container: c, now, lastDecisionAt } = input;
  const engineGraceMs = input.engineGraceMs ?? 10_000;
  if (desired === 'stopped') {
    return c && (c.state === 'running' || c.state === 'restarting' || c.state === 'paused')
      ? { action: 'stop', reason: 'recorded as stopped but the container runs' }
      : { action: 'none', reason: 'stopped as recorded' };
  }
  if (!c) return { action: 'create', reason: 'recorded as running but no container exists' };
  if (c.state === 'restarting') return { action: 'none', reason: 'the engine is restarting it (its restart policy)' };
  if (c.state === 'running' || c.state === 'paused') {
    if (!input.restartRequested) return { action: 'none', reason: c.state === 'running' ? 'running as recorded' : 'paused; health checks decide' };
    if (lastDecisionAt > 0 && c.startedAt > lastDecisionAt) {
      return { action: 'none', reason: `the engine restarted it at ${new Date(c.startedAt).toISOString()}, after our last decision: not restarting again` };
    }
    return { action: 'restart', reason: 'health checks asked for a restart' };
  }
  // created, exited, dead
  const stoppedAt = c.finishedAt ?? 0;
  if (engineWillRestart(c) && stoppedAt > 0 && now - stoppedAt < engineGraceMs) {
    return { action: 'none', reason: `stopped ${now - stoppedAt} ms ago; the engine's '${c.restartPolicy}' policy restarts it` };
  }
  if (lastDecisionAt > stoppedAt && now - lastDecisionAt < engineGraceMs) {
    return { action: 'none', reason: 'our last start is still in progress' };
  }
  return { action: 'start', reason: c.state === 'created' ? 'recorded as running but never started' : `recorded as running but ${c.state} (exit ${c.exitCode ?? '?'})` };
}
