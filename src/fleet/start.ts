import pLimit from 'p-limit';
import { isoNow } from '../clock.js';
import { agentUrl } from '../conventions.js';
import { AppError, messageOf } from '../errors.js';
import { beingRemoved } from '../registry/errors.js';
import { isBeingRemoved, type AgentRecord } from '../registry/registry.js';
import { emitterOf, type FleetDeps } from './context.js';
import { desiredImage } from './desire.js';
import { execute, type AgentRun, type RunResult } from './execute.js';
import { ensureBaseImage, type BaseImage } from './images.js';
import { syncListingsIfRegistered, type ListingSync } from './listings.js';
import { plan, type DesiredAgent, type DesiredState } from './plan.js';
import { observe } from './state.js';
import { resolveTargets } from './targets.js';

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

/** Options of a start beyond the agents: replicas and the local router (used by scale). */
export interface ConvergeOptions {
  replicas?: number | undefined;
  router?: DesiredState['router'];
  routerPort?: number | undefined;
}

const asAppError = (err: unknown) => (err instanceof AppError ? err : new AppError('INTERNAL', messageOf(err), { cause: err }));

function outcomeOf(run: AgentRun | undefined): StartOutcome['outcome'] {
  const d = run?.done ?? [];
  return d.includes('recreate') ? 'recreated' : d.includes('create') ? 'started' : d.includes('start') ? 'restarted' : 'unchanged';
}

/**
 * The error policy of a start: no orphan (a container this start created, or one that cannot
 * become healthy, is removed) and the record says what went wrong.
 */
async function failAgent(deps: FleetDeps, rec: AgentRecord, out: StartOutcome, e: AppError, run: AgentRun | undefined): Promise<void> {
  out.outcome = 'failed';
  out.error = { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
  if (typeof e.details?.logs === 'string') out.logs = e.details.logs;
  const toRemove = new Set(run?.created ?? []);
  if (e.code === 'CONTAINER_UNHEALTHY' && run?.containerId) toRemove.add(run.containerId);
  for (const id of toRemove) await deps.engine.removeContainer(id).catch(() => undefined);
  delete out.containerId;
  const img = run?.image;
  await deps.registry
    .update(rec.slug, {
      desired: 'running',
      status: e.code === 'CONTAINER_UNHEALTHY' ? 'unhealthy' : 'failed',
      lastError: e.message,
      ...(img ? { image: { ref: img.ref, id: img.id, sourceHash: img.sourceHash, builtAt: isoNow(deps.clock) } } : {}),
    })
    .catch(() => undefined);
}

/**
 * Converge agents to running: desired state (the image of each agent's current source), one
 * observed snapshot, one plan, one execution, then each agent's outcome. Never throws for an
 * agent's failure (it becomes its outcome); returns the router's error separately.
 */
export async function convergeRunning(deps: FleetDeps, targets: AgentRecord[], base: BaseImage, opts: ConvergeOptions = {}): Promise<{ agents: StartOutcome[]; run: RunResult }> {
  const emit = emitterOf(deps);
  const failures = new Map<string, AppError>();
  const limit = pLimit(deps.config.start.concurrency);
  const desired: DesiredAgent[] = [];
  await Promise.all(
    targets.map((record) =>
      limit(async () => {
        try {
          desired.push({ record, state: 'running', image: await desiredImage(deps, record, base), replicas: opts.replicas });
        } catch (err) {
          failures.set(record.slug, asAppError(err));
        }
      }),
    ),
  );
  const observed = await observe(deps, { images: desired.map((d) => d.image!.ref), names: desired.map((d) => d.record.slug), router: (opts.router ?? 'any') !== 'any' });
  const p = plan({ config: deps.config, agents: desired, router: opts.router ?? 'any', routerPort: opts.routerPort }, observed);
  const images = new Map(desired.flatMap((d) => {
    const seen = observed.images[d.image!.ref];
    return seen ? [[d.record.slug, { ref: seen.ref, id: seen.id, sourceHash: seen.sourceHash ?? '', built: false, ...(seen.memoryMiB ? { memoryMiB: seen.memoryMiB } : {}) }] as const] : [];
  }));
  const run = await execute(deps, p, { records: new Map(targets.map((r) => [r.slug, r])), observed, base, images });
  const agents = await Promise.all(
    targets.map(async (rec): Promise<StartOutcome> => {
      const r = run.agents.get(rec.slug);
      const url = agentUrl(deps.config, rec.port);
      const out: StartOutcome = { name: rec.name, slug: rec.slug, port: rec.port, url, outcome: outcomeOf(r), imageBuilt: !!r?.image?.built };
      if (r?.containerId) out.containerId = r.containerId;
      const err = failures.get(rec.slug) ?? r?.error;
      if (err) await failAgent(deps, rec, out, err, r);
      emit({ kind: 'agent', agent: rec.slug, phase: 'outcome', outcome: out.outcome, ...(out.error ? { error: { code: out.error.code, message: out.error.message } } : { message: url }) });
      return out;
    }),
  );
  return { agents, run };
}

function removingOutcome(deps: FleetDeps, rec: AgentRecord): StartOutcome {
  const { code, message, hint } = beingRemoved(rec.name);
  return { name: rec.name, slug: rec.slug, port: rec.port, url: agentUrl(deps.config, rec.port), outcome: 'failed', imageBuilt: false, error: { code, message, hint: hint! } };
}

/**
 * Start agents (names, or 'all' for start-all): ensure the base image, build what changed, create
 * and start containers in parallel (at most start.concurrency engine actions at once), wait for
 * health, record state, and report each agent's outcome. Idempotent: running healthy agents are
 * left alone. Registered agents' listings follow: healthy ones are marked available, failed ones
 * unavailable (`listings`; stale ones are retried later, see fleet/marketplace.ts syncListings).
 * @throws AppError ENGINE_UNREACHABLE, BASE_IMAGE_FAILED, AGENT_NOT_FOUND, NAME_INVALID (per-agent failures are outcomes)
 */
export async function startAgents(deps: FleetDeps, names: string[] | 'all'): Promise<StartResult> {
  return (await startWith(deps, names)).result;
}

/** startAgents with replicas and router options; also returns the execution (scale uses it). */
export async function startWith(deps: FleetDeps, names: string[] | 'all', opts: ConvergeOptions = {}): Promise<{ result: StartResult; run?: RunResult }> {
  await deps.engine.ping();
  const all = await resolveTargets(deps, names);
  // an agent being removed is never started again; named, it is an error
  const removing = names === 'all' ? [] : all.filter(isBeingRemoved).map((rec) => removingOutcome(deps, rec));
  const targets = all.filter((rec) => !isBeingRemoved(rec));
  if (targets.length === 0) {
    const agents = removing;
    return { result: { agents, ok: 0, failed: agents.length, ...(await syncListingsIfRegistered(deps, [])) } };
  }
  const base = await ensureBaseImage(deps);
  const { agents: started, run } = await convergeRunning(deps, targets, base, opts);
  const agents = [...removing, ...started];
  const failed = agents.filter((a) => a.outcome === 'failed').length;
  const listings = await syncListingsIfRegistered(deps, started.map((a) => ({ slug: a.slug, change: a.outcome === 'failed' ? 'unavailable' : 'available' })));
  return { result: { agents, ok: agents.length - failed, failed, ...listings }, run };
}
