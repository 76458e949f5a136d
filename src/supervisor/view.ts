/**
 * What the supervisor sees of the workspace at one tick: each agent's record with its containers
 * (inspected: start and finish times, restart policy, address) and the URL each is probed at, and
 * the replica views the gateway routes by. The primary is dialled on its host port (agentUrl);
 * other replicas have no host port and are dialled on their address on the workspace network port
 * 8080 (reachable from the host on Linux; a replica without an address is not probed).
 */
import { CONTAINER_PORT, agentUrl } from '../conventions.js';
import type { ContainerDetails, ContainerState } from '../engine/engine.js';
import type { FleetDeps } from '../fleet/context.js';
import { observe } from '../fleet/state.js';
import { isBeingRemoved, type AgentRecord } from '../registry/registry.js';
import type { ObservedContainer } from './reconcile.js';

/** What the gateway knows of an agent's load. */
export interface AgentLoad {
  /** Calls in flight now. */
  inflight: number;
  /** Replicas it routes to. */
  replicas: number;
}

/** One replica as the gateway routes to it (the shape of the fleet's ReplicaView, src/fleet/replicas.ts). */
export interface ReplicaView {
  /** Container id. */
  id: string;
  /** Container name, e.g. nexus-agent-data-agent-1: stable across a recreate (the health tracker's key). */
  name: string;
  /** 0 = the primary (host port). */
  replica: number;
  url: string;
  state: ContainerState;
  /** Docker's HEALTHCHECK verdict at the last tick (informative; rotation follows the supervisor's own probes). */
  health: ContainerDetails['health'];
  /** By the health tracker: false until its first passing check, and after `failureThreshold` failures. */
  inRotation: boolean;
}

/** An agent at one tick. */
export interface Seen {
  rec: AgentRecord;
  containers: { id: string; name: string; replica: number; details: ContainerDetails; url: string | undefined }[];
}

/** ms since the epoch of an engine time (ISO-8601); 0 for never (Docker's year 1) or absent. */
export const parseDate = (s: string | undefined) => {
  const t = s ? Date.parse(s) : NaN;
  return Number.isFinite(t) && t > 0 ? t : 0;
};

/**
 * One snapshot (fleet observe: one registry list, one container list) plus one inspect per
 * container; agents being removed are left out. By slug. @throws AppError ENGINE_UNREACHABLE, registry errors
 */
export async function observeAgents(deps: FleetDeps): Promise<Map<string, Seen>> {
  const o = await observe(deps);
  const seen = new Map<string, Seen>();
  const details = await Promise.all(o.containers.map((c) => deps.engine.inspectContainer(c.id).catch(() => undefined)));
  for (const rec of o.records) if (!isBeingRemoved(rec)) seen.set(rec.slug, { rec, containers: [] });
  o.containers.forEach((c, i) => {
    const s = c.agent ? seen.get(c.agent) : undefined;
    const d = details[i];
    if (!s || !d) return;
    const url = c.replica === 0 ? agentUrl(deps.config, s.rec.port) : d.ipAddress ? `http://${d.ipAddress}:${CONTAINER_PORT}` : undefined;
    s.containers.push({ id: c.id, name: c.name, replica: c.replica, details: d, url });
  });
  for (const s of seen.values()) s.containers.sort((a, b) => a.replica - b.replica);
  return seen;
}

/** An agent's replicas that can be dialled, primary first, out of rotation until the tracker says otherwise. */
export function replicaViews(s: Seen): ReplicaView[] {
  return s.containers.filter((c) => c.url).map((c) => ({ id: c.id, name: c.name, replica: c.replica, url: c.url!, state: c.details.state, health: c.details.health, inRotation: false }));
}

/** The engine's view of a container, for reconcile.ts. */
export function observedOf(d: ContainerDetails): ObservedContainer {
  const state = d.state === 'removing' ? 'dead' : d.state;
  return { state, startedAt: parseDate(d.startedAt), finishedAt: parseDate(d.finishedAt), exitCode: d.exitCode, ...(d.restartPolicy ? { restartPolicy: d.restartPolicy } : {}) };
}
