import { systemClock, type Clock } from '../clock.js';
import { CONTAINER_PORT, LABEL, agentUrl, replicaIndex, workspaceLabels } from '../conventions.js';
import type { Config } from '../config/config.js';
import type { ContainerInfo } from '../engine/engine.js';
import type { AgentRecord } from '../registry/registry.js';
import type { FleetDeps } from './context.js';
import { localNetworkName } from './router.js';

/**
 * Which replicas of an agent take traffic (the gateway's rotation), as one small interface with a
 * default built on observed state. The supervisor (src/supervisor/supervisor.ts) replaces the
 * default with its own health tracker's view (probes every 5 s, 3 failures out, new replicas out
 * until their first passing check) by implementing RotationSource; the gateway only reads it.
 */

/** One container of an agent as the gateway and the API see it. */
export interface ReplicaView {
  /** Container id. */
  id: string;
  /** Container name, e.g. nexus-agent-data-agent-1. */
  name: string;
  /** 0 = the primary (host port), 1.. = replicas reached on the workspace network. */
  replica: number;
  /** Base URL of the agent runtime: the primary's host port, a replica's address on the workspace network port 8080; '' when unreachable. */
  url: string;
  state: ContainerInfo['state'];
  /** Docker's HEALTHCHECK verdict (the list's). */
  health: NonNullable<ContainerInfo['health']>;
  /** Whether the gateway may send calls to it. */
  inRotation: boolean;
}

/** An agent's current rotation. */
export interface RotationSource {
  /**
   * The replicas of the agent `slug` (all of them, in or out of rotation), primary first; an empty
   * list when it has none. Must be cheap: the gateway asks on every call.
   */
  rotation(slug: string): Promise<ReplicaView[]>;
}

/** Workspace records and containers, as one short-lived snapshot. */
export interface FleetSnapshot {
  records: AgentRecord[];
  containers: ContainerInfo[];
  /** When it was taken (clock ms). */
  at: number;
}

/**
 * The default rule of rotation, without a supervisor: a replica is in rotation when its
 * container runs, has an address the manager can dial, and Docker's HEALTHCHECK does not say
 * `unhealthy` (`starting` counts as in: `start` already waited for GET /health).
 * Pure: `containers` are the workspace's (any agent); returns this agent's, primary first.
 * The primary is dialled on its host port (agentUrl); other replicas have no host port and are
 * dialled on their address on the workspace network (reachable from the host on Linux; on
 * Docker Desktop only the primary is, so the others stay out of rotation there).
 */
export function replicaViews(config: Pick<Config, 'workspace' | 'ports'>, rec: Pick<AgentRecord, 'slug' | 'port'>, containers: readonly ContainerInfo[]): ReplicaView[] {
  const network = localNetworkName(config.workspace);
  return containers
    .filter((c) => c.labels[LABEL.agent] === rec.slug)
    .map((c): ReplicaView => {
      const replica = replicaIndex(c.labels);
      const health = c.health ?? 'none';
      let url = '';
      if (replica === 0) url = agentUrl(config, rec.port);
      else {
        const ip = c.addresses?.[network] ?? Object.values(c.addresses ?? {})[0];
        if (ip) url = `http://${ip}:${CONTAINER_PORT}`;
      }
      return { id: c.id, name: c.name, replica, url, state: c.state, health, inRotation: c.state === 'running' && health !== 'unhealthy' && url !== '' };
    })
    .sort((a, b) => a.replica - b.replica);
}

/**
 * One registry list and one container list, shared by every caller for `ttlMs` (default 1000 ms)
 * so the gateway does not ask the engine on every call; concurrent callers share one refresh.
 * `invalidate()` drops it (after a lifecycle route changed the fleet).
 */
export class SnapshotCache {
  private current: FleetSnapshot | undefined;
  private pending: Promise<FleetSnapshot> | undefined;
  private readonly clock: Clock;

  constructor(private readonly deps: FleetDeps, private readonly ttlMs = 1000) {
    this.clock = deps.clock ?? systemClock;
  }

  /** The snapshot, refreshed when older than ttlMs. @throws AppError ENGINE_UNREACHABLE / ENGINE_ERROR, registry errors. */
  async get(): Promise<FleetSnapshot> {
    const now = this.clock.now();
    if (this.current && now - this.current.at < this.ttlMs) return this.current;
    this.pending ??= (async () => {
      try {
        const [records, containers] = await Promise.all([this.deps.registry.list(), this.deps.engine.listContainers(workspaceLabels(this.deps.config))]);
        this.current = { records, containers: containers.filter((c) => c.labels[LABEL.kind] !== 'router'), at: this.clock.now() };
        return this.current;
      } finally {
        this.pending = undefined;
      }
    })();
    return this.pending;
  }

  invalidate(): void {
    this.current = undefined;
  }
}

/** A record by its name or slug in a snapshot. */
export function findRecord(records: readonly AgentRecord[], nameOrSlug: string): AgentRecord | undefined {
  return records.find((r) => r.slug === nameOrSlug) ?? records.find((r) => r.name === nameOrSlug);
}

/** The default RotationSource: replicaViews over a SnapshotCache (observed state, about 1 s old at most). */
export function observedRotation(deps: FleetDeps, cache: SnapshotCache): RotationSource {
  return {
    async rotation(slug) {
      const snap = await cache.get();
      const rec = findRecord(snap.records, slug);
      return rec ? replicaViews(deps.config, rec, snap.containers) : [];
    },
  };
}
