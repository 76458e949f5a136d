import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { EventEmitter, on } from 'node:events';
import yaml from 'js-yaml';
import { systemClock, type Clock } from '../clock.js';
import { LABEL } from '../conventions.js';
import { AppError } from '../errors.js';
import type {
  BuildSpec, ContainerDetails, ContainerInfo, ContainerStats, ContainerSpec, ContainerState, Engine, EngineEvent, EngineInfo, ImageInfo, ServiceStatus, StackDeploySpec, TaskState, TaskStatus,
} from './engine.js';

/** How a fake swarm task of a service ends up when its image exists (default: running). */
export type FakeTaskOutcome = { state: TaskState; error?: string };

export interface FakeEngineOptions {
  /** Time for health and task stamps (default: the system clock). */
  clock?: Clock;
  /** Image references present from the start. */
  images?: string[];
  /** References a pull can fetch (default none: a host with no registry, like ours). */
  pullable?: string[];
  /** What a running container's healthcheck reports once its first interval has passed (default healthy). */
  healthOf?: (spec: ContainerSpec) => 'healthy' | 'unhealthy';
  /** Whether this engine is an active swarm manager (default true, one node). */
  swarm?: boolean;
  /** Outcome of the tasks of a stack service (full name) whose image exists (default running). */
  taskOf?: (service: string, image: string) => FakeTaskOutcome;
  /** A build that fails: return the builder's error line, or undefined to succeed. */
  buildError?: (spec: BuildSpec) => string | undefined;
}

interface FakeContainer {
  spec: ContainerSpec;
  id: string;
  imageId: string;
  state: ContainerState;
  startedAtMs: number;
  finishedAtMs: number;
  exitCode: number;
  logs: string;
  networks: Set<string>;
}

interface FakeService {
  name: string;
  image: string;
  mode: 'replicated' | 'global';
  replicas: number;
  tasks: TaskStatus[];
}

const TASK_HISTORY = 5;

const matches = (have: Record<string, string>, want: Record<string, string>) => Object.entries(want).every(([k, v]) => have[k] === v);
const engineError = (message: string, statusCode?: number) =>
  new AppError('ENGINE_ERROR', message, { hint: 'see the Docker engine message above', ...(statusCode ? { details: { statusCode } } : {}) });

/** Compose-style `${VAR:-default}` in a stack file: the default (the fake has no environment). */
const interpolate = (s: string) => s.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}/g, '$1');

/**
 * An in-memory Engine for unit tests: containers, images, networks and swarm stacks as plain
 * data, the same AppErrors as DockerEngine (it passes the same contract suite,
 * test/helpers/engine-contract.ts). Nothing runs: health comes from `healthOf` after the first
 * healthcheck interval (by the injected clock), swarm tasks from `taskOf`, and a stack service
 * whose image is absent has its tasks rejected ("No such image"), one more at every look, as
 * Swarm keeps retrying.
 */
export class FakeEngine implements Engine {
  readonly endpoint = 'fake://engine';
  readonly containers = new Map<string, FakeContainer>();
  readonly images = new Map<string, ImageInfo>();
  readonly networks = new Map<string, { id: string; labels: Record<string, string> }>();
  readonly stacks = new Map<string, FakeService[]>();
  /** Host ports held by processes outside the engine. */
  readonly heldPorts = new Set<number>();
  /** Every call, in order, as `op target` (to assert what a use case did). */
  readonly calls: string[] = [];
  private readonly clock: Clock;
  private seq = 0;
  /** Every container event so far (replayed to `events` subscribers from their `sinceMs`). */
  readonly eventLog: EngineEvent[] = [];
  private readonly bus = new EventEmitter();

  constructor(private readonly opts: FakeEngineOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    for (const ref of opts.images ?? []) this.addImage(ref);
  }

  private nextId(): string {
    return createHash('sha256').update(`fake-${++this.seq}`).digest('hex');
  }

  /** Put an image on the fake engine (as if built or pulled); returns it. */
  addImage(ref: string, labels: Record<string, string> = {}): ImageInfo {
    const existing = this.images.get(ref);
    if (existing) {
      existing.labels = { ...labels };
      return existing;
    }
    const img: ImageInfo = { id: `sha256:${this.nextId()}`, tags: [ref], labels: { ...labels }, size: 50 * 2 ** 20 };
    this.images.set(ref, img);
    return img;
  }

  private image(refOrId: string): ImageInfo | undefined {
    return this.images.get(refOrId) ?? [...this.images.values()].find((i) => i.id === refOrId);
  }

