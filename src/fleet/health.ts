import { systemClock, type Clock } from '../clock.js';
import { AppError } from '../errors.js';
import type { ToolSummary } from '../registry/registry.js';
import type { AgentProbe, FleetDeps } from './context.js';
import { ROUTER_GENERATION_PATH } from '../generate/nginx.js';
import { request } from './http.js';

/** Result of one GET /health probe. */
export interface HealthProbe {
  ok: boolean;
  status?: number;
  error?: string;
}

/** One GET `<url>/health` with a deadline in ms. Never throws. */
export async function probeHealth(baseUrl: string, timeoutMs = 1000): Promise<HealthProbe> {
  try {
    const res = await request(`${baseUrl}/health`, { timeoutMs });
    return { ok: res.status === 200, status: res.status };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return { ok: false, error: cause?.code ?? (err as Error).name };
  }
}

export interface WaitOptions {
  timeoutMs: number;
  /** First pause between checks in ms (default 200). */
  intervalMs?: number;
  /** Each pause is the previous one times this factor (default 1: fixed interval)... */
  backoff?: number;
  /** ...up to this many ms (default: intervalMs). */
  maxIntervalMs?: number;
  clock: Clock;
}

/**
 * Poll `check` until it returns a value other than undefined, or the deadline passes.
 * `check` may throw to stop waiting early (e.g. the container exited).
 * Returns the value, or undefined on timeout. Time comes from the injected clock.
 */
export async function waitUntil<T>(check: () => Promise<T | undefined>, opts: WaitOptions): Promise<T | undefined> {
  const deadline = opts.clock.now() + opts.timeoutMs;
  let interval = opts.intervalMs ?? 200;
  const max = Math.max(interval, opts.maxIntervalMs ?? interval);
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    const left = deadline - opts.clock.now();
    if (left <= 0) return undefined;
    await opts.clock.sleep(Math.min(interval, left));
    interval = Math.min(max, interval * (opts.backoff ?? 1));
  }
}

/** The real HTTP probe of agents. */
export const httpProbe: AgentProbe = {
  health: probeHealth,
  async tools(url) {
    try {
      const res = await request(`${url}/tools`, { timeoutMs: 2000 });
      return res.status === 200 ? (res.body as { tools: ToolSummary[] }).tools : undefined;
    } catch {
      return undefined;
    }
  },
  async routerGeneration(url) {
    try {
      const res = await request(`${url}${ROUTER_GENERATION_PATH}`, { timeoutMs: 1000 });
      const g = (res.body as { generation?: unknown } | undefined)?.generation;
      return res.status === 200 && typeof g === 'string' ? g : undefined;
    } catch {
      return undefined;
    }
  },
};

/**
 * Wait until the agent at `url` answers GET /health with 200. Stops early when container `id`
 * exits or restarts (a crash; the engine is asked at most once a second), so a broken agent fails
 * in seconds instead of at the deadline (config.start.healthTimeoutS).
 * @throws AppError CONTAINER_UNHEALTHY with the container's last 20 log lines in details.logs
 */
export async function waitHealthy(deps: FleetDeps, rec: { name: string; slug: string }, url: string, id: string): Promise<void> {
  const clock = deps.clock ?? systemClock;
  const probe = deps.probe ?? httpProbe;
  let lastProbe = '';
  let crashed: string | undefined;
  let lastInspect = clock.now();
  const ok = await waitUntil(
    async () => {
      const p = await probe.health(url, 1000);
      if (p.ok) return true;
      lastProbe = p.status ? `HTTP ${p.status}` : (p.error ?? 'no answer');
      if (clock.now() - lastInspect >= 1000) {
        lastInspect = clock.now();
        const c = await deps.engine.inspectContainer(id);
        if (!c) crashed = 'the container disappeared';
        else if (c.state === 'exited' || c.state === 'dead' || c.restartCount > 0) {
          crashed = `the agent process exited (code ${c.exitCode}${c.restartCount ? `, restarted ${c.restartCount}x` : ''})`;
        }
        if (crashed) return false;
      }
      return undefined;
    },
    // gentle backoff: many agents booting at once should not flood docker-proxy and dockerd
    { timeoutMs: deps.config.start.healthTimeoutS * 1000, intervalMs: 100, backoff: 1.5, maxIntervalMs: 800, clock },
  );
  if (ok === true) return;
  const logs = await deps.engine.containerLogs(id, 20).catch(() => '');
  const why = crashed ?? `no healthy answer from ${url}/health within ${deps.config.start.healthTimeoutS} s (last: ${lastProbe})`;
  throw new AppError('CONTAINER_UNHEALTHY', `agent '${rec.name}' did not become healthy: ${why}`, {
    hint: `fix the agent source (see its logs), then start it again`,
    details: { agent: rec.slug, logs: logs.trimEnd() },
  });
}
