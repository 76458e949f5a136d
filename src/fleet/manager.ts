import { rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import pLimit from 'p-limit';
import { AppError, messageOf } from '../errors.js';
import type { ContainerInfo } from '../engine/engine.js';
import { isoNow } from '../clock.js';
import { LABEL, agentUrl, isPrimaryReplica, workspaceLabels } from '../conventions.js';
import { logger } from '../log.js';
import { agentImageRef, validateAgentName, validateAgentVersion } from '../names.js';
import { agentDir, agentDirToPurge } from '../paths.js';
import { hostPortProbe } from '../ports/probe.js';
import { beingRemoved, nameTaken, notFound } from '../registry/errors.js';
import { isBeingRemoved, type AgentRecord, type ListingChange, type ToolSummary } from '../registry/registry.js';
import { planCapabilities } from '../scaffold/capabilities.js';
import { renderAgentFiles, writeAgentDir } from '../scaffold/render.js';
import { agentContainerSpec, planContainer } from './containers.js';
import { systemClock, type FleetDeps } from './context.js';
import { probeHealth, waitUntil } from './health.js';
import { request } from './http.js';
import { ensureAgentImage, ensureBaseImage, type AgentImage, type BaseImage } from './images.js';
import type { ListingSync } from './marketplace.js';

const log = logger('fleet');

/** Listings follow the lifecycle (fleet/marketplace.ts, loaded only when an agent is registered: it brings the HTTP client, 0.1-0.2 s). */
async function syncListings(deps: FleetDeps, changes: { slug: string; change: ListingChange }[]): Promise<{ listings?: ListingSync[] }> {
  if (!(await deps.registry.list()).some((r) => r.marketplace)) return {};
  const listings = await (await import('./marketplace.js')).syncListings(deps, changes);
  return listings.length ? { listings } : {};
}

export interface CreateOptions {
  name: string;
  capabilities?: string[] | undefined;
  port?: number | undefined;
  description?: string | undefined;
  model?: string | undefined;
  version?: string | undefined;
}

export interface CreateResult {
  agent: AgentRecord;
  /** Absolute path of the rendered source folder. */
  path: string;
  tools: string[];
  url: string;
}

/**
 * Create an agent: validate name, capabilities and port, reserve the port and write the record
 * in one registry step, then render agent-template/ into agents/<slug>/. Any failure leaves
 * nothing behind (the record is removed again if rendering fails).
 * @throws AppError NAME_INVALID, USAGE (bad version), CAPABILITY_UNKNOWN, SOURCE_EXISTS, NAME_TAKEN, PORT_*
 */
export async function createAgent(deps: FleetDeps, opts: CreateOptions): Promise<CreateResult> {
  const { config, registry } = deps;
  const slug = validateAgentName(opts.name);
  const version = validateAgentVersion(opts.version ?? '0.1.0');
  const plan = planCapabilities(opts.capabilities ?? []);
  const dir = agentDir(config.workspace, slug);
  const taken = await registry.get(slug);
  if (taken) {
    throw nameTaken(slug, taken.name);
  }
  if (existsSync(dir)) {
    throw new AppError('SOURCE_EXISTS', `${dir} already exists but no agent '${opts.name}' is registered`, {
      hint: 'move or delete that folder, or choose another --name',
    });
  }
  const description = opts.description ?? `${opts.name}: ${plan.capabilities.join(', ')} agent`;
  const record = await registry.create(
    {
      name: opts.name,
      slug,
      description,
      capabilities: plan.capabilities,
      category: plan.category,
      model: opts.model ?? 'none',
      version,
    },
    { range: config.ports.range, requested: opts.port, isHostPortFree: hostPortProbe(config.ports.bindAddress) },
  );
  try {
    const files = await renderAgentFiles({ ...record, tools: plan.tools });
    await writeAgentDir(dir, files);
  } catch (err) {
    await registry.remove(slug);
    throw err;
  }
  log.debug({ agent: slug, port: record.port }, 'agent created');
  return { agent: record, path: dir, tools: plan.tools, url: agentUrl(config, record.port) };
}

/**
 * The records named (by name or slug), in the order given, or all of them.
 * @throws AppError AGENT_NOT_FOUND for a name the registry does not hold.
 */
export async function resolveTargets(deps: FleetDeps, names: string[] | 'all'): Promise<AgentRecord[]> {
  const all = await deps.registry.list();
  if (names === 'all') return all;
  return names.map((n) => {
    const slug = (() => {
      try {
        return validateAgentName(n);
      } catch {
        return n;
      }
    })();
    const rec = all.find((a) => a.slug === slug || a.name === n);
    if (!rec) throw notFound(n);
    return rec;
  });
}

export interface BuildResult {
  base: BaseImage;
  agents: { name: string; slug: string; image: string; id: string; built: boolean }[];
}

/**
 * Build the base image (cached by runtime hash) and the agent images (skipped when the source
 * hash is unchanged). names: agent names/slugs, or 'all'.
 * @throws AppError ENGINE_UNREACHABLE, BASE_IMAGE_FAILED, BUILD_FAILED, AGENT_NOT_FOUND
 */
export async function buildAgents(deps: FleetDeps, names: string[] | 'all', opts: { force?: boolean } = {}): Promise<BuildResult> {
  await deps.engine.ping();
  const targets = await resolveTargets(deps, names);
  const base = await ensureBaseImage(deps, { force: opts.force ?? false });
  const limit = pLimit(2);
  const agents = await Promise.all(
    targets.map((rec) =>
      limit(async () => {
        const img = await ensureAgentImage(deps, rec, base);
        await recordImage(deps, rec, img);
        deps.onProgress?.({ agent: rec.slug, phase: img.built ? 'built' : 'cached' });
        return { name: rec.name, slug: rec.slug, image: img.ref, id: img.id, built: img.built };
      }),
    ),
  );
  return { base, agents };
}

function imageRecord(deps: FleetDeps, img: AgentImage): NonNullable<AgentRecord['image']> {
  return { ref: img.ref, id: img.id, sourceHash: img.sourceHash, builtAt: isoNow(deps.clock) };
}

async function recordImage(deps: FleetDeps, rec: AgentRecord, img: AgentImage): Promise<void> {
  await deps.registry.update(rec.slug, {
    image: imageRecord(deps, img),
    ...(rec.status === 'created' ? { status: 'built' as const } : {}),
  });
}

/** Outcome of starting one agent. */
export interface StartOutcome {
  name: string;
  slug: string;
  port: number;
  url: string;
  /** started: new container; recreated: replaced (source or config changed); restarted: existing container started; unchanged: already running and healthy; failed. */
  outcome: 'started' | 'recreated' | 'restarted' | 'unchanged' | 'failed';
  imageBuilt: boolean;
  containerId?: string;
  error?: { code: string; message: string; hint?: string };
  /** Last log lines of a container that did not become healthy. */
  logs?: string;
}

export interface StartResult {
  agents: StartOutcome[];
  ok: number;
  failed: number;
  /** Marketplace listings this start changed or retried (registered agents only). */
  listings?: ListingSync[];
}

async function agentContainers(deps: FleetDeps, slug: string): Promise<ContainerInfo[]> {
  return deps.engine.listContainers({ ...workspaceLabels(deps.config), [LABEL.agent]: slug });
}

async function fetchTools(url: string): Promise<ToolSummary[] | undefined> {
  try {
    const res = await request(`${url}/tools`, { timeoutMs: 2000 });
    if (res.status !== 200) return undefined;
    return (res.body as { tools: ToolSummary[] }).tools;
  } catch {
    return undefined;
  }
}

/**
 * Wait until the agent answers GET /health with 200. Stops early when the container exits or
 * restarts (a crash), so a broken agent fails in seconds instead of at the deadline.
 * @throws AppError CONTAINER_UNHEALTHY with the container's last log lines in details.logs
 */
async function waitHealthy(deps: FleetDeps, rec: AgentRecord, id: string): Promise<void> {
  const clock = deps.clock ?? systemClock;
  const url = agentUrl(deps.config, rec.port);
  let lastProbe = '';
  let crashed: string | undefined;
  let lastInspect = clock.now();
  const ok = await waitUntil(
    async () => {
      const probe = await probeHealth(url, 1000);
      if (probe.ok) return true;
      lastProbe = probe.status ? `HTTP ${probe.status}` : (probe.error ?? 'no answer');
      // a crash shows in the engine's state; ask it at most once a second
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

/**
 * Start (or converge) one agent. Never throws: failures become outcomes. `engineSlot` bounds the
 * engine work (bundle, build, create, start); the health wait runs outside it, so a slow-booting
 * agent never delays the creation of the next container.
 */
async function startOne(
  deps: FleetDeps,
  rec: AgentRecord,
  base: BaseImage,
  engineSlot: <T>(fn: () => Promise<T>) => Promise<T>,
): Promise<StartOutcome> {
  const url = agentUrl(deps.config, rec.port);
  const out: StartOutcome = { name: rec.name, slug: rec.slug, port: rec.port, url, outcome: 'failed', imageBuilt: false };
  let createdId: string | undefined;
  let img: AgentImage | undefined;
  try {
    const id = await engineSlot(async () => {
      img = await ensureAgentImage(deps, rec, base);
      out.imageBuilt = img.built;
      const spec = agentContainerSpec(deps.config, rec, img);
      const observed = await agentContainers(deps, rec.slug);
      const plan = planContainer(spec.labels[LABEL.configHash]!, observed);
      for (const old of plan.remove) await deps.engine.removeContainer(old);
      if (plan.action === 'keep') {
        out.outcome = 'unchanged';
        return plan.id;
      }
      if (plan.action === 'start') {
        deps.onProgress?.({ agent: rec.slug, phase: 'start' });
        await deps.engine.startContainer(plan.id);
        out.outcome = 'restarted';
        return plan.id;
      }
      deps.onProgress?.({ agent: rec.slug, phase: 'create' });
      createdId = await deps.engine.createContainer(spec);
      await deps.engine.startContainer(createdId);
      out.outcome = plan.action === 'recreate' ? 'recreated' : 'started';
      return createdId;
    });
    out.containerId = id;
    deps.onProgress?.({ agent: rec.slug, phase: 'health' });
    await waitHealthy(deps, rec, id);
    const tools = await fetchTools(url);
    // one registry write per agent: image, state and tools together
    await deps.registry.update(rec.slug, {
      desired: 'running',
      status: 'running',
      lastError: undefined,
      ...(img ? { image: imageRecord(deps, img) } : {}),
      ...(tools ? { tools } : {}),
    });
    deps.onProgress?.({ agent: rec.slug, phase: 'healthy', message: url });
    return out;
  } catch (err) {
    const e = err instanceof AppError ? err : new AppError('INTERNAL', messageOf(err), { cause: err });
    out.outcome = 'failed';
    out.error = { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
    if (typeof e.details?.logs === 'string') out.logs = e.details.logs;
    // No orphan: a container this call made (or one that cannot become healthy) is removed.
    const toRemove = out.containerId ?? createdId;
    if (toRemove && e.code === 'CONTAINER_UNHEALTHY') await deps.engine.removeContainer(toRemove).catch(() => undefined);
    else if (createdId) await deps.engine.removeContainer(createdId).catch(() => undefined);
    delete out.containerId;
    await deps.registry
      .update(rec.slug, {
        desired: 'running',
        status: e.code === 'CONTAINER_UNHEALTHY' ? 'unhealthy' : 'failed',
        lastError: e.message,
        ...(img ? { image: imageRecord(deps, img) } : {}),
      })
      .catch(() => undefined);
    deps.onProgress?.({ agent: rec.slug, phase: 'failed', message: e.message });
    return out;
  }
}

function removingOutcome(deps: FleetDeps, rec: AgentRecord): StartOutcome {
  const { code, message, hint } = beingRemoved(rec.name);
  return { name: rec.name, slug: rec.slug, port: rec.port, url: agentUrl(deps.config, rec.port), outcome: 'failed', imageBuilt: false, error: { code, message, hint: hint! } };
}

/**
 * Start agents (names, or 'all' for start-all): ensure the base image, build what changed, create
 * and start containers in parallel (at most start.concurrency at once), wait for health, record
 * state, and report each agent's outcome. Idempotent: running healthy agents are left alone.
 * Registered agents' listings follow: healthy ones are marked available, failed ones unavailable
 * (`listings`; stale ones are retried later, see fleet/marketplace.ts syncListings).
 * @throws AppError ENGINE_UNREACHABLE, BASE_IMAGE_FAILED, AGENT_NOT_FOUND (per-agent failures are outcomes)
 */
export async function startAgents(deps: FleetDeps, names: string[] | 'all'): Promise<StartResult> {
  await deps.engine.ping();
  const all = await resolveTargets(deps, names);
  // an agent being removed is never started again; named, it is an error
  const removing = names === 'all' ? [] : all.filter(isBeingRemoved).map((rec) => removingOutcome(deps, rec));
  const targets = all.filter((rec) => !isBeingRemoved(rec));
  if (targets.length === 0 && removing.length === 0) return { agents: [], ok: 0, failed: 0, ...(await syncListings(deps, [])) };
  const base = targets.length ? await ensureBaseImage(deps) : undefined;
  const limit = pLimit(deps.config.start.concurrency);
  const agents = [...removing, ...(await Promise.all(targets.map((rec) => startOne(deps, rec, base!, limit))))];
  const failed = agents.filter((a) => a.outcome === 'failed').length;
  const listings = await syncListings(deps, targets.map((rec, i) => ({ slug: rec.slug, change: agents[removing.length + i]!.outcome === 'failed' ? 'unavailable' : 'available' })));
  return { agents, ok: agents.length - failed, failed, ...listings };
}

export interface StopOutcome {
  name: string;
  slug: string;
  /** Containers stopped and removed. */
  removed: number;
}

/**
 * Stop agents: SIGTERM (in-flight requests finish), SIGKILL after `timeoutS`, then remove the
 * container (agents are stateless; `start` recreates it in about a second). Records desired=stopped.
 * Registered agents' listings are marked unavailable (`listings`; stale ones are retried later).
 */
export async function stopAgents(deps: FleetDeps, names: string[] | 'all', timeoutS = 10): Promise<{ agents: StopOutcome[]; listings?: ListingSync[] }> {
  await deps.engine.ping();
  const targets = await resolveTargets(deps, names);
  const limit = pLimit(deps.config.start.concurrency);
  const agents = await Promise.all(
    targets.map((rec) =>
      limit(async () => {
        const cs = await agentContainers(deps, rec.slug);
        for (const c of cs) {
          deps.onProgress?.({ agent: rec.slug, phase: 'stop' });
          await deps.engine.stopContainer(c.id, timeoutS);
          await deps.engine.removeContainer(c.id);
        }
        await deps.registry.update(rec.slug, { desired: 'stopped', status: 'stopped' });
        return { name: rec.name, slug: rec.slug, removed: cs.length };
      }),
    ),
  );
  return { agents, ...(await syncListings(deps, targets.map((rec) => ({ slug: rec.slug, change: 'unavailable' as const })))) };
}

/** One row of `list`: the record merged with live container state and health. */
export interface AgentRow {
  name: string;
  slug: string;
  port: number;
  url: string;
  capabilities: string[];
  category: string;
  /** Recorded status. */
  status: AgentRecord['status'];
  desired: AgentRecord['desired'];
  /** Live container state, or 'none'. */
  container: string;
  /** GET /health now: healthy, unhealthy, or '-' when no container runs. */
  health: 'healthy' | 'unhealthy' | '-';
  tools: string[];
  image?: string | undefined;
}

/**
 * The registry's agents merged with what the engine runs (found by label) and a live /health
 * probe (1 s each, in parallel). Containers of this workspace without a record are `orphans`.
 */
export async function listAgents(deps: FleetDeps, opts: { probe?: boolean } = {}): Promise<{ agents: AgentRow[]; orphans: string[] }> {
  const records = await deps.registry.list();
  let containers: ContainerInfo[] = [];
  let engineUp = true;
  try {
    containers = await deps.engine.listContainers(workspaceLabels(deps.config));
  } catch (err) {
    if (!(err instanceof AppError && err.code === 'ENGINE_UNREACHABLE')) throw err;
    engineUp = false;
  }
  const bySlug = new Map<string, ContainerInfo>();
  for (const c of containers) {
    const slug = c.labels[LABEL.agent];
    if (slug && isPrimaryReplica(c.labels)) bySlug.set(slug, c);
  }
  const agents = await Promise.all(
    records.map(async (rec): Promise<AgentRow> => {
      const c = bySlug.get(rec.slug);
      const url = agentUrl(deps.config, rec.port);
      let health: AgentRow['health'] = '-';
      if (c?.state === 'running' && opts.probe !== false) health = (await probeHealth(url, 1000)).ok ? 'healthy' : 'unhealthy';
      return {
        name: rec.name,
        slug: rec.slug,
        port: rec.port,
        url,
        capabilities: rec.capabilities,
        category: rec.category,
        status: rec.status,
        desired: rec.desired,
        container: engineUp ? (c?.state ?? 'none') : 'unknown (engine unreachable)',
        health,
        tools: (rec.tools ?? []).map((t) => t.name),
        image: rec.image?.ref,
      };
    }),
  );
  const known = new Set(records.map((r) => r.slug));
  const orphans = containers.filter((c) => !known.has(c.labels[LABEL.agent] ?? '')).map((c) => c.name);
  return { agents, orphans };
}

/** The agent's primary container, or AppError AGENT_NOT_FOUND / a hint to start it. */
export async function findContainer(deps: FleetDeps, name: string): Promise<{ record: AgentRecord; container: ContainerInfo }> {
  const [record] = await resolveTargets(deps, [name]);
  const cs = await agentContainers(deps, record!.slug);
  const container = cs.find((c) => isPrimaryReplica(c.labels));
  if (!container) {
    throw new AppError('AGENT_NOT_FOUND', `agent '${record!.name}' has no container`, {
      hint: `start it first: agent start --name ${record!.name}`,
    });
  }
  return { record: record!, container };
}

/** The last `tail` log lines of an agent's container. */
export async function agentLogs(deps: FleetDeps, name: string, tail = 100): Promise<{ name: string; logs: string }> {
  await deps.engine.ping();
  const { record, container } = await findContainer(deps, name);
  return { name: record.name, logs: await deps.engine.containerLogs(container.id, tail) };
}

/**
 * Remove an agent: its containers, its image, its record (releasing the port), and with `purge`
 * its source folder, only ever strictly inside `<workspace>/agents/` (agentDirToPurge). Containers
 * go first so nothing runs without a record. A registered agent's listing is removed from the
 * marketplace; when that fails, `recordKept` is true and the record (port included) stays until a
 * later lifecycle command or `register` removes the listing.
 * @throws AppError AGENT_NOT_FOUND; USAGE when the folder to purge is not safely inside agents/.
 */
export async function removeAgent(
  deps: FleetDeps,
  name: string,
  opts: { purge?: boolean } = {},
): Promise<{ name: string; slug: string; port: number; purged: boolean; recordKept: boolean; listings?: ListingSync[] }> {
  await deps.engine.ping();
  const [record] = await resolveTargets(deps, [name]);
  const rec = record!;
  // checked before anything is removed: a refusal leaves the agent as it was
  const purgeDir = opts.purge ? await agentDirToPurge(deps.config.workspace, rec.slug) : undefined;
  for (const c of await agentContainers(deps, rec.slug)) await deps.engine.removeContainer(c.id);
  await deps.engine.removeImage(agentImageRef(rec.slug, deps.config.images.tag, deps.config.project)).catch(() => undefined);
  // a registered agent's listing goes first; if the marketplace cannot be reached, the record
  // stays (stopped, marketplace.pending unregister) until a later command removes the listing
  const synced = await syncListings(deps, [{ slug: rec.slug, change: 'unregister' }]);
  const recordKept = !!synced.listings?.some((l) => l.slug === rec.slug && l.outcome === 'stale');
  if (recordKept) await deps.registry.update(rec.slug, { desired: 'stopped', status: 'stopped' });
  else await deps.registry.remove(rec.slug);
  if (purgeDir) await rm(purgeDir, { recursive: true, force: true });
  return { name: rec.name, slug: rec.slug, port: rec.port, purged: !!opts.purge, recordKept, ...synced };
}
