import { readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { systemClock } from '../clock.js';
import { CONTAINER_PORT, LABEL, dialUrl, workspaceLabels } from '../conventions.js';
import { AppError } from '../errors.js';
import { ROUTER_RELOAD_MARKER, generationOf, type UpstreamServer } from '../generate/nginx.js';
import { emitterOf, type FleetDeps } from './context.js';
import { httpProbe, waitUntil } from './health.js';
import { localNetworkName, localRouterDir, localRouterName } from './router.js';

/** How long a reloaded router may take to serve its new file, ms. */
export const ROUTER_RELOAD_TIMEOUT_MS = 10_000;
/**
 * How long the router answers with `Connection: close` before a reload, and again after the new
 * file is served, ms: every busy keep-alive client connection gets its announced last answer
 * before the old workers close what is idle, and the old workers' in-flight calls end announced too.
 */
export const ROUTER_CLIENT_DRAIN_MS = 300;

/**
 * The live replicas of every agent of the workspace, by slug: running agent containers with an
 * address on the workspace network (one inspect each), minus the container ids in `exclude`
 * (replicas being drained, or not yet healthy). Sorted by container name, so an unchanged set
 * writes an unchanged file. @throws AppError ENGINE_UNREACHABLE / ENGINE_ERROR.
 */
export async function liveUpstreams(deps: FleetDeps, exclude: ReadonlySet<string> = new Set()): Promise<Record<string, UpstreamServer[]>> {
  const { engine, config } = deps;
  const net = localNetworkName(config.workspace);
  const list = await engine.listContainers({ ...workspaceLabels(config), [LABEL.kind]: 'container' });
  const running = list.filter((c) => c.state === 'running' && c.labels[LABEL.agent] && !exclude.has(c.id)).sort((a, b) => a.name.localeCompare(b.name));
  const details = await Promise.all(running.map((c) => engine.inspectContainer(c.id)));
  const out: Record<string, UpstreamServer[]> = {};
  running.forEach((c, i) => {
    const ip = details[i]?.networks?.[net];
    if (!ip) return;
    const slug = c.labels[LABEL.agent]!;
    (out[slug] ??= []).push({ host: ip, port: CONTAINER_PORT });
  });
  return out;
}

/**
 * Write the local router's files with upstream blocks of the live replicas (see liveUpstreams;
 * `exclude` leaves some out). Returns the conf, the index and the file's generation.
 */
export async function writeLocalRoutes(deps: FleetDeps, routerPort: number, exclude?: ReadonlySet<string>): Promise<{ conf: string; index: string; generation: string; servers: Record<string, UpstreamServer[]> }> {
  const { writeNginxRoutes } = await import('./production.js');
  const servers = await liveUpstreams(deps, exclude);
  const dir = localRouterDir(deps.config.workspace);
  const [conf, index] = await writeNginxRoutes(deps, dir, { routerPort, routerAddress: deps.config.ports.bindAddress }, { kind: 'upstreams', servers });
  const generation = generationOf(await readFile(join(dir, 'nexus-agents.conf'), 'utf8'));
  if (!generation) throw new AppError('INTERNAL', 'the local router file has no generation');
  return { conf: conf!, index: index!, generation, servers };
}

/**
 * Wait until the local router at `routerPort` serves `generation` (its reload took effect: new
 * connections reach the new replica set). Skipped when deps.probe has no routerGeneration (fakes).
 * @throws AppError ROUTER_RELOAD_FAILED after ROUTER_RELOAD_TIMEOUT_MS (nginx kept its old file:
 *   see `docker logs <router>`).
 */
export async function waitRouterGeneration(deps: FleetDeps, routerPort: number, generation: string): Promise<void> {
  const probe = deps.probe ?? httpProbe;
  if (!probe.routerGeneration) return;
  const url = dialUrl(deps.config.ports.bindAddress, routerPort);
  const ok = await waitUntil(async () => ((await probe.routerGeneration!(url)) === generation ? true : undefined), {
    timeoutMs: ROUTER_RELOAD_TIMEOUT_MS,
    intervalMs: 50,
    backoff: 1.5,
    maxIntervalMs: 500,
    clock: deps.clock ?? systemClock,
  });
  if (!ok) {
    throw new AppError('ROUTER_RELOAD_FAILED', `the local router on port ${routerPort} does not serve the new routes (generation ${generation}) after ${ROUTER_RELOAD_TIMEOUT_MS / 1000} s`, {
      hint: `see why nginx refused them: docker logs ${localRouterName(deps.config.workspace)}`,
    });
  }
}

/** What a router sync wrote: the file's generation, the upstream servers, whether a running router was reloaded. */
export interface RouterSync {
  generation: string;
  servers: Record<string, UpstreamServer[]>;
  reloaded: boolean;
}

/** syncLocalRouter without its events (for the executor, which emits the plan action's own). */
export async function reloadLocalRouter(deps: FleetDeps, routerPort: number, exclude?: ReadonlySet<string>): Promise<RouterSync> {
  const w = await writeLocalRoutes(deps, routerPort, exclude);
  const r = await deps.engine.inspectContainer(localRouterName(deps.config.workspace));
  const reloaded = r?.state === 'running';
  if (r && reloaded) {
    // keep-alive clients: no idle connection for the old workers to close under them (ROUTER_RELOAD_MARKER)
    const live = !!(deps.probe ?? httpProbe).routerGeneration; // fakes have no nginx to drain
    const clock = deps.clock ?? systemClock;
    const marker = join(localRouterDir(deps.config.workspace), basename(ROUTER_RELOAD_MARKER));
    if (live) {
      await writeFile(marker, '');
      await clock.sleep(ROUTER_CLIENT_DRAIN_MS);
    }
    try {
      await deps.engine.signalContainer(r.id, 'SIGHUP');
      await waitRouterGeneration(deps, routerPort, w.generation);
      if (live) await clock.sleep(ROUTER_CLIENT_DRAIN_MS);
    } finally {
      if (live) await rm(marker, { force: true });
    }
  }
  return { generation: w.generation, servers: w.servers, reloaded };
}

/**
 * Regenerate the running local router's routes from the live replicas (minus `exclude`), reload
 * it (SIGHUP to nginx: new workers take the new file, old ones finish their requests), and wait
 * until it serves the new file. Around the reload the router answers with `Connection: close`
 * (the marker file, ROUTER_CLIENT_DRAIN_MS before and after), so keep-alive clients lose no request
 * to nginx closing their idle connections; this adds 2 x ROUTER_CLIENT_DRAIN_MS to each reload. What nginx-proxy/docker-gen do on every container change. Call it
 * whenever replicas change (scale, rollout, a replica restarted). A workspace without a running
 * router only gets its files written. Emits a `reload-router` action event.
 * Returns the generation and the upstream servers written.
 * @throws AppError ROUTER_RELOAD_FAILED, ENGINE_* errors.
 */
export async function syncLocalRouter(deps: FleetDeps, routerPort: number, exclude?: ReadonlySet<string>): Promise<RouterSync> {
  const emit = emitterOf(deps);
  emit({ kind: 'action', action: 'reload-router', phase: 'begin' });
  try {
    const s = await reloadLocalRouter(deps, routerPort, exclude);
    emit({ kind: 'action', action: 'reload-router', phase: 'end', outcome: 'ok', message: `generation ${s.generation}` });
    return s;
  } catch (err) {
    const e = err instanceof AppError ? err : new AppError('INTERNAL', String(err), { cause: err });
    emit({ kind: 'action', action: 'reload-router', phase: 'end', outcome: 'failed', error: { code: e.code, message: e.message } });
    throw e;
  }
}
