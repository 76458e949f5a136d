import { systemClock } from '../clock.js';
import { isoNow } from '../clock.js';
import { AGENT_HEALTHCHECK, LABEL, ROUTER_PORT, STOP_GRACE_S, VERSION_HISTORY, agentUrl, dialUrl, routerPath, workspaceLabels } from '../conventions.js';
import type { ContainerInfo, ContainerSpec } from '../engine/engine.js';
import { AppError } from '../errors.js';
import { agentImageRef, containerName, validateAgentVersion } from '../names.js';
import { agentDir } from '../paths.js';
import type { AgentRecord, DeployedVersion } from '../registry/registry.js';
import { readManifest } from '../scaffold/render.js';
import { agentContainerSpec, replicaContainerSpec } from './containers.js';
import { emitterOf, type FleetDeps } from './context.js';
import { waitHealthy, waitUntil } from './health.js';
import { ensureAgentImage, ensureBaseImage } from './images.js';
import { localNetworkName, localRouterName } from './router.js';
import { acquireRolloutLock } from './rollout-lock.js';
import { syncLocalRouter } from './router-sync.js';
import { resolveTargets } from './targets.js';

/** What a rollout or rollback did. */
export interface RolloutResult {
  name: string;
  /** Version before and after. */
  from: string;
  to: string;
  /** Rollout generation of the containers now serving. */
  generation: number;
  image: { ref: string; id: string };
  /** Containers now serving, by name. */
  containers: string[];
  /** Containers drained and removed. */
  drained: string[];
  url: string;
}

export interface RolloutOptions {
  /** Version to record (default: the manifest's, else the record's). */
  version?: string | undefined;
  routerPort?: number | undefined;
  /** Deadline for every new replica to pass its health check, ms (default config.start.healthTimeoutS). */
  healthTimeoutMs?: number | undefined;
  /** Seconds between SIGTERM and SIGKILL when draining old replicas (default STOP_GRACE_S). */
  stopTimeoutS?: number | undefined;
}

/** Docker tag of a kept version: `v<version>-<source hash, 12 hex>` (`+` is not allowed in tags). */
export function versionTag(version: string, sourceHash: string): string {
  return `v${version.replace(/\+/g, '_')}-${sourceHash.slice(0, 12)}`;
}

/** A container's rollout generation (0 before any rollout). */
const generationOf = (c: ContainerInfo) => Number(c.labels[LABEL.generation] ?? '0') || 0;

/** The container names of generation `g`: the primary keeps its name; replicas `nexus-agent-<slug>-g<g>-<n>`. */
function generationName(slug: string, g: number, n: number, project?: string): string {
  return `${containerName(slug, 0, project)}-g${g}-${n}`;
}

/** Labels of generation `g` added after the config hash was taken, so `start` keeps these containers. */
function stamp(spec: ContainerSpec, version: string, g: number, n: number, name: string): ContainerSpec {
  spec.name = name;
  spec.labels[LABEL.version] = version;
  spec.labels[LABEL.generation] = String(g);
  spec.labels[LABEL.replica] = String(n);
  return spec;
}

/**
 * Wait until the container passes the agents' own health check, run inside it (`docker exec`
 * of the HEALTHCHECK command: replicas have no host port). Polls every 250-1000 ms.
 * @throws AppError ROLLOUT_UNHEALTHY when it exits or the deadline passes, with its last log lines.
 */
async function waitReplicaHealthy(deps: FleetDeps, id: string, name: string, timeoutMs: number): Promise<void> {
  const clock = deps.clock ?? systemClock;
  let last = 'no check ran';
  const ok = await waitUntil(
    async () => {
      const c = await deps.engine.inspectContainer(id);
      if (!c || c.state !== 'running') throw new AppError('ROLLOUT_UNHEALTHY', `new replica ${name} stopped (${c ? `exit code ${c.exitCode}` : 'removed'})`);
      // it may exit between the inspect and the exec: the engine then refuses (409), and the next look sees it stopped
      const r = await deps.engine.execContainer(id, [...AGENT_HEALTHCHECK.test], AGENT_HEALTHCHECK.timeoutS * 1000).catch((err: unknown) => ({ exitCode: -1, output: (err as Error).message }));
      if (r.exitCode === 0) return true;
      last = r.output.trim().split('\n').pop() || `exit code ${r.exitCode}`;
      return undefined;
    },
    { timeoutMs, intervalMs: 250, backoff: 1.5, maxIntervalMs: 1000, clock },
  ).catch(async (err: unknown) => {
    throw await withLogs(deps, id, err as AppError);
  });
  if (!ok) throw await withLogs(deps, id, new AppError('ROLLOUT_UNHEALTHY', `new replica ${name} failed its health check for ${Math.round(timeoutMs / 1000)} s: ${last}`));
}

