import type { Readable } from 'node:stream';

/**
 * The Docker engine as this tool sees it. Only src/engine/ imports dockerode; everything here is
 * our own types. Errors: every method throws AppError ENGINE_UNREACHABLE when the engine does not
 * answer and ENGINE_ERROR (with the engine's message) when it refuses.
 */
export interface Engine {
  /** Engine version and API version; throws ENGINE_UNREACHABLE naming the socket / DOCKER_HOST. */
  ping(): Promise<EngineInfo>;
  /** Where the engine is reached (socket path or DOCKER_HOST), for messages. */
  readonly endpoint: string;

  inspectImage(ref: string): Promise<ImageInfo | undefined>;
  /** Pull an image; throws ENGINE_ERROR when the registry cannot be reached. */
  pullImage(ref: string, onProgress?: (line: string) => void): Promise<void>;
  /**
   * Build an image from a folder (classic builder, like `docker build`).
   * Returns the new image's id; throws BUILD_FAILED with the builder's error line.
   */
  buildImage(spec: BuildSpec, onProgress?: (line: string) => void): Promise<ImageInfo>;
  /** `docker import` of a root filesystem tarball; returns the image. */
  importImage(tar: Readable, ref: string, changes?: string[]): Promise<ImageInfo>;
  /** Remove an image; absent is fine. `force` also untags it from running containers. */
  removeImage(ref: string, force?: boolean): Promise<void>;
  listImages(labels: Record<string, string>): Promise<ImageInfo[]>;

  /** Containers (running or not) carrying all the given labels. */
  listContainers(labels: Record<string, string>): Promise<ContainerInfo[]>;
  inspectContainer(idOrName: string): Promise<ContainerDetails | undefined>;
  /** Create (not start) a container; returns its id. */
  createContainer(spec: ContainerSpec): Promise<string>;
  startContainer(id: string): Promise<void>;
  /** Stop with SIGTERM then SIGKILL after `timeoutS` seconds; already stopped is fine. */
  stopContainer(id: string, timeoutS?: number): Promise<void>;
  /** Remove (force-kills a running container); absent is fine. */
  removeContainer(id: string): Promise<void>;
  /** The last `tail` lines of stdout+stderr, demultiplexed. */
  containerLogs(id: string, tail: number): Promise<string>;
  /** Follow logs: a stream of demultiplexed text; call `stop()` to end it. */
  followLogs(id: string, tail: number, out: NodeJS.WritableStream): Promise<{ stop: () => void; done: Promise<void> }>;
  /** Create a user-defined bridge network if none has this name; returns its id. */
  ensureNetwork(name: string, labels: Record<string, string>): Promise<string>;
  /** Connect a container to a network with DNS aliases; already connected is fine. */
  connectNetwork(network: string, containerId: string, aliases: string[]): Promise<void>;
  /** Remove a network; absent or in use is fine (returns false then). */
  removeNetwork(name: string): Promise<boolean>;
  /**
   * Container events (`docker events --filter type=container`) of containers carrying all the given
   * labels, from `sinceMs` (ms since the epoch; events since then are replayed, so a caller that
   * takes the time before acting misses nothing) until `signal` aborts, then the iteration ends.
   * Only the kinds of EngineEvent are reported. @throws AppError ENGINE_UNREACHABLE on the first next()
   */
  events(labels: Record<string, string>, signal: AbortSignal, sinceMs?: number): AsyncIterable<EngineEvent>;
  /**
   * Run a command in a running container (`docker exec`, as the container's user) and wait for it
   * to exit, at most `timeoutMs` ms. Returns its exit code (-1 when the deadline passed) and its
   * output, stdout and stderr interleaved, at most the last 4 KiB.
   */
  execContainer(id: string, cmd: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }>;
  /** Send a signal to a container's main process (e.g. SIGHUP to reload nginx). */
  signalContainer(id: string, signal: string): Promise<void>;
  /** Tag an image under another reference (`docker tag`). */
  tagImage(ref: string, newRef: string): Promise<void>;
  /** Push a reference to its registry (`docker push`); returns the pushed digest. */
  pushImage(ref: string, onProgress?: (line: string) => void): Promise<string>;
  /** Swarm state of this engine: whether it is an active manager, and its node count. */
  swarmInfo(): Promise<{ active: boolean; manager: boolean; nodes: number }>;
  /** Running tasks of a swarm service (name), with their container ids where on this node. */
  serviceTasks(service: string): Promise<{ id: string; state: string; containerId?: string | undefined }[]>;
  /** One `docker stats` sample: memory in bytes (usage minus inactive file cache, as the CLI shows). */
  containerMemory(id: string): Promise<number>;
  /**
   * One `docker stats` sample of a container: CPU and memory as `docker stats` shows them (takes
   * about a second: the engine samples CPU twice). A stopped container reports zeros.
   * @throws AppError ENGINE_ERROR (no such container), ENGINE_UNREACHABLE
   */
  containerStats(id: string): Promise<ContainerStats>;

