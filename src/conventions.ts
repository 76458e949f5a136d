import { createHash } from 'node:crypto';

/**
 * The house conventions: names, numbers and rules that the engine, the fleet, the registry and the
 * generators must agree on, written once. Pure data and pure functions; this module imports nothing
 * from fleet/, registry/, generate/ or engine/ (arrows point down to it).
 */

/** Label keys put on every Docker object the tool creates, so it finds its own (by label, never by name). */
export const LABEL = {
  /** "true" on everything the tool manages. */
  managed: 'dev.nexus-delta.managed',
  /** Workspace id (hash of its absolute path): one engine can serve several workspaces. */
  workspace: 'dev.nexus-delta.workspace',
  /** Agent slug. */
  agent: 'dev.nexus-delta.agent',
  /** Replica number, 0 for the primary container. */
  replica: 'dev.nexus-delta.replica',
  /** Hash of the container spec, to detect drift (like com.docker.compose.config-hash). */
  configHash: 'dev.nexus-delta.config-hash',
  /** Hash of the bundled agent source + base image id, on agent images. */
  sourceHash: 'dev.nexus-delta.source-hash',
  /** Hash of an agent's lockfile + external packages + base image id, on dependency images. */
  depsHash: 'dev.nexus-delta.deps-hash',
  /** An agent image's own memory limit in MiB (agent.json resources.memoryMiB), when it has one. */
  memoryMiB: 'dev.nexus-delta.memory-mib',
  /** Hash of the runtime bundle + Dockerfile.agent + FROM image, on base images. */
  runtimeHash: 'dev.nexus-delta.runtime-hash',
  /** The FROM image a base image was built on (public image or the offline host-Node image). */
  baseFrom: 'dev.nexus-delta.base-from',
  /** Agent version a container runs (set by rollouts; absent on containers started by `start`). */
  version: 'dev.nexus-delta.version',
  /** Rollout generation of a container: 1, 2, ... per agent (absent = generation 0, before any rollout). */
  generation: 'dev.nexus-delta.generation',
  /** Kind of object: base-image, agent-image, deps-image, host-node-image, container, router. */
  kind: 'dev.nexus-delta.kind',
} as const;

/** Port every agent listens on inside its container (unprivileged, so the agent runs non-root). */
export const CONTAINER_PORT = 8080;
/** Port the router (nginx) listens on inside its container: the same unprivileged port. */
export const ROUTER_CONTAINER_PORT = 8080;
/** Default host port the router publishes (`scale`, `compose`, `deploy --swarm`). */
export const ROUTER_PORT = 8088;

/** UID/GID of the non-root user agents and the router run as (the `node` user of the official Node images). */
export const AGENT_UID = 1000;
/** `user` of every container we run, `uid:gid`. */
export const AGENT_USER = `${AGENT_UID}:${AGENT_UID}`;

/** Seconds between SIGTERM and SIGKILL when a container is stopped (Docker's default, and ours everywhere). */
export const STOP_GRACE_S = 10;

/**
 * The hardening every container we run gets (agents and router; local, Compose and Swarm): non-root,
 * read-only root filesystem, all capabilities dropped, no-new-privileges, an init process as PID 1,
 * restarted unless stopped. Source: Docker's security guidance and the CIS Docker Benchmark (5.x).
 */
export const HARDENED = {
  user: AGENT_USER,
  readOnlyRootfs: true,
  capDrop: ['ALL'],
  securityOpt: ['no-new-privileges:true'],
  init: true,
  restartPolicy: 'unless-stopped',
} as const;

/** An agent's only writable place: a small /tmp (16 MiB, no exec, no setuid, no devices). */
export const AGENT_TMP = { path: '/tmp', options: 'rw,noexec,nosuid,nodev,size=16m,mode=1777', sizeMiB: 16 } as const;

/** The router's writable places (nginx temp files, cache, pid), path -> size in MiB. */
export const ROUTER_TMPFS_MIB: Readonly<Record<string, number>> = { '/tmp': 16, '/var/cache/nginx': 16, '/var/run': 1 };