async function withLogs(deps: FleetDeps, id: string, err: AppError): Promise<AppError> {
  if (!(err instanceof AppError)) return new AppError('INTERNAL', String(err), { cause: err });
  const logs = await deps.engine.containerLogs(id, 20).catch(() => '');
  return new AppError(err.code, err.message, { hint: 'the old version keeps serving; fix the agent and roll out again (logs in details)', details: { logs }, cause: err });
}

/** Stop with SIGTERM (in-flight requests finish; the agent answers 503 while closing) and remove. */
async function drain(deps: FleetDeps, slug: string, cs: { id: string; replica: number }[], timeoutS: number): Promise<void> {
  const emit = emitterOf(deps);
  await Promise.all(
    cs.map(async (c) => {
      emit({ kind: 'action', agent: slug, replica: c.replica, action: 'stop', phase: 'begin' });
      await deps.engine.stopContainer(c.id, timeoutS);
      await deps.engine.removeContainer(c.id);
      emit({ kind: 'action', agent: slug, replica: c.replica, action: 'remove', phase: 'end', outcome: 'ok' });
    }),
  );
}

/** The record's version history, seeded with what runs now when it has none (so the first rollout can be rolled back). */
async function history(deps: FleetDeps, rec: AgentRecord): Promise<DeployedVersion[]> {
  if (rec.versions?.length) return [...rec.versions];
  if (!rec.image) return [];
  const ref = agentImageRef(rec.slug, versionTag(rec.version, rec.image.sourceHash), deps.config.project);
  // keep the running image under its version tag: image cleanup (ensureAgentImage) then cannot delete it
  await deps.engine.tagImage(rec.image.id, ref).catch(() => undefined);
  return [{ version: rec.version, image: { ref, id: rec.image.id }, sourceHash: rec.image.sourceHash, deployedAt: rec.image.builtAt }];
}

/**
 * Replace the running replicas of an agent with replicas of `target` without dropping a request
 * routed through the local router (blue/green with a surge, like a Kubernetes rolling update
 * with maxUnavailable 0):
 * 1. start as many replicas of the new image as run now, beside the old ones (generation g+1,
 *    labelled with version and generation, on the workspace network, no host port);
 * 2. wait until each passes the agents' health check (docker exec of the HEALTHCHECK command),
 *    within `healthTimeoutMs`; a failure removes the new replicas, leaves the old ones untouched
 *    and throws ROLLOUT_UNHEALTHY (the rollback is automatic);
 * 3. shift traffic: regenerate the router with only the new replicas and reload it, waiting until
 *    it serves the new file (the gateway picks new replicas once their health checks pass);
 * 4. drain the old replicas (SIGTERM, grace `stopTimeoutS`, then removed);
 * 5. move the host port: a new primary (the agent's host port) starts, joins the rotation, and
 *    the surplus new replica is drained, so the agent ends with its primary + N-1 replicas.
 * Every step emits FleetEvents.
 */
