import type { ContainerDetails, ContainerInfo, ImageInfo } from '../engine/engine.js';
import { LABEL, imageMemoryMiB, replicaIndex, workspaceLabels } from '../conventions.js';
import { containerName } from '../names.js';
import type { AgentRecord } from '../registry/registry.js';
import type { FleetDeps } from './context.js';
import { localNetworkName, localRouterName } from './router.js';

/** A container of the workspace, found by its labels. */
export interface ObservedContainer {
  id: string;
  name: string;
  /** Agent slug (label), or undefined for the router. */
  agent?: string | undefined;
  /** Replica index (0 = primary, the one with the host port). */
  replica: number;
  /** Config-hash label: the hash of the spec it was created from. */
  configHash?: string | undefined;
  /** Image reference and id it runs. */
  image: string;
  imageId: string;
  state: ContainerInfo['state'];
  /** Docker's health, when the snapshot inspected it; else unknown. */
  health?: ContainerDetails['health'] | undefined;
}

/** An image of the workspace (agent images), with the source hash it was built from. */
export interface ObservedImage {
  ref: string;
  id: string;
  sourceHash?: string | undefined;
  /** The agent's own memory limit (MiB) from the image's label, when agent.json sets one. */
  memoryMiB?: number | undefined;
}

/**
 * One snapshot of what exists for a workspace (docker/compose's observed state): the registry's
 * records, the containers and agent images carrying the workspace's labels, the local router and
 * network, and containers outside the workspace that hold a name the workspace wants.
 */
export interface ObservedState {
  records: AgentRecord[];
  containers: ObservedContainer[];
  /** Agent images by reference. */
  images: Record<string, ObservedImage>;
  router?: ObservedContainer | undefined;
  /** The workspace network's name (replicas and the router share it); the engine's ensure/remove of it are idempotent, so it is named, not inspected. */
  network?: string | undefined;
  /** Container names held by containers without this workspace's labels (name -> container id). */
  foreignNames: Record<string, string>;
}

/** A container as the snapshot keeps it. */
export function observedContainer(c: ContainerInfo): ObservedContainer {
  return {
    id: c.id,
    name: c.name,
    agent: c.labels[LABEL.agent],
    replica: replicaIndex(c.labels),
    configHash: c.labels[LABEL.configHash],
    image: c.image,
    imageId: c.imageId,
    state: c.state,
  };
}

export interface ObserveOptions {
  /** Agent image references to look up (inspect by reference, one call each). */
  images?: string[];
  /** Agents whose primary container name is checked for a foreign holder when absent. */
  names?: string[];
  /** Also look at the local router container (one inspect). */
  router?: boolean;
}

/**
 * Snapshot a workspace: one registry list, one container list by workspace labels, and only the
 * inspects asked for (images by reference, names of absent primaries, the router). Never changes
 * anything. @throws AppError ENGINE_UNREACHABLE / ENGINE_ERROR, registry errors.
 */
export async function observe(deps: FleetDeps, opts: ObserveOptions = {}): Promise<ObservedState> {
  const { engine, config } = deps;
  const [records, list] = await Promise.all([deps.registry.list(), engine.listContainers(workspaceLabels(config))]);
  const containers = list.filter((c) => c.labels[LABEL.kind] !== 'router').map(observedContainer);
  const images: Record<string, ObservedImage> = {};
  await Promise.all(
    (opts.images ?? []).map(async (ref) => {
      const img: ImageInfo | undefined = await engine.inspectImage(ref);
      if (img) images[ref] = { ref, id: img.id, sourceHash: img.labels[LABEL.sourceHash], memoryMiB: imageMemoryMiB(img.labels) };
    }),
  );
  const foreignNames: Record<string, string> = {};
  const ours = new Set(list.map((c) => c.id));
  await Promise.all(
    (opts.names ?? []).map(async (slug) => {
      const name = containerName(slug, 0, config.project);
      if (containers.some((c) => c.agent === slug && c.replica === 0)) return;
      const c = await engine.inspectContainer(name);
      if (c && !ours.has(c.id)) foreignNames[name] = c.id;
    }),
  );
  const state: ObservedState = { records, containers, images, foreignNames };
  if (opts.router) {
    const r = await engine.inspectContainer(localRouterName(config.workspace));
    if (r) state.router = { ...observedContainer(r), health: r.health };
    state.network = localNetworkName(config.workspace);
  }
  return state;
}

export { localNetworkName, localRouterName };
