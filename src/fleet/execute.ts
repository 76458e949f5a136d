import pLimit from 'p-limit';
import { isoNow } from '../clock.js';
import { agentUrl, dialUrl, routerPath, workspaceLabels } from '../conventions.js';
import { AppError, messageOf } from '../errors.js';
import type { AgentRecord, ToolSummary } from '../registry/registry.js';
import { prepareTokenMount } from './agent-tokens.js';
import { agentContainerSpec, replicaContainerSpec } from './containers.js';
import { emitterOf, type FleetDeps } from './context.js';
import { httpProbe, waitHealthy } from './health.js';
import { ensureAgentImage, type BaseImage } from './images.js';
import type { Action, Plan } from './plan.js';
import { localNetworkName, localRouterDir, routerContainerSpec } from './router.js';
import type { ObservedState } from './state.js';

/** What running a plan did to one agent. */
export interface AgentRun {
  slug: string;
  /** The first action that failed, with its error; the agent's later actions did not run. */
  error?: AppError | undefined;
  failedAction?: Action['kind'] | undefined;
  /** Container ids this run created (to clean up after a failure). */
  created: string[];
  /** The primary container the agent runs in after the run. */
  containerId?: string | undefined;
  /** The image the agent runs (built by this run, or the observed one). */
  image?: { ref: string; id: string; sourceHash: string; built: boolean } | undefined;
  /** Actions that completed, in order. */
  done: Action['kind'][];
  tools?: ToolSummary[] | undefined;
}

/** Everything a plan's actions refer to, gathered by the use case that planned it. */
export interface RunContext {
  records: Map<string, AgentRecord>;
  observed: ObservedState;
  /** For build-image actions. */
  base?: BaseImage | undefined;
  /** The image each agent runs when the plan builds none (the observed one, by slug). */
  images?: Map<string, NonNullable<AgentRun['image']>> | undefined;
}

export interface RunResult {
  agents: Map<string, AgentRun>;
  /** The router action's error, if it failed. */
  routerError?: AppError | undefined;
}

const asAppError = (err: unknown) => (err instanceof AppError ? err : new AppError('INTERNAL', messageOf(err), { cause: err }));
const ENGINE_BOUND = new Set<Action['kind']>(['build-image', 'create', 'recreate', 'start', 'stop', 'remove', 'scale']);

/**
 * Run a plan (src/fleet/plan.ts) and make no decisions: each agent's actions run in order, agents
 * in parallel with at most config.start.concurrency engine actions at once (health waits and
 * record writes do not hold a slot, so a slow-booting agent never delays the next container); the
 * router's actions run last. An agent's first failing action ends that agent's run (its error is
 * in the result; nothing is cleaned up here). Emits a FleetEvent at each action's begin and end.
 */
export async function execute(deps: FleetDeps, p: Plan, ctx: RunContext): Promise<RunResult> {
  const emit = emitterOf(deps);
  const limit = pLimit(deps.config.start.concurrency);
  const groups = new Map<string, Action[]>();
  const routerActions: Action[] = [];
  for (const a of p.actions) {
    if (a.kind === 'start-router' || a.kind === 'reload-router' || a.kind === 'remove-router') routerActions.push(a);
    else groups.set(a.agent, [...(groups.get(a.agent) ?? []), a]);
  }
  const agents = new Map<string, AgentRun>();
  await Promise.all(
    [...groups].map(async ([slug, actions]) => {
      const run: AgentRun = { slug, created: [], done: [], image: ctx.images?.get(slug) };
      agents.set(slug, run);
      for (const a of actions) {
        const replica = 'replica' in a ? a.replica : undefined;
        emit({ kind: 'action', agent: slug, ...(replica !== undefined ? { replica } : {}), action: a.kind, phase: 'begin' });
        try {
          const step = () => runAgentAction(deps, a as AgentAction, ctx, run);
          await (ENGINE_BOUND.has(a.kind) ? limit(step) : step());
          run.done.push(a.kind);
          emit({ kind: 'action', agent: slug, ...(replica !== undefined ? { replica } : {}), action: a.kind, phase: 'end', outcome: 'ok' });
        } catch (err) {
          run.error = asAppError(err);
          run.failedAction = a.kind;
          emit({ kind: 'action', agent: slug, action: a.kind, phase: 'end', outcome: 'failed', error: { code: run.error.code, message: run.error.message } });
          break;
        }
      }
    }),
  );
  const result: RunResult = { agents };
  for (const a of routerActions) {
    emit({ kind: 'action', action: a.kind, phase: 'begin' });
    try {
      await runRouterAction(deps, a as RouterAction);
      emit({ kind: 'action', action: a.kind, phase: 'end', outcome: 'ok' });
    } catch (err) {
      result.routerError = asAppError(err);
      emit({ kind: 'action', action: a.kind, phase: 'end', outcome: 'failed', error: { code: result.routerError.code, message: result.routerError.message } });
      break;
    }
  }
  return result;
}

type RouterAction = Extract<Action, { kind: 'start-router' | 'reload-router' | 'remove-router' }>;
type AgentAction = Exclude<Action, RouterAction>;

function recordOf(ctx: RunContext, slug: string): AgentRecord {
  const rec = ctx.records.get(slug);
  if (!rec) throw new AppError('INTERNAL', `plan names agent '${slug}' without its record`);
  return rec;
}

