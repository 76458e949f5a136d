import type { HostPortProbe, PortRange } from '../ports/allocate.js';

/** Lifecycle status of an agent as last recorded. */
export type AgentStatus = 'created' | 'built' | 'running' | 'stopped' | 'unhealthy' | 'failed';

/** A change of an agent's marketplace listing that follows its lifecycle (src/fleet/marketplace.ts). */
export type ListingChange = 'unregister' | 'unavailable' | 'available';

/** An agent `remove` could not finish: kept only until its listing is gone (marketplace.pending unregister). */
export function isBeingRemoved(rec: AgentRecord): boolean {
  return rec.marketplace?.pending === 'unregister';
}

/** A tool as recorded in the registry (from the agent's GET /tools). */
export interface ToolSummary {
  name: string;
  description: string;
  /** JSON Schema of the tool's parameters. */
  parameters: Record<string, unknown>;
}

/** The record of one agent: desired state and metadata. Never holds secrets. */
export interface AgentRecord {
  name: string;
  slug: string;
  description: string;
  capabilities: string[];
  category: string;
  model: string;
  version: string;
  /** Host port (TCP) reserved for this agent. */
  port: number;
  /** What should run: `start` sets running, `stop` sets stopped. */
  desired: 'running' | 'stopped';
  status: AgentStatus;
  /** Agent image last built: reference, image id, and the source hash it was built from. */
  image?: { ref: string; id: string; sourceHash: string; builtAt: string } | undefined;
  tools?: ToolSummary[] | undefined;
  /** Versions deployed by `rollout`/`rollback`, oldest first, the running one last (at most
   *  VERSION_HISTORY); each image is kept under its version tag so a rollback needs no rebuild. */
  versions?: DeployedVersion[] | undefined;
  /** The marketplace listing: its id there, the stable key it is upserted under, and the hash of
   *  the card last sent (an unchanged card is not sent again). Never the API key.
   *  `pending`: a listing change a lifecycle command could not make (marketplace unreachable), so
   *  the listing is stale; retried by the next lifecycle command or `register`. A record whose
   *  pending is `unregister` is an agent being removed: kept only until its listing is gone. */
  marketplace?: { id: string; key: string; url: string; cardHash: string; status: 'available' | 'unavailable'; registeredAt: string; pending?: ListingChange | undefined } | undefined;
  /** Last error message (status failed/unhealthy). */
  lastError?: string | undefined;
  /** Hash of the agent's connection token for `/ws/agent` (src/fleet/agent-tokens.ts); never the token itself. */
  agentToken?: { scheme: 'sha256'; hash: string; issuedAt: string } | undefined;
  /** ISO-8601 timestamps. */
  createdAt: string;
  updatedAt: string;
}

/** One deployed version of an agent (see AgentRecord.versions). */
export interface DeployedVersion {
  version: string;
  /** The version-tagged image reference and its id. */
  image: { ref: string; id: string };
  sourceHash: string;
  /** ISO-8601. */
  deployedAt: string;
}

/** Fields a caller supplies to create an agent. */
export type NewAgent = Pick<AgentRecord, 'name' | 'slug' | 'description' | 'capabilities' | 'category' | 'model' | 'version'>;

/** Fields `update` may change. name, slug, port and createdAt are fixed for a record's life. */
export type AgentPatch = Partial<Omit<AgentRecord, 'name' | 'slug' | 'port' | 'createdAt' | 'updatedAt'>>;

/**
 * Lifecycle events kept in an agent's history: the registry's own (created, built, started,
 * stopped, unhealthy, failed, removed, imported) and the supervisor's (restarted, recovered,
 * restored, scaled; failed when it gives up).
 */
export const HISTORY_EVENTS = ['created', 'built', 'started', 'stopped', 'unhealthy', 'failed', 'removed', 'imported', 'restarted', 'recovered', 'restored', 'scaled'] as const;
export type HistoryEvent = (typeof HISTORY_EVENTS)[number];

/**
 * The registry's own history event for a record's new status (a status written by `update`):
 * built, started (running), stopped, unhealthy, failed; none for created (that one is `create`'s).
 */
export function historyEventOfStatus(status: AgentStatus): HistoryEvent | undefined {
  return ({ built: 'built', running: 'started', stopped: 'stopped', unhealthy: 'unhealthy', failed: 'failed' } as Partial<Record<AgentStatus, HistoryEvent>>)[status];
}

/** One history entry, as `history` returns it. Never holds secrets. */
export interface HistoryEntry {
  event: HistoryEvent;
  /** ISO-8601 time. */
  at: string;
  /** The status recorded with it (registry events), if any. */
  status?: AgentStatus | null | undefined;
  /** Why (supervisor decisions), one line. */
  reason?: string | undefined;
}

/** Entries the local registry keeps per agent (the oldest go first). */
export const LOCAL_HISTORY_LIMIT = 200;

/** How `create` picks the port: exactly `requested`, or the lowest free port of `range`. */
export interface PortRequest {
  range: PortRange;
  requested?: number | undefined;
  isHostPortFree: HostPortProbe;
}

/**
 * Where agent records live. Implementations: `local` (embedded files under .nexus/) and, later,
 * `firestore`. The contract (test/integration/registry-contract) is the same for both:
 * - `create` writes the record and reserves its port in one atomic step; on any error nothing is
 *   written (AppError NAME_TAKEN, PORT_IN_USE, PORT_OUT_OF_RANGE, PORT_RANGE_EXHAUSTED).
 * - concurrent `create`s from several processes never get the same port or lose a record.
 * - `remove` deletes the record and releases its port in one step.
 * - `update` of a missing agent throws AGENT_NOT_FOUND.
 */
export interface Registry {
  readonly kind: 'local' | 'firestore';
  create(agent: NewAgent, port: PortRequest): Promise<AgentRecord>;
  /** The record, or undefined. */
  get(slug: string): Promise<AgentRecord | undefined>;
  /** All records, sorted by port. */
  list(): Promise<AgentRecord[]>;
  update(slug: string, patch: AgentPatch): Promise<AgentRecord>;
  /** Returns true when a record was removed. */
  remove(slug: string): Promise<boolean>;
  /**
   * Append a lifecycle event to an agent's history (kept after the record is removed, as an audit
   * trail). `reason` is one line (truncated to 500 characters). The local registry keeps the last
   * LOCAL_HISTORY_LIMIT entries per agent. @throws AppError USAGE for an unknown event or a bad slug
   */
  appendHistory(slug: string, entry: { event: HistoryEvent; reason?: string | undefined }): Promise<void>;
  /** An agent's history, oldest first (empty when none). */
  history(slug: string): Promise<HistoryEntry[]>;
  close(): Promise<void>;
}