  /**
   * `docker stack deploy --prune` of a stack file (Compose format 3.8) on a swarm manager.
   * @throws AppError ENGINE_ERROR with the engine's message (not a manager, invalid file, ...).
   */
  deployStack(spec: StackDeploySpec): Promise<void>;
  /** `docker stack rm`; a stack that does not exist is fine. @throws AppError ENGINE_ERROR */
  removeStack(stack: string): Promise<void>;
  /** The services of a deployed stack with their tasks (the last few per slot, as Swarm keeps them), by service name. */
  stackServices(stack: string): Promise<ServiceStatus[]>;

  /**
   * The offline Node runtime image `ref`, built from this host's own `node` binary when absent
   * (for hosts with no registry to pull from); reused when present.
   * @throws AppError BASE_IMAGE_FAILED when the binary or its libraries cannot be packed.
   */
  ensureHostNodeImage(ref: string): Promise<ImageInfo>;
  /**
   * The offline router image `nexus-delta-router:<nginx version>-<revision>`, built from this
   * host's nginx when absent; reused when present.
   * @throws AppError BASE_IMAGE_FAILED when nginx is not installed or cannot be packed.
   */
  ensureOfflineRouterImage(): Promise<ImageInfo>;
}

/** What `deployStack` deploys. */
export interface StackDeploySpec {
  /** Absolute path of the stack file. */
  file: string;
  /** Stack name (the prefix of its services: `<stack>_<service>`). */
  stack: string;
  /** `always` pins registry digests (multi-node, after `agent push`); `never` keeps local images. */
  resolveImage: 'always' | 'changed' | 'never';
}

/** Swarm task states (Docker's api/types/swarm TaskState). */
export type TaskState =
  | 'new' | 'allocated' | 'pending' | 'assigned' | 'accepted' | 'preparing' | 'ready' | 'starting'
  | 'running' | 'complete' | 'shutdown' | 'failed' | 'rejected' | 'remove' | 'orphaned';

/** One task of a swarm service. A task with a healthcheck is `starting` until healthy, then `running`. */
export interface TaskStatus {
  id: string;
  state: TaskState;
  /** What Swarm wants of the task: `running`, or `shutdown` once it is replaced. */
  desiredState: TaskState;
  /** The engine's error for a failed or rejected task, e.g. "No such image: nginx:1.27-alpine". */
  error?: string | undefined;
  /** When the task was created, ms since the epoch. */
  createdAt: number;
}

/** A swarm service and its tasks. */
export interface ServiceStatus {
  /** Full service name, `<stack>_<service>`. */
  name: string;
  mode: 'replicated' | 'global';
  /** Tasks Swarm wants running: the replicas, or (global) one per eligible node. */
  desiredTasks: number;
  tasks: TaskStatus[];
}

export interface EngineInfo {
  version: string;
  apiVersion: string;
  os: string;
  arch: string;
}

export interface ImageInfo {
  id: string;
  tags: string[];
  labels: Record<string, string>;
  /** Bytes. */
  size: number;
}

export interface BuildSpec {
  /** Folder sent as the build context. */
  contextDir: string;
  /** Image reference to tag, e.g. nexus-delta-agent-data-agent:latest. */
  tag: string;
  dockerfile?: string;
  buildArgs?: Record<string, string>;
  labels?: Record<string, string>;
}

