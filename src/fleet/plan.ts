import type { Config } from '../config/config.js';
import type { ContainerSpec } from '../engine/engine.js';
import { LABEL, ROUTER_PORT, STOP_GRACE_S } from '../conventions.js';
import { containerName } from '../names.js';
import type { AgentRecord } from '../registry/registry.js';
import { agentContainerSpec, planContainer } from './containers.js';
import type { ObservedContainer, ObservedState } from './state.js';

/** What one agent should be: running (from an image of its current source, with N replicas) or stopped. */
export interface DesiredAgent {
  record: AgentRecord;
  state: 'running' | 'stopped';
  /** Running: the agent image reference and the hash of its current source (bundle + manifest + base id). */
  image?: { ref: string; sourceHash: string } | undefined;
  /** Running: converge to this many containers (primary + replicas); undefined leaves replicas alone. */
  replicas?: number | undefined;
}

/** What the workspace should be, for the agents a command is about. */
export interface DesiredState {
  config: Config;
  agents: DesiredAgent[];
  /** The local router: running (start or reload it), absent (remove it and the network), any (leave it). */
  router: 'running' | 'absent' | 'any';
  /** Host port of the local router (when running). */
  routerPort?: number | undefined;
  /** Remove running containers of agents without a record (default: leave them, list them in `orphans`). */
  pruneOrphans?: boolean | undefined;
  /** Grace period before SIGKILL of stopped containers, seconds. */
  stopTimeoutS?: number | undefined;
}

/** One step of a plan. `agent` is a slug; container ids are the engine's. */
export type Action =
  | { kind: 'build-image'; agent: string }
  /** `spec` absent: derive it from the image this plan builds (the config hash includes the image id). */
  | { kind: 'create'; agent: string; replica: 0; spec?: ContainerSpec | undefined }
  | { kind: 'recreate'; agent: string; replica: 0; remove: string[]; spec?: ContainerSpec | undefined }
  | { kind: 'start'; agent: string; replica: number; id: string }
  | { kind: 'keep'; agent: string; replica: number; id: string }
  | { kind: 'stop'; agent: string; replica: number; id: string; timeoutS: number }
  | { kind: 'remove'; agent: string; replica: number; id: string }
  /** Put the primary on the workspace network (alias: the slug) and create replicas `add` (no host port). */
  | { kind: 'scale'; agent: string; replicas: number; add: number[]; routerPort: number; image?: { ref: string; id: string } | undefined }
  | { kind: 'wait-healthy'; agent: string }
  | { kind: 'update-record'; agent: string; state: 'running' | 'stopped' }
  | { kind: 'start-router'; routerPort: number; remove?: string | undefined }
  | { kind: 'reload-router'; routerPort: number; id: string }
  | { kind: 'remove-router'; id?: string | undefined }
  /** The desired state cannot be reached without touching something that is not ours. */
  | { kind: 'blocked'; agent: string; code: 'NAME_TAKEN'; message: string; hint: string };

/** An ordered plan: the actions of each agent in order, then the router's. */
export interface Plan {
  actions: Action[];
  /** Names of workspace containers whose agent has no record (left alone unless pruned). */
  orphans: string[];
}

const isUp = (c: ObservedContainer) => c.state === 'running' || c.state === 'restarting';