async function replaceReplicas(deps: FleetDeps, rec: AgentRecord, target: { version: string; image: { ref: string; id: string } }, o: RolloutOptions): Promise<Omit<RolloutResult, 'from' | 'to' | 'name'>> {
  const { engine, config } = deps;
  const emit = emitterOf(deps);
  const slug = rec.slug;
  const routerPort = o.routerPort ?? ROUTER_PORT;
  const timeoutS = o.stopTimeoutS ?? STOP_GRACE_S;
  const healthTimeoutMs = o.healthTimeoutMs ?? config.start.healthTimeoutS * 1000;
  const old = (await engine.listContainers({ ...workspaceLabels(config), [LABEL.agent]: slug })).filter((c) => c.state === 'running');
  if (old.length === 0) {
    throw new AppError('NOT_HEALTHY', `agent '${rec.name}' has no running replica to roll out from`, { hint: `start it first: agent start --name ${rec.name}` });
  }
  const n = old.length;
  const g = Math.max(...old.map(generationOf)) + 1;
  const net = localNetworkName(config.workspace);
  await engine.ensureNetwork(net, { ...config.labels, ...workspaceLabels(config) });
  // old replicas must be reachable on the network the router uses (an agent never scaled is not yet)
  for (const c of old) await engine.connectNetwork(net, c.id, [slug]);
  const router = await engine.inspectContainer(localRouterName(config.workspace));
  if (router?.state !== 'running') {
    const { execute } = await import('./execute.js');
    const run = await execute(deps, { actions: [{ kind: 'start-router', routerPort, remove: router?.id }], orphans: [] }, { records: new Map([[slug, rec]]), observed: { records: [rec], containers: [], images: {}, foreignNames: {} } });
    if (run.routerError) throw run.routerError;
  }
  const routedUrl = `${dialUrl(config.ports.bindAddress, routerPort)}${routerPath(slug)}`;
  const created: { id: string; name: string; replica: number }[] = [];
  const removeCreated = async () => {
    for (const c of created) await engine.removeContainer(c.id).catch(() => undefined);
  };
  try {
    for (let i = 1; i <= n; i++) {
      const name = generationName(slug, g, i, config.project);
      const spec = stamp(replicaContainerSpec(config, rec, target.image, i, net, routedUrl), target.version, g, i, name);
      emit({ kind: 'action', agent: slug, replica: i, action: 'create', phase: 'begin', message: `${name} (${target.version})` });
      const id = await engine.createContainer(spec);
      created.push({ id, name, replica: i });
      await engine.startContainer(id);
      emit({ kind: 'action', agent: slug, replica: i, action: 'create', phase: 'end', outcome: 'ok' });
    }
    await Promise.all(
      created.map(async (c) => {
        emit({ kind: 'action', agent: slug, replica: c.replica, action: 'wait-healthy', phase: 'begin' });
        await waitReplicaHealthy(deps, c.id, c.name, healthTimeoutMs);
        emit({ kind: 'action', agent: slug, replica: c.replica, action: 'wait-healthy', phase: 'end', outcome: 'ok' });
      }),
    );
  } catch (err) {
    const e = err instanceof AppError ? err : new AppError('INTERNAL', String(err), { cause: err });
    emit({ kind: 'agent', agent: slug, phase: 'rollback', outcome: 'rolled-back', error: { code: e.code, message: e.message }, message: `version ${target.version} removed; the old replicas keep serving` });
    await removeCreated();
    throw e;
  }
  // traffic: only the new replicas from here on
  const oldIds = new Set(old.map((c) => c.id));
  await syncLocalRouter(deps, routerPort, oldIds);
  await drain(deps, slug, old.map((c) => ({ id: c.id, replica: Number(c.labels[LABEL.replica] ?? '0') })), timeoutS);
  // the host port: a new primary, then the surplus replica goes
  const primarySpec = stamp(agentContainerSpec(config, rec, target.image), target.version, g, 0, containerName(slug, 0, config.project));
  primarySpec.network = net;
  primarySpec.networkAliases = [slug];
  emit({ kind: 'action', agent: slug, replica: 0, action: 'create', phase: 'begin', message: `${primarySpec.name} (${target.version})` });
  const primary = await engine.createContainer(primarySpec);
  await engine.startContainer(primary);
  emit({ kind: 'action', agent: slug, replica: 0, action: 'create', phase: 'end', outcome: 'ok' });
  emit({ kind: 'action', agent: slug, replica: 0, action: 'wait-healthy', phase: 'begin' });
  await waitHealthy(deps, rec, agentUrl(config, rec.port), primary);
  emit({ kind: 'action', agent: slug, replica: 0, action: 'wait-healthy', phase: 'end', outcome: 'ok' });
  const surplus = created[created.length - 1]!;
  await syncLocalRouter(deps, routerPort, new Set([surplus.id]));
  await drain(deps, slug, [surplus], timeoutS);
  return {
    generation: g,
    image: target.image,
    containers: [primarySpec.name, ...created.slice(0, -1).map((c) => c.name)].sort(),
    drained: [...old.map((c) => c.name), surplus.name].sort(),
    url: `${routedUrl}/`,
  };
}

/**
 * `agent rollout --name X [--version V]`: build the agent's current source into a new image, kept
 * under its version tag (`nexus-delta-agent-<slug>:v<version>-<hash>`), and replace the running
 * replicas with it without dropping routed requests (see replaceReplicas). Records the version
 * (record.version, record.image, record.versions: at most VERSION_HISTORY, oldest dropped).
 * While it runs, the agent carries a rollout marker (rollout-lock.ts): the supervisor leaves it
 * alone (no restart, restore or autoscaling) and a second rollout or rollback of it is refused.
 * @throws AppError ROLLOUT_IN_PROGRESS, AGENT_NOT_FOUND, USAGE (bad --version), BUILD_FAILED, NOT_HEALTHY (nothing
 *   running), ROLLOUT_UNHEALTHY (the new version failed its checks and was removed; the old one
 *   keeps serving and the record is unchanged), ROUTER_RELOAD_FAILED, ENGINE_* errors.
 */
export async function rolloutAgent(deps: FleetDeps, name: string, o: RolloutOptions = {}): Promise<RolloutResult> {
  const [rec] = await resolveTargets(deps, [name]);
  const release = await acquireRolloutLock(deps.config.workspace, rec!.slug, rec!.name);
  try {
    return await rolloutLocked(deps, rec!, o);
  } finally {
    await release();
  }
}