export type ContainerState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface ContainerInfo {
  id: string;
  name: string;
  image: string;
  imageId: string;
  state: ContainerState;
  /** Docker's status text, e.g. "Up 3 minutes (healthy)". */
  status: string;
  labels: Record<string, string>;
  /** Docker's HEALTHCHECK verdict as the list shows it ('none' without a healthcheck or when not running). */
  health?: 'starting' | 'healthy' | 'unhealthy' | 'none' | undefined;
  /** IPv4 address on each network the container is attached to (network name -> address), when running. */
  addresses?: Record<string, string> | undefined;
}

/** One `docker stats` sample. */
export interface ContainerStats {
  /** CPU use in percent of one core (200 = two cores busy), as `docker stats` computes it. */
  cpuPercent: number;
  /** Memory in bytes (usage minus inactive file cache). */
  memoryBytes: number;
  /** The container's memory limit in bytes (0 when unknown). */
  memoryLimitBytes: number;
}

/** The container events the tool reacts to (Docker's names). */
export const ENGINE_EVENT_KINDS = ['start', 'die', 'oom', 'kill', 'stop', 'destroy', 'pause', 'unpause', 'restart'] as const;

/** One container event. */
export interface EngineEvent {
  kind: (typeof ENGINE_EVENT_KINDS)[number];
  /** Container id. */
  id: string;
  /** The container's labels at the time of the event. */
  labels: Record<string, string>;
  /** ms since the epoch. */
  at: number;
  /** Exit code, on `die`. */
  exitCode?: number | undefined;
}

export interface ContainerDetails extends ContainerInfo {
  /** Host PID of the container's main process (0 when not running). */
  pid: number;
  restartCount: number;
  health: 'starting' | 'healthy' | 'unhealthy' | 'none';
  exitCode: number;
  startedAt: string;
  /** ISO-8601 time it last stopped; absent (or year 1) if never. */
  finishedAt?: string | undefined;
  /** The engine's restart policy on it. */
  restartPolicy?: ContainerSpec['restartPolicy'] | undefined;
  /** IPv4 address of a running container on each network it is connected to (network name -> address). */
  networks?: Record<string, string> | undefined;
}

/** Everything needed to create an agent container. Sizes in MiB, CPUs as fractions of a core. */
export interface ContainerSpec {
  name: string;
  image: string;
  labels: Record<string, string>;
  env: Record<string, string>;
  /** Port inside the container (8080). */
  containerPort: number;
  /** Host port binding; omitted for containers reached only through a network (replicas). */
  hostPort?: { address: string; port: number } | undefined;
  user: string;
  readOnlyRootfs: boolean;
  /** tmpfs mounts: path -> mount options. */
  tmpfs: Record<string, string>;
  capDrop: string[];
  securityOpt: string[];
  memoryMiB: number;
  cpus: number;
  pidsLimit: number;
  restartPolicy: 'no' | 'always' | 'unless-stopped' | 'on-failure';
  /** Docker HEALTHCHECK: exec-form command and timings in seconds. */
  healthcheck?: { test: string[]; intervalS: number; timeoutS: number; retries: number; startPeriodS: number } | undefined;
  /** Run an init process (docker-init) as PID 1 to reap zombies and forward signals. */
  init: boolean;
  network?: string | undefined;
  /** DNS aliases on `network` (replicas of one agent share its slug: Docker DNS returns them all). */
  networkAliases?: string[] | undefined;
  /** Bind mounts, `host:container[:ro]`. */
  binds?: string[] | undefined;
  /**
   * Files mounted read-only (a bind mount that fails when `source` is missing, where a `binds`
   * entry would make Docker create a directory there): secrets such as the agent's connection
   * token, so they are not in the container's environment (`docker inspect` shows env).
   */
  secretFiles?: { source: string; target: string }[] | undefined;
  /** Extra /etc/hosts lines, `name:ip` (`host-gateway` is Docker's address of the host). */
  extraHosts?: string[] | undefined;
  /** Command override (exec form). */
  cmd?: string[] | undefined;
}