/** Resource limits of the local router: it serves every agent, so a whole core. Memory in MiB. */
export const ROUTER_LIMITS = { memoryMiB: 64, cpus: 1, pids: 64 } as const;

/** Docker HEALTHCHECK of an agent: exec-form command and timings in seconds. */
export interface Healthcheck {
  test: readonly string[];
  intervalS: number;
  timeoutS: number;
  retries: number;
  startPeriodS: number;
}

/** Where the agent base image holds a static busybox (Debian busybox-static): the health probe. */
export const IMAGE_BUSYBOX = '/usr/local/bin/busybox';

/**
 * The agents' HEALTHCHECK: a static busybox `wget` of GET /health (exit 0 on a 2xx), not a second
 * `node` process (that cost 0.80% of a core per idle agent, issue 14 §3; a busybox probe costs
 * about 1 ms of CPU). No `-T`: Debian bookworm's busybox-static 1.35 wget segfaults with it, and
 * Docker's timeout stops a hung probe. Every 60 s: each probe is a `docker exec` whose runc start
 * costs about 16 ms of CPU in the container's cgroup, so at Docker's default 30 s an idle agent
 * used 0.053% of a core, over the 0.05% goal (BENCHMARKS.md). Nothing waits on this status to
 * start an agent (`start` polls GET /health itself) and the manager's supervisor probes every 5 s;
 * this probe is the fallback that marks a hung agent unhealthy when no manager runs.
 */
export const AGENT_HEALTHCHECK: Healthcheck = {
  test: [IMAGE_BUSYBOX, 'wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${CONTAINER_PORT}/health`],
  intervalS: 60,
  timeoutS: 3,
  retries: 3,
  startPeriodS: 10,
};

/**
 * Swarm's interval: a task counts as running only once healthy, and Swarm routes (and rolling
 * updates proceed) only to healthy tasks, so it probes more often to converge in seconds.
 */
export const SWARM_HEALTHCHECK: Healthcheck = { ...AGENT_HEALTHCHECK, intervalS: 10 };

/** How many deployed versions an agent record keeps (rollback targets), oldest dropped first. */
export const VERSION_HISTORY = 10;

/** Replica number of a container from its labels (0, the primary, when unlabelled). */
export function replicaIndex(labels: Readonly<Record<string, string>>): number {
  return Number(labels[LABEL.replica] ?? '0');
}

/** An agent's memory limit from its image's label (agent.json resources.memoryMiB), or undefined for the workspace default. */
export function imageMemoryMiB(labels: Readonly<Record<string, string>>): number | undefined {
  const v = Number(labels[LABEL.memoryMiB]);
  return Number.isInteger(v) && v > 0 ? v : undefined;
}

/** Whether a container is an agent's primary replica (the one with the host port). */
export function isPrimaryReplica(labels: Readonly<Record<string, string>>): boolean {
  return (labels[LABEL.replica] ?? '0') === '0';
}

/** Short stable id of a workspace (sha256 of its absolute path, 12 hex), used in labels and names. */
export function workspaceId(workspace: string): string {
  return createHash('sha256').update(workspace).digest('hex').slice(0, 12);
}

/** Labels that select everything a workspace owns on the engine. */
export function workspaceLabels(config: { workspace: string }): Record<string, string> {
  return { [LABEL.managed]: 'true', [LABEL.workspace]: workspaceId(config.workspace) };
}

/** Host to dial for a port bound on `bindAddress` (wildcards are reached over loopback). */
export function dialHost(bindAddress: string): string {
  return bindAddress === '0.0.0.0' || bindAddress === '::' ? '127.0.0.1' : bindAddress;
}

/** `http://<host>:<port>` to reach a port bound on `bindAddress` (IPv6 in brackets, RFC 3986). */
export function dialUrl(bindAddress: string, port: number): string {
  const host = dialHost(bindAddress);
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** An agent's URL on this host: its host port on the configured bind address. */
export function agentUrl(config: { ports: { bindAddress: string } }, port: number): string {
  return dialUrl(config.ports.bindAddress, port);
}

/** The path prefix a router serves an agent under. */
export function routerPath(slug: string): string {
  return `/agents/${slug}`;
}
