import { systemClock } from '../clock.js';
import type { ServiceStatus, TaskStatus } from '../engine/engine.js';
import { AppError } from '../errors.js';
import type { FleetDeps } from './context.js';
import { waitUntil } from './health.js';

/** Where one swarm service stands after a deploy. */
export interface ServiceOutcome {
  service: string;
  /** converged: `desired` tasks running (healthy: Swarm keeps a task `starting` until its healthcheck passes); failed: its tasks keep failing; pending: neither yet (at the deadline: timed out). */
  outcome: 'converged' | 'pending' | 'failed';
  running: number;
  desired: number;
  /** The engine's error of the latest failed or rejected task, e.g. "No such image: nginx:1.27-alpine". */
  error?: string;
}

/** Failed or rejected tasks (since the deploy) after which a service counts as failed rather than still trying. */
export const MAX_TASK_FAILURES = 3;

const FAILED: ReadonlySet<TaskStatus['state']> = new Set(['failed', 'rejected', 'orphaned']);

/**
 * Classify one service (pure). Running = tasks running that Swarm wants running. Failures count
 * only tasks created at or after `since` (ms since the epoch), so history from an earlier deploy
 * does not fail this one; Swarm retries failed tasks, so a service fails after `maxFailures` of them.
 */
export function serviceOutcome(s: ServiceStatus, since: number, maxFailures = MAX_TASK_FAILURES): ServiceOutcome {
  const running = s.tasks.filter((t) => t.state === 'running' && t.desiredState === 'running').length;
  const failures = s.tasks.filter((t) => FAILED.has(t.state) && t.createdAt >= since).sort((a, b) => b.createdAt - a.createdAt);
  const error = failures.find((t) => t.error)?.error;
  const base = { service: s.name, running, desired: s.desiredTasks, ...(error ? { error } : {}) };
  if (running >= s.desiredTasks) return { ...base, outcome: 'converged' };
  if (failures.length >= maxFailures) return { ...base, outcome: 'failed' };
  return { ...base, outcome: 'pending' };
}

/** One line per service that did not converge, for the error message. Pure. */
export function describeOutcomes(outcomes: readonly ServiceOutcome[]): string {
  return outcomes
    .filter((o) => o.outcome !== 'converged')
    .map((o) => `${o.service} ${o.outcome === 'failed' ? 'failed' : 'timed out'} (${o.running}/${o.desired} running)${o.error ? `: ${o.error}` : ''}`)
    .join('; ');
}

export interface ConvergeOptions {
  /** Services expected in the stack (full names); one missing is pending. */
  services: readonly string[];
  /** When the deploy started, ms since the epoch (the deps' clock). */
  since: number;
  /** Deadline in ms from now. */
  timeoutMs: number;
  /** Pause between polls in ms (default 1000). */
  intervalMs?: number;
}

/**
 * Wait until every service of `stack` runs all its tasks healthy, or one fails, or the deadline
 * passes; polls the engine through the injected clock. Returns each service's outcome when all
 * converged.
 * @throws AppError STACK_NOT_CONVERGED naming each service that failed or timed out and the
 *   engine's task error, with every outcome in details.services.
 */
export async function waitForStack(deps: FleetDeps, stack: string, o: ConvergeOptions): Promise<ServiceOutcome[]> {
  const clock = deps.clock ?? systemClock;
  let last: ServiceOutcome[] = [];
  const said = new Map<string, string>();
  const settled = await waitUntil(
    async () => {
      const found = new Map((await deps.engine.stackServices(stack)).map((s) => [s.name, s]));
      last = o.services.map((name) => {
        const s = found.get(name);
        return s ? serviceOutcome(s, o.since) : { service: name, outcome: 'pending' as const, running: 0, desired: 1, error: 'service not found' };
      });
      for (const x of last) {
        const message = `${x.running}/${x.desired} running${x.error ? `: ${x.error}` : ''}`;
        // progress on change only: a poll a second must not print a line a second
        if (said.get(x.service) !== message) deps.onProgress?.({ agent: x.service, phase: x.outcome, message });
        said.set(x.service, message);
      }
      if (last.some((x) => x.outcome === 'failed')) return false;
      return last.every((x) => x.outcome === 'converged') ? true : undefined;
    },
    { timeoutMs: o.timeoutMs, intervalMs: o.intervalMs ?? 1000, clock },
  );
  if (settled === true) return last;
  throw new AppError('STACK_NOT_CONVERGED', `stack ${stack} did not converge: ${describeOutcomes(last)}`, {
    hint: last.some((x) => /No such image/i.test(x.error ?? ''))
      ? 'build or push the missing image on every node (agent push --registry ..., deploy --registry ...), or use --offline-router'
      : `see docker service ps --no-trunc ${stack}_<service>, fix it, and deploy again`,
    details: { services: last },
  });
}