async function rolloutLocked(deps: FleetDeps, rec: AgentRecord, o: RolloutOptions): Promise<RolloutResult> {
  const manifest = await readManifest(agentDir(deps.config.workspace, rec.slug));
  const version = validateAgentVersion(o.version ?? manifest.version ?? rec.version);
  const versions = await history(deps, rec);
  const base = await ensureBaseImage(deps);
  const built = await ensureAgentImage(deps, rec, base);
  const ref = agentImageRef(rec.slug, versionTag(version, built.sourceHash), deps.config.project);
  await deps.engine.tagImage(built.id, ref);
  emitterOf(deps)({ kind: 'note', agent: rec.slug, phase: 'rollout', message: `rolling out ${version} (${ref}) beside ${rec.version}` });
  const done = await replaceReplicas(deps, rec, { version, image: { ref, id: built.id } }, o);
  const entry: DeployedVersion = { version, image: { ref, id: built.id }, sourceHash: built.sourceHash, deployedAt: isoNow(deps.clock) };
  await deps.registry.update(rec.slug, {
    version,
    desired: 'running',
    status: 'running',
    image: { ref: built.ref, id: built.id, sourceHash: built.sourceHash, builtAt: entry.deployedAt },
    versions: [...versions, entry].slice(-VERSION_HISTORY),
  });
  emitterOf(deps)({ kind: 'agent', agent: rec.slug, phase: 'rollout', outcome: 'rolled-out', message: `${rec.version} -> ${version}` });
  return { name: rec.name, from: rec.version, to: version, ...done };
}

/**
 * `agent rollback --name X`: back to the version deployed before the running one (the one before
 * last in record.versions), from its kept image, with the same zero-drop replacement as a rollout.
 * The rollback is recorded as a new entry, so a second rollback returns to the version left.
 * A later `start` converges to the agent's source again (it rebuilds when the source differs).
 * Holds the agent's rollout marker like rolloutAgent.
 * @throws AppError ROLLOUT_IN_PROGRESS, NO_PREVIOUS_VERSION (no earlier version recorded, or its image is gone),
 *   AGENT_NOT_FOUND, NOT_HEALTHY, ROLLOUT_UNHEALTHY, ROUTER_RELOAD_FAILED, ENGINE_* errors.
 */
export async function rollbackAgent(deps: FleetDeps, name: string, o: Omit<RolloutOptions, 'version'> = {}): Promise<RolloutResult> {
  const [rec] = await resolveTargets(deps, [name]);
  const release = await acquireRolloutLock(deps.config.workspace, rec!.slug, rec!.name);
  try {
    return await rollbackLocked(deps, rec!, o);
  } finally {
    await release();
  }
}

async function rollbackLocked(deps: FleetDeps, rec: AgentRecord, o: Omit<RolloutOptions, 'version'>): Promise<RolloutResult> {
  const versions = rec.versions ?? [];
  const prev = versions[versions.length - 2];
  if (!prev) {
    throw new AppError('NO_PREVIOUS_VERSION', `agent '${rec.name}' has no earlier version to roll back to`, { hint: `versions are recorded by rollouts: agent rollout --name ${rec.name}` });
  }
  const img = await deps.engine.inspectImage(prev.image.ref);
  if (!img) {
    throw new AppError('NO_PREVIOUS_VERSION', `the image of version ${prev.version} of '${rec.name}' (${prev.image.ref}) is gone`, { hint: `roll out from source instead: agent rollout --name ${rec.name}` });
  }
  emitterOf(deps)({ kind: 'note', agent: rec.slug, phase: 'rollback', message: `rolling back ${rec.version} -> ${prev.version} (${prev.image.ref})` });
  const done = await replaceReplicas(deps, rec, { version: prev.version, image: { ref: prev.image.ref, id: img.id } }, o);
  const entry: DeployedVersion = { ...prev, image: { ref: prev.image.ref, id: img.id }, deployedAt: isoNow(deps.clock) };
  await deps.registry.update(rec.slug, {
    version: prev.version,
    desired: 'running',
    status: 'running',
    image: { ref: prev.image.ref, id: img.id, sourceHash: prev.sourceHash, builtAt: entry.deployedAt },
    versions: [...versions, entry].slice(-VERSION_HISTORY),
  });
  emitterOf(deps)({ kind: 'agent', agent: rec.slug, phase: 'rollback', outcome: 'rolled-back', message: `${rec.version} -> ${prev.version}` });
  return { name: rec.name, from: rec.version, to: prev.version, ...done };
}