/** The image an agent runs: the one this run built, else the one the plan names. */
function imageOf(run: AgentRun, planned: { ref: string; id: string } | undefined): { ref: string; id: string } {
  const img = run.image ?? planned;
  if (!img) throw new AppError('INTERNAL', `no image known for agent '${run.slug}'`);
  return img;
}

async function createAndStart(deps: FleetDeps, run: AgentRun, spec: Parameters<FleetDeps['engine']['createContainer']>[0]): Promise<string> {
  if (spec.secretFiles?.length) {
    const ready = await Promise.all(spec.secretFiles.map((f) => prepareTokenMount(f.source)));
    if (ready.includes(false)) {
      // the record has a token hash but this machine has no clear copy (another host's registry):
      // start without the link rather than fail; `token rotate-agent` writes a new copy
      spec = { ...spec, env: { ...spec.env }, secretFiles: undefined, extraHosts: undefined };
      delete spec.env.NEXUS_MANAGER_URL;
      delete spec.env.NEXUS_AGENT_TOKEN_FILE;
      delete spec.env.NEXUS_AGENT_ID;
      emitterOf(deps)({ kind: 'note', agent: run.slug, phase: 'notice', message: `no connection token file for ${run.slug} on this machine: it starts without dialling the manager (run \`agent token rotate-agent --name ${run.slug}\`)` });
    }
  }
  const id = await deps.engine.createContainer(spec);
  run.created.push(id);
  await deps.engine.startContainer(id);
  return id;
}

async function runAgentAction(deps: FleetDeps, a: AgentAction, ctx: RunContext, run: AgentRun): Promise<void> {
  const { engine, config } = deps;
  switch (a.kind) {
    case 'blocked':
      throw new AppError(a.code, a.message, { hint: a.hint });
    case 'build-image': {
      if (!ctx.base) throw new AppError('INTERNAL', 'build-image without a base image');
      run.image = await ensureAgentImage(deps, recordOf(ctx, a.agent), ctx.base);
      return;
    }
    case 'recreate':
      for (const id of a.remove) await engine.removeContainer(id);
    // falls through: a recreate is a create after the removal
    case 'create': {
      const rec = recordOf(ctx, a.agent);
      run.containerId = await createAndStart(deps, run, a.spec ?? agentContainerSpec(config, rec, imageOf(run, undefined)));
      return;
    }
    case 'start':
      await engine.startContainer(a.id);
      run.containerId = a.id;
      return;
    case 'keep':
      run.containerId = a.id;
      return;
    case 'stop':
      await engine.stopContainer(a.id, a.timeoutS);
      return;
    case 'remove':
      await engine.removeContainer(a.id);
      return;
    case 'wait-healthy': {
      const rec = recordOf(ctx, a.agent);
      if (!run.containerId) throw new AppError('INTERNAL', `wait-healthy for '${rec.slug}' without a container`);
      const url = agentUrl(config, rec.port);
      await waitHealthy(deps, rec, url, run.containerId);
      run.tools = await (deps.probe ?? httpProbe).tools(url);
      return;
    }
    case 'update-record': {
      if (a.state === 'stopped') {
        await deps.registry.update(a.agent, { desired: 'stopped', status: 'stopped' });
        return;
      }
      const img = run.image;
      // one registry write per agent: image, state and tools together
      await deps.registry.update(a.agent, {
        desired: 'running',
        status: 'running',
        lastError: undefined,
        ...(img ? { image: { ref: img.ref, id: img.id, sourceHash: img.sourceHash, builtAt: isoNow(deps.clock) } } : {}),
        ...(run.tools ? { tools: run.tools } : {}),
      });
      return;
    }
    case 'scale': {
      const rec = recordOf(ctx, a.agent);
      const net = localNetworkName(config.workspace);
      await engine.ensureNetwork(net, { ...config.labels, ...workspaceLabels(config) });
      if (!run.containerId) throw new AppError('INTERNAL', `scale of '${rec.slug}' without its primary container`);
      await engine.connectNetwork(net, run.containerId, [rec.slug]);
      const img = imageOf(run, a.image);
      const routedUrl = `${dialUrl(config.ports.bindAddress, a.routerPort)}${routerPath(rec.slug)}`;
      for (const n of a.add) await createAndStart(deps, run, replicaContainerSpec(config, rec, img, n, net, routedUrl));
      return;
    }
  }
}

async function runRouterAction(deps: FleetDeps, a: RouterAction): Promise<void> {
  const { engine, config } = deps;
  if (a.kind === 'remove-router') {
    if (a.id) await engine.removeContainer(a.id);
    await engine.removeNetwork(localNetworkName(config.workspace));
    return;
  }
  const { reloadLocalRouter, waitRouterGeneration, writeLocalRoutes } = await import('./router-sync.js');
  if (a.kind === 'reload-router') {
    await reloadLocalRouter(deps, a.routerPort);
    return;
  }
  const w = await writeLocalRoutes(deps, a.routerPort);
  if (a.remove) await engine.removeContainer(a.remove);
  const image = (await engine.ensureOfflineRouterImage()).tags[0]!;
  const id = await engine.createContainer(routerContainerSpec(config, image, a.routerPort, localRouterDir(config.workspace)));
  await engine.startContainer(id);
  await waitRouterGeneration(deps, a.routerPort, w.generation);
}
