/**
 * What the supervisor sees of the workspace at one tick: each agent's record with its containers,
 * each inspected (start and finish times, restart policy) and with the URL it is probed at. URLs
 * and the replica views follow the fleet's rule (src/fleet/replicas.ts replicaViews: the primary on
 * its host port, other replicas on their workspace-network address, port 8080; a replica without
 * an address is not probed).
 */
import { LABEL, workspaceLabels } from '../conventions.js';
import type { ContainerDetails } from '../engine/engine.js';
import type { FleetDeps } from '../fleet/context.js';
import { replicaViews, type ReplicaView } from '../fleet/replicas.js';
import { isBeingRemoved, type AgentRecord } from '../registry/registry.js';
import type { ObservedContainer } from './reconcile.js';

export type { ReplicaView };

/** What the gateway knows of an agent's load. */
export interface AgentLoad {
  /** Calls in flight now. */
  inflight: number;
  /** Replicas it routes to. */
  replicas: number;
}

/** An agent at one tick: its record, and its containers (primary first) with their views (`inRotation` is the tracker's to set). */
export interface Seen {
  rec: AgentRecord;
  containers: { id: string; name: string; replica: number; details: ContainerDetails; url: string | undefined; view: ReplicaView }[];
}

/** ms since the epoch of an engine time (ISO-8601); 0 for never (Docker's year 1) or absent. */
export const parseDate = (s: string | undefined) => {
  const t = s ? Date.parse(s) : NaN;
  return Number.isFinite(t) && t > 0 ? t : 0;
};

/**
 * One registry list, one container list (by the workspace's labels), one inspect per container;
 * agents being removed are left out. By slug. @throws AppError ENGINE_UNREACHABLE, registry errors
 */
export async function observeAgents(deps: FleetDeps): Promise<Map<string, Seen>> {
  const [records, list] = await Promise.all([deps.registry.list(), deps.engine.listContainers(workspaceLabels(deps.config))]);
  const containers = list.filter((c) => c.labels[LABEL.kind] !== 'router');
  const details = new Map((await Promise.all(containers.map((c) => deps.engine.inspectContainer(c.id).catch(() => undefined)))).flatMap((d) => (d ? [[d.id, d] as const] : [])));
  const seen = new Map<string, Seen>();
  for (const rec of records) {
    if (isBeingRemoved(rec)) continue;
    const views = replicaViews(deps.config, rec, containers);
    seen.set(rec.slug, {
      rec,
      containers: views.flatMap((v) => {
        const d = details.get(v.id);
        return d ? [{ id: v.id, name: v.name, replica: v.replica, details: d, url: v.url || undefined, view: { ...v, inRotation: false } }] : [];
      }),
    });
  }
  return seen;
}

/** The engine's view of a container, for reconcile.ts. */
export function observedOf(d: ContainerDetails): ObservedContainer {
  const state = d.state === 'removing' ? 'dead' : d.state;
  return { state, startedAt: parseDate(d.startedAt), finishedAt: parseDate(d.finishedAt), exitCode: d.exitCode, ...(d.restartPolicy ? { restartPolicy: d.restartPolicy } : {}) };
}