  private container(idOrName: string): FakeContainer | undefined {
    return this.containers.get(idOrName) ?? [...this.containers.values()].find((c) => c.spec.name === idOrName || c.id.startsWith(idOrName));
  }

  private mustContainer(idOrName: string, op: string): FakeContainer {
    const c = this.container(idOrName);
    if (!c) throw engineError(`${op} ${idOrName.slice(0, 12)}: No such container: ${idOrName}`, 404);
    return c;
  }

  private emitEvent(c: FakeContainer, kind: EngineEvent['kind'], exitCode?: number): void {
    const ev: EngineEvent = { kind, id: c.id, labels: { ...c.spec.labels }, at: this.clock.now(), ...(exitCode !== undefined ? { exitCode } : {}) };
    this.eventLog.push(ev);
    this.bus.emit('event', ev);
  }

  async *events(labels: Record<string, string>, signal: AbortSignal, sinceMs?: number): AsyncIterable<EngineEvent> {
    this.log('events');
    if (signal.aborted) return;
    // subscribe before replaying, so nothing emitted in between is lost
    const live = on(this.bus, 'event', { signal });
    const seen = this.eventLog.length;
    if (sinceMs !== undefined) for (const ev of this.eventLog.slice(0, seen)) if (ev.at >= sinceMs && matches(ev.labels, labels)) yield ev;
    try {
      for await (const [ev] of live) if (matches((ev as EngineEvent).labels, labels)) yield ev as EngineEvent;
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }

  /**
   * The container's main process ended by itself (crash, SIGKILL from outside: `exitCode` 137, OOM
   * with `oom`): `die` (and `oom`) events, state exited. No engine restart policy is applied.
   */
  crash(idOrName: string, exitCode = 137, opts: { oom?: boolean } = {}): void {
    const c = this.mustContainer(idOrName, 'crash');
    if (opts.oom) this.emitEvent(c, 'oom');
    c.state = 'exited';
    c.exitCode = exitCode;
    c.finishedAtMs = this.clock.now();
    this.emitEvent(c, 'die', exitCode);
  }

  private log(op: string, target = ''): void {
    this.calls.push(target ? `${op} ${target}` : op);
  }

  async ping(): Promise<EngineInfo> {
    this.log('ping');
    return { version: 'fake', apiVersion: '1.47', os: 'linux', arch: 'amd64' };
  }

  async inspectImage(ref: string): Promise<ImageInfo | undefined> {
    this.log('inspect image', ref);
    const i = this.image(ref);
    return i ? { ...i, tags: [...i.tags], labels: { ...i.labels } } : undefined;
  }

  async pullImage(ref: string): Promise<void> {
    this.log('pull', ref);
    if (!(this.opts.pullable ?? []).includes(ref)) throw engineError(`pull ${ref}: Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host`, 500);
    this.addImage(ref);
  }

  async buildImage(spec: BuildSpec): Promise<ImageInfo> {
    this.log('build', spec.tag);
    const err = existsSync(spec.contextDir) ? this.opts.buildError?.(spec) : `context ${spec.contextDir} does not exist`;
    if (err) throw new AppError('BUILD_FAILED', `docker build of ${spec.tag} failed: ${err}`, { hint: 'check the Dockerfile and build context' });
    const old = this.images.get(spec.tag);
    if (old) this.images.delete(spec.tag);
    const img = this.addImage(spec.tag, spec.labels ?? {});
    return { ...img };
  }

  async importImage(tar: Readable, ref: string): Promise<ImageInfo> {
    this.log('import', ref);
    for await (const _ of tar) void _;
    return { ...this.addImage(ref) };
  }

  async removeImage(ref: string, force = false): Promise<void> {
    this.log('remove image', ref);
    const img = this.image(ref);
    if (!img) return;
    const used = [...this.containers.values()].some((c) => c.imageId === img.id);
    if (used && !force) throw engineError(`remove image ${ref}: conflict: unable to remove repository reference "${ref}" (must force) - container is using its referenced image`, 409);
    for (const [k, v] of this.images) if (v.id === img.id && (k === ref || img.id === ref)) this.images.delete(k);
  }

  async listImages(labels: Record<string, string>): Promise<ImageInfo[]> {
    this.log('list images');
    const seen = new Set<string>();
    return [...this.images.values()].filter((i) => matches(i.labels, labels) && !seen.has(i.id) && seen.add(i.id)).map((i) => ({ ...i }));
  }

  private info(c: FakeContainer): ContainerInfo {
    const status = c.state === 'running' ? 'Up' : c.state === 'exited' ? `Exited (${c.exitCode})` : 'Created';
    const health = this.health(c);
    const addresses = c.state === 'running' ? Object.fromEntries([...c.networks].map((n) => [n, this.addressOf(c, n)])) : {};
    return { id: c.id, name: c.spec.name, image: c.spec.image, imageId: c.imageId, state: c.state, status: health === 'none' ? status : `${status} (${health})`, labels: { ...c.spec.labels }, health, addresses };
  }

  /** A stable fake IPv4 address of a container on a network: 10.<net>.<id bytes>. */
  private addressOf(c: FakeContainer, network: string): string {
    const h = createHash('sha256').update(`${network}/${c.id}`).digest();
    return `10.${h[0]}.${h[1]}.${(h[2]! % 250) + 2}`;
  }

  private health(c: FakeContainer): ContainerDetails['health'] {
    const hc = c.spec.healthcheck;
    if (!hc || c.state !== 'running') return 'none';
    if (this.clock.now() < c.startedAtMs + hc.intervalS * 1000) return 'starting';
    return this.opts.healthOf?.(c.spec) ?? 'healthy';
  }

  async listContainers(labels: Record<string, string>): Promise<ContainerInfo[]> {
    this.log('list containers');
    return [...this.containers.values()].filter((c) => matches(c.spec.labels, labels)).map((c) => this.info(c));
  }

  async inspectContainer(idOrName: string): Promise<ContainerDetails | undefined> {
    this.log('inspect container', idOrName);
    const c = this.container(idOrName);
    if (!c) return undefined;
    return {
      ...this.info(c),
      status: c.state,
      pid: c.state === 'running' ? 1000 + this.seq : 0,
      restartCount: 0,
      health: this.health(c),
      exitCode: c.exitCode,
      startedAt: c.startedAtMs ? new Date(c.startedAtMs).toISOString() : '0001-01-01T00:00:00Z',
      finishedAt: c.finishedAtMs ? new Date(c.finishedAtMs).toISOString() : '0001-01-01T00:00:00Z',
      restartPolicy: c.spec.restartPolicy,
      // a stable made-up address per container and network while it runs
      networks: Object.fromEntries(c.state === 'running' ? [...c.networks].map((n) => [n, `10.88.${parseInt(c.id.slice(0, 2), 16)}.${parseInt(c.id.slice(2, 4), 16)}`]) : []),
    };
  }

  /** As Docker refuses a bind mount whose host path is missing (create and start: 400 "invalid mount config"). */
  private checkBindSources(spec: ContainerSpec, op: string): void {
    for (const f of spec.secretFiles ?? []) {
      if (!existsSync(f.source)) throw engineError(`${op}: invalid mount config for type "bind": bind source path does not exist: ${f.source}`, 400);
    }
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    this.log('create container', spec.name);
    if (this.container(spec.name)) {
      throw new AppError('NAME_TAKEN', `container name ${spec.name} is already used by a container outside this workspace`, {
        hint: `remove it (docker rm -f ${spec.name}) or set a project name in nexus.yaml (project: myproj) to namespace this workspace`,
      });
    }
    const img = this.image(spec.image);
    if (!img) throw engineError(`create container ${spec.name}: No such image: ${spec.image}`, 404);
    if (spec.network && !this.networks.has(spec.network)) throw engineError(`create container ${spec.name}: network ${spec.network} not found`, 404);
    this.checkBindSources(spec, `create container ${spec.name}`);
    const id = this.nextId();
    const c: FakeContainer = { spec: structuredClone(spec), id, imageId: img.id, state: 'created', startedAtMs: 0, finishedAtMs: 0, exitCode: 0, logs: '', networks: new Set(spec.network ? [spec.network] : []) };
    this.containers.set(id, c);
    return id;
  }

  /** Whether `port` on the host is bound by a running container (other than `except`) or held outside. */
  private portTaken(port: number, except: string): boolean {
    if (this.heldPorts.has(port)) return true;
    return [...this.containers.values()].some((o) => o.id !== except && o.state === 'running' && o.spec.hostPort?.port === port);
  }

  async startContainer(id: string): Promise<void> {
    this.log('start container', id.slice(0, 12));
    const c = this.mustContainer(id, 'start container');
    if (c.state === 'running') return;
    this.checkBindSources(c.spec, `start container ${c.id.slice(0, 12)}`);
    const hp = c.spec.hostPort;
    if (hp && this.portTaken(hp.port, c.id)) {
      throw new AppError('PORT_IN_USE', `start container ${c.id.slice(0, 12)}: its host port is taken (Bind for ${hp.address}:${hp.port} failed: port is already allocated)`, {
        hint: 'free the port, or remove the agent and create it again to get another port',
      });
    }
    c.state = 'running';
    c.exitCode = 0;
    c.startedAtMs = this.clock.now();
    this.emitEvent(c, 'start');
  }

  async stopContainer(id: string): Promise<void> {
    this.log('stop container', id.slice(0, 12));
    const c = this.container(id);
    if (!c || c.state !== 'running') return;
    this.emitEvent(c, 'kill');
    c.state = 'exited';
    c.exitCode = 0;
    c.finishedAtMs = this.clock.now();
    this.emitEvent(c, 'die', 0);
    this.emitEvent(c, 'stop');
  }

  async removeContainer(id: string): Promise<void> {
    this.log('remove container', id.slice(0, 12));
    const c = this.container(id);
    if (!c) return;
    if (c.state === 'running') {
      c.state = 'exited';
      c.exitCode = 137;
      c.finishedAtMs = this.clock.now();
      this.emitEvent(c, 'kill');
      this.emitEvent(c, 'die', 137);
    }
    this.containers.delete(c.id);
    this.emitEvent(c, 'destroy');
  }

  /** Append to a container's log (what its process would print). */
  writeLogs(id: string, text: string): void {
    this.mustContainer(id, 'logs').logs += text;
  }

  async containerLogs(id: string, tail: number): Promise<string> {
    this.log('logs', id.slice(0, 12));
    const lines = this.mustContainer(id, 'logs').logs.split('\n');
    const end = lines.at(-1) === '' ? lines.length - 1 : lines.length;
    return lines.slice(Math.max(0, end - tail), end).map((l) => `${l}\n`).join('');
  }

  async followLogs(id: string, tail: number, out: NodeJS.WritableStream): Promise<{ stop: () => void; done: Promise<void> }> {
    out.write(await this.containerLogs(id, tail));
    return { stop: () => undefined, done: Promise.resolve() };
  }

  async ensureNetwork(name: string, labels: Record<string, string>): Promise<string> {
    this.log('ensure network', name);
    const found = this.networks.get(name);
    if (found) return found.id;
    const id = this.nextId();
    this.networks.set(name, { id, labels: { ...labels } });
    return id;
  }

  async connectNetwork(network: string, containerId: string): Promise<void> {
    this.log(`connect to ${network}`, containerId.slice(0, 12));
    if (!this.networks.has(network)) throw engineError(`connect to ${network}: network ${network} not found`, 404);
    this.mustContainer(containerId, `connect to ${network}`).networks.add(network);
  }

  async removeNetwork(name: string): Promise<boolean> {
    this.log('remove network', name);
    if (!this.networks.has(name)) return false;
    if ([...this.containers.values()].some((c) => c.networks.has(name))) return false;
    this.networks.delete(name);
    return true;
  }

  /** Runs nothing: the agents' healthcheck command exits as `healthOf` says (0 healthy, 1 not); anything else exits 0. */
  async execContainer(id: string, cmd: string[]): Promise<{ exitCode: number; output: string }> {
    this.log(`exec ${cmd.join(' ')}`, id.slice(0, 12));
    const c = this.mustContainer(id, 'exec');
    if (c.state !== 'running') throw engineError(`exec ${c.id.slice(0, 12)}: container ${c.id} is not running`, 409);
    const isHealthcheck = JSON.stringify(cmd) === JSON.stringify(c.spec.healthcheck?.test ?? null);
    const healthy = !isHealthcheck || (this.opts.healthOf?.(c.spec) ?? 'healthy') === 'healthy';
    return { exitCode: healthy ? 0 : 1, output: healthy ? '' : 'unhealthy' };
  }

  async signalContainer(id: string, signal: string): Promise<void> {
    this.log(`signal ${signal}`, id.slice(0, 12));
    const c = this.mustContainer(id, `signal ${signal}`);
    if (c.state !== 'running') throw engineError(`signal ${signal} ${c.id.slice(0, 12)}: container ${c.id} is not running`, 409);
  }

  async tagImage(ref: string, newRef: string): Promise<void> {
    this.log(`tag as ${newRef}`, ref);
    const img = this.image(ref);
    if (!img) throw engineError(`tag as ${newRef} ${ref}: No such image: ${ref}`, 404);
    img.tags.push(newRef);
    this.images.set(newRef, img);
  }

  async pushImage(ref: string): Promise<string> {
    this.log('push', ref);
    const img = this.image(ref);
    if (!img) throw engineError(`push ${ref}: An image does not exist locally with the tag: ${ref}`, 404);
    return img.id;
  }

  async swarmInfo(): Promise<{ active: boolean; manager: boolean; nodes: number }> {
    this.log('swarm info');
    const on = this.opts.swarm ?? true;
    return { active: on, manager: on, nodes: on ? 1 : 0 };
  }

  async serviceTasks(service: string): Promise<{ id: string; state: string; containerId?: string | undefined }[]> {
    this.log('tasks of', service);
    const s = [...this.stacks.values()].flat().find((x) => x.name === service);
    return (s?.tasks ?? []).map((t) => ({ id: t.id, state: t.state }));
  }

  async containerMemory(id: string): Promise<number> {
    return (await this.containerStats(id)).memoryBytes;
  }

  /** Running: 1.5 % CPU, 20 MiB of the container's memory limit; stopped: zeros. */
  async containerStats(id: string): Promise<ContainerStats> {
    this.log('stats', id.slice(0, 12));
    const c = this.mustContainer(id, 'stats');
    const running = c.state === 'running';
    return { cpuPercent: running ? 1.5 : 0, memoryBytes: running ? 20 * 2 ** 20 : 0, memoryLimitBytes: running ? c.spec.memoryMiB * 2 ** 20 : 0 };
  }

  async deployStack(spec: StackDeploySpec): Promise<void> {
    this.log('stack deploy', spec.stack);
    if (!(this.opts.swarm ?? true)) throw engineError(`docker stack deploy ${spec.stack} failed: this node is not a swarm manager`);
    const doc = yaml.load(readFileSync(spec.file, 'utf8')) as { services?: Record<string, { image: string; deploy?: { mode?: string; replicas?: number } }> };
    const previous = new Map((this.stacks.get(spec.stack) ?? []).map((s) => [s.name, s]));
    this.stacks.set(
      spec.stack,
      Object.entries(doc.services ?? {}).map(([svc, d]) => {
        const name = `${spec.stack}_${svc}`;
        const image = interpolate(d.image);
        const mode = d.deploy?.mode === 'global' ? 'global' : 'replicated';
        const old = previous.get(name);
        // an unchanged service keeps its tasks, as Swarm does
        const tasks = old && old.image === image ? old.tasks : (old?.tasks ?? []).map((t) => ({ ...t, desiredState: 'shutdown' as const }));
        return { name, image, mode, replicas: mode === 'global' ? 1 : (d.deploy?.replicas ?? 1), tasks };
      }),
    );
  }

  async removeStack(stack: string): Promise<void> {
    this.log('stack rm', stack);
    this.stacks.delete(stack);
  }

  /** Each look moves the fake swarm one step: tasks start, fail or are rejected. */
  async stackServices(stack: string): Promise<ServiceStatus[]> {
    this.log('stack services', stack);
    return (this.stacks.get(stack) ?? []).map((s) => {
      this.step(s);
      return { name: s.name, mode: s.mode, desiredTasks: s.replicas, tasks: s.tasks.map((t) => ({ ...t })) };
    });
  }

  private step(s: FakeService): void {
    const outcome: FakeTaskOutcome = this.image(s.image) ? (this.opts.taskOf?.(s.name, s.image) ?? { state: 'running' }) : { state: 'rejected', error: `No such image: ${s.image}` };
    const live = s.tasks.filter((t) => t.desiredState === 'running');
    const task = (state: TaskState, desiredState: TaskState, error?: string): TaskStatus => ({ id: this.nextId().slice(0, 25), state, desiredState, createdAt: this.clock.now(), ...(error ? { error } : {}) });
    if (outcome.state === 'running' || outcome.state === 'starting') {
      for (const t of live) t.state = outcome.state;
      for (let n = live.length; n < s.replicas; n++) s.tasks.push(task(outcome.state, 'running'));
    } else {
      // the task fails and Swarm replaces it with a new one
      for (const t of live) t.desiredState = 'shutdown';
      s.tasks.push(task(outcome.state, 'shutdown', outcome.error));
    }
    s.tasks = s.tasks.slice(-TASK_HISTORY * Math.max(1, s.replicas));
  }

  async ensureHostNodeImage(ref: string): Promise<ImageInfo> {
    this.log('offline node image', ref);
    return { ...(this.image(ref) ?? this.addImage(ref, { [LABEL.kind]: 'host-node-image' })) };
  }

  async ensureOfflineRouterImage(): Promise<ImageInfo> {
    this.log('offline router image');
    return { ...(this.image(FAKE_ROUTER_IMAGE) ?? this.addImage(FAKE_ROUTER_IMAGE)) };
  }
}

/** The offline router image the fake builds. */
export const FAKE_ROUTER_IMAGE = 'nexus-delta-router:fake';