function planRunning(d: DesiredAgent, desired: DesiredState, observed: ObservedState, mine: ObservedContainer[]): Action[] {
  const { config } = desired;
  const slug = d.record.slug;
  const out: Action[] = [];
  const img = d.image ? observed.images[d.image.ref] : undefined;
  const build = !!d.image && (!img || img.sourceHash !== d.image.sourceHash);
  if (build) out.push({ kind: 'build-image', agent: slug });
  const primaries = mine.filter((c) => c.replica === 0);
  const spec = !build && img ? agentContainerSpec(config, d.record, img) : undefined;
  // a new image changes the config hash by definition (it includes the image id)
  const hash = spec?.labels[LABEL.configHash] ?? '';
  const p = planContainer(hash, primaries.map((c) => ({ id: c.id, name: c.name, image: c.image, imageId: c.imageId, state: c.state, status: '', labels: { [LABEL.configHash]: c.configHash ?? '' } })));
  if (p.action !== 'recreate') for (const id of p.remove) out.push({ kind: 'remove', agent: slug, replica: 0, id });
  const name = containerName(slug, 0, config.project);
  const foreign = observed.foreignNames[name];
  if (p.action === 'create' && foreign) {
    out.push({
      kind: 'blocked',
      agent: slug,
      code: 'NAME_TAKEN',
      message: `container name ${name} is already used by a container outside this workspace`,
      hint: `remove it (docker rm -f ${name}) or set a project name in nexus.yaml (project: myproj) to namespace this workspace`,
    });
    return out;
  }
  if (p.action === 'create') out.push({ kind: 'create', agent: slug, replica: 0, spec });
  else if (p.action === 'recreate') out.push({ kind: 'recreate', agent: slug, replica: 0, remove: p.remove, spec });
  else out.push({ kind: p.action, agent: slug, replica: 0, id: p.id });
  out.push({ kind: 'wait-healthy', agent: slug }, { kind: 'update-record', agent: slug, state: 'running' });
  if (d.replicas !== undefined) {
    const n = d.replicas;
    for (const c of mine.filter((c) => c.replica >= n)) out.push({ kind: 'remove', agent: slug, replica: c.replica, id: c.id });
    const have = new Set(mine.filter((c) => c.replica > 0 && c.replica < n).map((c) => c.replica));
    const add: number[] = [];
    for (let i = 1; i < n; i++) if (!have.has(i)) add.push(i);
    out.push({ kind: 'scale', agent: slug, replicas: n, add, routerPort: desired.routerPort ?? ROUTER_PORT, image: build ? undefined : img });
  }
  return out;
}

function planStopped(d: DesiredAgent, timeoutS: number, mine: ObservedContainer[]): Action[] {
  const slug = d.record.slug;
  return [
    ...mine.flatMap((c): Action[] => [
      { kind: 'stop', agent: slug, replica: c.replica, id: c.id, timeoutS },
      { kind: 'remove', agent: slug, replica: c.replica, id: c.id },
    ]),
    { kind: 'update-record', agent: slug, state: 'stopped' },
  ];
}

/**
 * Desired x observed -> an ordered plan (pure; docker/compose's reconcile). Per agent:
 * - running: build the image when it is missing or its source hash differs; then the primary
 *   container: none -> create (blocked when a container outside the workspace holds its name),
 *   config hash differs (or a new image) -> recreate, same hash and stopped -> start, running ->
 *   keep; extra primaries are removed; then wait for health and record the state; with
 *   `replicas`, replicas numbered >= N are removed and the missing 1..N-1 added (`scale`).
 * - stopped: stop (SIGTERM, then SIGKILL after stopTimeoutS) and remove each container, record it.
 * Then the router (running: reload if it runs, else start; absent: remove it and the network) and
 * orphans (containers of agents without a record: removed with pruneOrphans, else reported).
 */
export function plan(desired: DesiredState, observed: ObservedState): Plan {
  const actions: Action[] = [];
  const timeoutS = desired.stopTimeoutS ?? STOP_GRACE_S;
  for (const d of desired.agents) {
    const mine = observed.containers.filter((c) => c.agent === d.record.slug);
    actions.push(...(d.state === 'running' ? planRunning(d, desired, observed, mine) : planStopped(d, timeoutS, mine)));
  }
  const known = new Set(observed.records.map((r) => r.slug));
  const orphaned = observed.containers.filter((c) => !known.has(c.agent ?? ''));
  if (desired.pruneOrphans) {
    for (const c of orphaned) {
      if (isUp(c)) actions.push({ kind: 'stop', agent: c.agent ?? '', replica: c.replica, id: c.id, timeoutS });
      actions.push({ kind: 'remove', agent: c.agent ?? '', replica: c.replica, id: c.id });
    }
  }
  if (desired.router === 'running') {
    const r = observed.router;
    const routerPort = desired.routerPort ?? ROUTER_PORT;
    if (r && r.state === 'running') actions.push({ kind: 'reload-router', routerPort, id: r.id });
    else actions.push({ kind: 'start-router', routerPort, remove: r?.id });
  } else if (desired.router === 'absent') {
    actions.push({ kind: 'remove-router', id: observed.router?.id });
  }
  return { actions, orphans: desired.pruneOrphans ? [] : orphaned.map((c) => c.name) };
}
