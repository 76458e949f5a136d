import { PassThrough, Writable, type Readable } from 'node:stream';
import Docker from 'dockerode';
import tar from 'tar-fs';
import { STOP_GRACE_S } from '../conventions.js';
import { AppError } from '../errors.js';
import { logger } from '../log.js';
import { ENGINE_EVENT_KINDS } from './engine.js';
import type { BuildSpec, ContainerDetails, ContainerInfo, ContainerSpec, ContainerStats, ContainerState, Engine, EngineEvent, EngineInfo, ImageInfo, ServiceStatus, StackDeploySpec, TaskState } from './engine.js';
import { ensureHostNodeImage } from './rootfs.js';
import { ensureOfflineRouterImage } from './router-image.js';
import { dockerStackDeploy, dockerStackRemove } from './stack.js';
import { engineEndpoint } from './open.js';
import { containerInfoOf, engineCall, engineInfoOf, faultOf, healthOfStatus, isPortConflict, labelFilters, PING_TIMEOUT_MS, shortId, withTimeout, wrapEngineError } from './calls.js';
import type { CallOptions, EngineFault, RawContainer, RawVersion } from './calls.js';

const log = logger('engine');

export { engineEndpoint, faultOf, isPortConflict, shortId, healthOfStatus, type EngineFault };

/**
 * dockerode options for an environment, following the docker CLI: DOCKER_HOST unix:///path or
 * tcp://host:port (https when DOCKER_TLS_VERIFY is set, certificates from DOCKER_CERT_PATH, as
 * docker-modem reads them). Without DOCKER_HOST: the default socket.
 */
export function dockerOptions(env: Record<string, string | undefined>): Docker.DockerOptions {
  const host = env.DOCKER_HOST;
  if (!host) return { socketPath: '/var/run/docker.sock' };
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) };
  const u = new URL(host.replace(/^tcp:/, env.DOCKER_TLS_VERIFY ? 'https:' : 'http:'));
  return { host: u.hostname, port: Number(u.port || (env.DOCKER_TLS_VERIFY ? 2376 : 2375)), protocol: u.protocol === 'https:' ? 'https' : 'http' };
}

/** Split Docker's multiplexed log stream format (8-byte frame headers) into text. */
export function demuxLogBuffer(buf: Buffer): string {
  let out = '';
  let i = 0;
  // A TTY container's logs are not multiplexed: the first byte is then not a stream id (0-2).
  if (buf.length >= 8 && buf[0]! <= 2 && buf[1] === 0 && buf[2] === 0 && buf[3] === 0) {
    while (i + 8 <= buf.length) {
      const len = buf.readUInt32BE(i + 4);
      out += buf.subarray(i + 8, i + 8 + len).toString('utf8');
      i += 8 + len;
    }
    return out;
  }
  return buf.toString('utf8');
}

/**
 * The dockerode implementation of Engine. Every call goes through `call`: it logs start, success
 * (with the time taken) or failure with the short id under `nexus:engine`, and rethrows as AppError
 * with context (ENGINE_UNREACHABLE, PORT_IN_USE, ENGINE_ERROR, or the call's own refinement).
 */
export class DockerEngine implements Engine {
  readonly endpoint: string;
  private readonly docker: Docker;
  private readonly env: Record<string, string | undefined>;
  private readonly binaries: { node: string; nginx: string };

  constructor(opts: { docker?: Docker; env?: Record<string, string | undefined>; nodeBinary?: string; nginxBinary?: string } = {}) {
    this.env = opts.env ?? process.env;
    this.endpoint = engineEndpoint(this.env);
    // TLS over tcp: let docker-modem read DOCKER_CERT_PATH itself from the process environment
    this.docker = opts.docker ?? (this.env.DOCKER_HOST?.startsWith('tcp:') && this.env.DOCKER_TLS_VERIFY ? new Docker() : new Docker(dockerOptions(this.env)));
    this.binaries = { node: opts.nodeBinary ?? process.execPath, nginx: opts.nginxBinary ?? '/usr/sbin/nginx' };
  }

  /** The one error path: map an engine failure to AppError (calls.ts wrapEngineError). */
  private wrap(err: unknown, what: string, refine?: CallOptions<unknown>['refine']): AppError {
    return wrapEngineError(this.endpoint, err, what, refine);
  }

  /** Run one engine call through the one logging wrapper (calls.ts engineCall). */
  private call<T>(op: string, target: string | undefined, fn: () => Promise<T>, opts: CallOptions<T> = {}): Promise<T> {
    return engineCall(this.endpoint, op, target, fn, opts);
  }

  async ping(): Promise<EngineInfo> {
    return this.call('ping', undefined, async () => engineInfoOf(await withTimeout(this.docker.version() as Promise<RawVersion>, PING_TIMEOUT_MS)));
  }

  async inspectImage(ref: string): Promise<ImageInfo | undefined> {
    return this.call<ImageInfo | undefined>(
      'inspect image',
      ref,
      async () => {
        const i = await this.docker.getImage(ref).inspect();
        return { id: i.Id, tags: i.RepoTags ?? [], labels: i.Config?.Labels ?? {}, size: i.Size };
      },
      { tolerate: notFound(undefined) },
    );
  }

  /** Follow a progress stream to its end; reject on an errorDetail line. */
  private follow(stream: NodeJS.ReadableStream, onProgress?: (line: string) => void): Promise<Record<string, any>[]> {
    return new Promise((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (err: Error | null, output: Record<string, any>[]) => {
          if (err) return reject(err);
          const bad = output.find((o) => o.error || o.errorDetail);
          if (bad) return reject(new Error(String(bad.errorDetail?.message ?? bad.error)));
          resolve(output);
        },
        (ev: Record<string, any>) => {
          const line = (ev.stream ?? ev.status ?? '').toString().trimEnd();
          if (line && onProgress) onProgress(line);
        },
      );
    });
  }

  async pullImage(ref: string, onProgress?: (line: string) => void): Promise<void> {
    await this.call('pull', ref, async () => {
      const stream = await this.docker.pull(ref);
      await this.follow(stream, onProgress);
    });
  }

  async buildImage(spec: BuildSpec, onProgress?: (line: string) => void): Promise<ImageInfo> {
    let tail: string[] = [];
    await this.call(
      'build',
      spec.tag,
      async () => {
        const stream = await this.docker.buildImage(tar.pack(spec.contextDir) as unknown as NodeJS.ReadableStream, {
          t: spec.tag,
          dockerfile: spec.dockerfile ?? 'Dockerfile',
          buildargs: spec.buildArgs ?? {},
          labels: spec.labels ?? {},
          rm: true,
          forcerm: true,
        });
        await this.follow(stream, (line) => {
          tail = [...tail.slice(-9), line];
          onProgress?.(line);
        });
      },
      {
        refine: (f, err) =>
          new AppError('BUILD_FAILED', `docker build of ${spec.tag} failed: ${f.message}`, {
            hint: tail.length ? `last build output: ${tail.slice(-3).join(' | ')}` : 'check the Dockerfile and build context',
            cause: err,
          }),
      },
    );
    const img = await this.inspectImage(spec.tag);
    if (!img) throw new AppError('BUILD_FAILED', `docker build of ${spec.tag} reported success but the image is missing`);
    return img;
  }

  async importImage(tarStream: Readable, ref: string, changes: string[] = []): Promise<ImageInfo> {
    const [repo, tag] = splitRef(ref);
    await this.call('import', ref, async () => {
      const stream = await this.docker.importImage(tarStream as unknown as string, { repo, tag, changes });
      await this.follow(stream as NodeJS.ReadableStream);
    });
    const img = await this.inspectImage(ref);
    if (!img) throw new AppError('ENGINE_ERROR', `import of ${ref} reported success but the image is missing`);
    return img;
  }

  async removeImage(ref: string, force = false): Promise<void> {
    await this.call('remove image', ref, () => this.docker.getImage(ref).remove({ force, noprune: false }), { tolerate: notFound(undefined) });
  }

  async listImages(labels: Record<string, string>): Promise<ImageInfo[]> {
    return this.call('list images', undefined, async () => {
      const list = await this.docker.listImages({ filters: { label: labelFilters(labels) } });
      return list.map((i) => ({ id: i.Id, tags: i.RepoTags ?? [], labels: i.Labels ?? {}, size: i.Size }));
    });
  }

  async listContainers(labels: Record<string, string>): Promise<ContainerInfo[]> {
    return this.call('list containers', undefined, async () => {
      const list = await this.docker.listContainers({ all: true, filters: { label: labelFilters(labels) } });
      return (list as unknown as RawContainer[]).map(containerInfoOf);
    });
  }

  async inspectContainer(idOrName: string): Promise<ContainerDetails | undefined> {
    return this.call<ContainerDetails | undefined>(
      'inspect container',
      idOrName,
      async () => {
        const c = await this.docker.getContainer(idOrName).inspect();
        return {
          id: c.Id,
          name: c.Name.replace(/^\//, ''),
          image: c.Config.Image,
          imageId: c.Image,
          state: c.State.Status as ContainerState,
          status: c.State.Status,
          labels: c.Config.Labels ?? {},
          pid: c.State.Pid,
          restartCount: c.RestartCount,
          health: (c.State.Health?.Status ?? 'none') as ContainerDetails['health'],
          exitCode: c.State.ExitCode,
          startedAt: c.State.StartedAt,
          finishedAt: c.State.FinishedAt,
          restartPolicy: (c.HostConfig.RestartPolicy?.Name || 'no') as ContainerDetails['restartPolicy'],
          networks: Object.fromEntries(
            Object.entries(c.NetworkSettings?.Networks ?? {}).flatMap(([net, n]) => (c.State.Running && n?.IPAddress ? [[net, n.IPAddress]] : [])),
          ),
        };
      },
      { tolerate: notFound(undefined) },
    );
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    return this.call(
      'create container',
      spec.name,
      async () => {
        const port = `${spec.containerPort}/tcp`;
        const hc = spec.healthcheck;
        const sec = 1_000_000_000;
        const c = await this.docker.createContainer({
          name: spec.name,
          Image: spec.image,
          Labels: spec.labels,
          Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
          User: spec.user,
          ExposedPorts: { [port]: {} },
          ...(hc
            ? { Healthcheck: { Test: ['CMD', ...hc.test], Interval: hc.intervalS * sec, Timeout: hc.timeoutS * sec, Retries: hc.retries, StartPeriod: hc.startPeriodS * sec } }
            : {}),
          HostConfig: {
            PortBindings: spec.hostPort ? { [port]: [{ HostIp: spec.hostPort.address, HostPort: String(spec.hostPort.port) }] } : {},
            ReadonlyRootfs: spec.readOnlyRootfs,
            Tmpfs: spec.tmpfs,
            CapDrop: spec.capDrop,
            SecurityOpt: spec.securityOpt,
            Memory: spec.memoryMiB * 1024 * 1024,
            MemorySwap: spec.memoryMiB * 1024 * 1024,
            NanoCpus: Math.round(spec.cpus * 1e9),
            PidsLimit: spec.pidsLimit,
            RestartPolicy: { Name: spec.restartPolicy, MaximumRetryCount: 0 },
            Init: spec.init,
            ...(spec.network ? { NetworkMode: spec.network } : {}),
            ...(spec.binds?.length ? { Binds: spec.binds } : {}),
            // type bind through Mounts: a missing source is an error, not a new directory
            ...(spec.secretFiles?.length ? { Mounts: spec.secretFiles.map((f) => ({ Type: 'bind' as const, Source: f.source, Target: f.target, ReadOnly: true })) } : {}),
            ...(spec.extraHosts?.length ? { ExtraHosts: spec.extraHosts } : {}),
          },
          ...(spec.cmd ? { Cmd: spec.cmd } : {}),
          ...(spec.network && spec.networkAliases?.length ? { NetworkingConfig: { EndpointsConfig: { [spec.network]: { Aliases: spec.networkAliases } } } } : {}),
        });
        log.debug({ name: spec.name, id: shortId(c.id) }, 'created');
        return c.id;
      },
      { refine: (f, err) => (f.status === 409 ? nameTakenByContainer(spec.name, err) : undefined) },
    );
  }

  async startContainer(id: string): Promise<void> {
    // 304: already started
    await this.call('start container', id, () => this.docker.getContainer(id).start(), { tolerate: status(304, undefined) });
  }

  async stopContainer(id: string, timeoutS = STOP_GRACE_S): Promise<void> {
    // 304: already stopped; 404: gone
    await this.call('stop container', id, () => this.docker.getContainer(id).stop({ t: timeoutS }), { tolerate: status([304, 404], undefined) });
  }

  async removeContainer(id: string): Promise<void> {
    await this.call('remove container', id, () => this.docker.getContainer(id).remove({ force: true, v: true }), {
      // 404: gone; 409 "removal already in progress": it is going away
      tolerate: (f) => (f.status === 404 || (f.status === 409 && /already in progress/.test(f.message)) ? { value: undefined } : undefined),
    });
  }

  async containerLogs(id: string, tail: number): Promise<string> {
    return this.call('logs', id, async () => {
      const buf = (await this.docker.getContainer(id).logs({ stdout: true, stderr: true, tail, follow: false })) as unknown as Buffer;
      return demuxLogBuffer(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf)));
    });
  }

  async followLogs(id: string, tail: number, out: NodeJS.WritableStream): Promise<{ stop: () => void; done: Promise<void> }> {
    return this.call('follow logs', id, async () => {
      const stream = (await this.docker.getContainer(id).logs({ stdout: true, stderr: true, tail, follow: true })) as unknown as Readable;
      const sink = new PassThrough();
      sink.pipe(out as NodeJS.WritableStream, { end: false });
      this.docker.modem.demuxStream(stream, sink, sink);
      const done = new Promise<void>((resolve) => {
        stream.on('end', resolve);
        stream.on('close', resolve);
        stream.on('error', () => resolve());
      });
      return { stop: () => stream.destroy(), done };
    });
  }

  async ensureNetwork(name: string, labels: Record<string, string>): Promise<string> {
    return this.call('ensure network', name, async () => {
      const found = (await this.docker.listNetworks({ filters: { name: [name] } })).find((n) => n.Name === name);
      if (found) return found.Id;
      const net = await this.docker.createNetwork({ Name: name, Driver: 'bridge', Labels: labels, CheckDuplicate: true });
      return net.id;
    });
  }

  async connectNetwork(network: string, containerId: string, aliases: string[]): Promise<void> {
    await this.call(`connect to ${network}`, containerId, () => this.docker.getNetwork(network).connect({ Container: containerId, EndpointConfig: { Aliases: aliases } }), {
      tolerate: (f) => (/already exists|already attached/i.test(f.message) ? { value: undefined } : undefined),
    });
  }

  async removeNetwork(name: string): Promise<boolean> {
    return this.call(
      'remove network',
      name,
      async () => {
        await this.docker.getNetwork(name).remove();
        return true;
      },
      // absent (404) or still in use (403/409): not removed, and fine
      { tolerate: status([404, 403, 409], false) },
    );
  }

  async *events(labels: Record<string, string>, signal: AbortSignal, sinceMs?: number): AsyncIterable<EngineEvent> {
    if (signal.aborted) return;
    const filters = { type: ['container' as const], event: [...ENGINE_EVENT_KINDS], label: labelFilters(labels) };
    const stream = (await this.call('events', undefined, () =>
      this.docker.getEvents({ filters, ...(sinceMs !== undefined ? { since: Math.floor(sinceMs / 1000) } : {}) }),
    )) as NodeJS.ReadableStream & { destroy(): void };
    const stop = () => stream.destroy();
    signal.addEventListener('abort', stop, { once: true });
    let buf = '';
    try {
      for await (const chunk of stream) {
        buf += chunk.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          const ev = line ? engineEventOf(JSON.parse(line)) : undefined;
          if (ev) yield ev;
        }
      }
    } catch (err) {
      if (!signal.aborted) throw this.wrap(err, 'events');
    } finally {
      signal.removeEventListener('abort', stop);
      stream.destroy();
    }
  }

  async execContainer(id: string, cmd: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }> {
    return this.call(`exec ${cmd[0] ?? ''}`, id, async () => {
      const exec = await this.docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
      const stream = await exec.start({ hijack: true, stdin: false });
      let output = '';
      const sink = new Writable({
        write(chunk: Buffer, _enc, done) {
          output = (output + chunk.toString('utf8')).slice(-4096);
          done();
        },
      });
      this.docker.modem.demuxStream(stream, sink, sink);
      const ended = new Promise<boolean>((resolve) => {
        stream.on('end', () => resolve(true));
        stream.on('close', () => resolve(true));
        stream.on('error', () => resolve(true));
      });
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      const finished = await Promise.race([ended, timedOut]);
      clearTimeout(timer);
      if (!finished) {
        stream.destroy();
        return { exitCode: -1, output };
      }
      const info = await exec.inspect();
      return { exitCode: info.ExitCode ?? -1, output };
    });
  }

  async signalContainer(id: string, signal: string): Promise<void> {
    await this.call(`signal ${signal}`, id, () => this.docker.getContainer(id).kill({ signal }));
  }

  async tagImage(ref: string, newRef: string): Promise<void> {
    const [repo, tag] = splitRef(newRef);
    await this.call(`tag as ${newRef}`, ref, () => this.docker.getImage(ref).tag({ repo, tag }));
  }

  async pushImage(ref: string, onProgress?: (line: string) => void): Promise<string> {
    const [, tag] = splitRef(ref);
    return this.call('push', ref, async () => {
      // the Engine API wants an X-Registry-Auth header even for registries without auth
      const stream = await this.docker.getImage(ref).push({ tag, authconfig: { username: '', password: '', serveraddress: '' } } as never);
      const out = await this.follow(stream as unknown as NodeJS.ReadableStream, onProgress);
      const digest = out.map((o) => o.aux?.Digest as string | undefined).find(Boolean);
      return digest ?? '';
    });
  }

  async swarmInfo(): Promise<{ active: boolean; manager: boolean; nodes: number }> {
    return this.call('swarm info', undefined, async () => {
      const info = (await this.docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean; Nodes?: number } };
      return { active: info.Swarm?.LocalNodeState === 'active', manager: !!info.Swarm?.ControlAvailable, nodes: info.Swarm?.Nodes ?? 0 };
    });
  }

  async serviceTasks(service: string): Promise<{ id: string; state: string; containerId?: string | undefined }[]> {
    return this.call('tasks of', service, async () => {
      const tasks = (await this.docker.listTasks({ filters: { service: [service] } })) as {
        ID: string;
        Status?: { State?: string; ContainerStatus?: { ContainerID?: string } };
      }[];
      return tasks.map((t) => ({ id: t.ID, state: t.Status?.State ?? 'unknown', containerId: t.Status?.ContainerStatus?.ContainerID }));
    });
  }

  async containerMemory(id: string): Promise<number> {
    return (await this.containerStats(id)).memoryBytes;
  }

  async containerStats(id: string): Promise<ContainerStats> {
    return this.call('stats', id, async () => statsOf((await this.docker.getContainer(id).stats({ stream: false })) as DockerStats));
  }

  async deployStack(spec: StackDeploySpec): Promise<void> {
    await this.call('stack deploy', spec.stack, () => dockerStackDeploy(spec, this.env), {
      refine: (f, err) =>
        new AppError('ENGINE_ERROR', `docker stack deploy ${spec.stack} failed: ${f.message}`, {
          hint: 'check the stack file and that this engine is a swarm manager (docker node ls)',
          cause: err,
        }),
    });
  }

  async removeStack(stack: string): Promise<void> {
    await this.call('stack rm', stack, () => dockerStackRemove(stack, this.env), {
      tolerate: (f) => (/Nothing found in stack/i.test(f.message) ? { value: undefined } : undefined),
    });
  }

  async stackServices(stack: string): Promise<ServiceStatus[]> {
    return this.call('stack services', stack, async () => {
      // status=true (API 1.41+) adds ServiceStatus.DesiredTasks, which counts global services' nodes too
      const services = (await this.docker.listServices({ status: true, filters: { label: [`com.docker.stack.namespace=${stack}`] } } as never)) as unknown as RawService[];
      if (services.length === 0) return [];
      const tasks = (await this.docker.listTasks({ filters: { service: services.map((s) => s.ID) } })) as RawTask[];
      return services.map((s) => serviceStatusOf(s, tasks.filter((t) => t.ServiceID === s.ID)));
    });
  }

  async ensureHostNodeImage(ref: string): Promise<ImageInfo> {
    return this.call('offline node image', ref, () => ensureHostNodeImage(this, ref, this.binaries.node));
  }

  async ensureOfflineRouterImage(): Promise<ImageInfo> {
    return this.call('offline router image', undefined, () => ensureOfflineRouterImage(this, this.binaries.nginx));
  }
}

/** A tolerate rule: these HTTP statuses are fine and give `value`. */
/** One line of the Engine API's /events stream as an EngineEvent; undefined for other kinds. Pure. */
export function engineEventOf(m: { Type?: string; Action?: string; Actor?: { ID?: string; Attributes?: Record<string, string> }; timeNano?: number; time?: number }): EngineEvent | undefined {
  const kind = (m.Action ?? '').split(':')[0] as EngineEvent['kind'];
  if (m.Type !== 'container' || !ENGINE_EVENT_KINDS.includes(kind) || !m.Actor?.ID) return undefined;
  const attrs = { ...(m.Actor.Attributes ?? {}) };
  const exit = attrs.exitCode;
  return { kind, id: m.Actor.ID, labels: attrs, at: m.timeNano ? Math.floor(m.timeNano / 1e6) : (m.time ?? 0) * 1000, ...(exit !== undefined ? { exitCode: Number(exit) } : {}) };
}

function status<T>(codes: number | number[], value: T): (f: EngineFault) => { value: T } | undefined {
  const set = new Set(Array.isArray(codes) ? codes : [codes]);
  return (f) => (f.status !== undefined && set.has(f.status) ? { value } : undefined);
}
const notFound = <T>(value: T) => status(404, value);

function nameTakenByContainer(name: string, err: unknown): AppError {
  return new AppError('NAME_TAKEN', `container name ${name} is already used by a container outside this workspace`, {
    hint: `remove it (docker rm -f ${name}) or set a project name in nexus.yaml (project: myproj) to namespace this workspace`,
    cause: err,
  });
}

interface RawService {
  ID: string;
  Spec?: { Name?: string; Mode?: { Replicated?: { Replicas?: number }; Global?: object } };
  ServiceStatus?: { DesiredTasks?: number };
}
interface RawTask {
  ID: string;
  ServiceID: string;
  CreatedAt?: string;
  DesiredState?: string;
  Status?: { State?: string; Err?: string };
}

/** The engine's service + tasks -> our ServiceStatus. Pure. */
export function serviceStatusOf(s: RawService, tasks: RawTask[]): ServiceStatus {
  const mode = s.Spec?.Mode?.Global ? 'global' : 'replicated';
  const running = tasks.filter((t) => t.DesiredState === 'running').length;
  const desiredTasks = s.ServiceStatus?.DesiredTasks ?? (mode === 'replicated' ? (s.Spec?.Mode?.Replicated?.Replicas ?? 1) : Math.max(1, running));
  return {
    name: s.Spec?.Name ?? s.ID,
    mode,
    desiredTasks,
    tasks: tasks.map((t) => ({
      id: t.ID,
      state: (t.Status?.State ?? 'new') as TaskState,
      desiredState: (t.DesiredState ?? 'running') as TaskState,
      error: t.Status?.Err || undefined,
      createdAt: t.CreatedAt ? Date.parse(t.CreatedAt) : 0,
    })),
  };
}

/** "repo:tag" -> [repo, tag] (tag defaults to latest; registry ports are kept in repo). */
export function splitRef(ref: string): [string, string] {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return [ref.slice(0, colon), ref.slice(colon + 1)];
  return [ref, 'latest'];
}

/** The fields of a Docker stats sample this tool reads (GET /containers/{id}/stats?stream=false). */
export interface DockerStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number; percpu_usage?: number[] }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: { inactive_file?: number; total_inactive_file?: number } };
}

/**
 * CPU and memory of a stats sample, computed as the docker CLI does (cli/command/container/stats_helpers.go):
 * CPU% = (cpu delta / system delta) * online CPUs * 100; memory = usage - inactive_file (cgroup v2)
 * or - total_inactive_file (cgroup v1).
 */
export function statsOf(s: DockerStats): ContainerStats {
  const cpu = s.cpu_stats ?? {};
  const pre = s.precpu_stats ?? {};
  const cpuDelta = (cpu.cpu_usage?.total_usage ?? 0) - (pre.cpu_usage?.total_usage ?? 0);
  const sysDelta = (cpu.system_cpu_usage ?? 0) - (pre.system_cpu_usage ?? 0);
  const cpus = cpu.online_cpus ?? cpu.cpu_usage?.percpu_usage?.length ?? 1;
  const cpuPercent = cpuDelta > 0 && sysDelta > 0 ? (cpuDelta / sysDelta) * cpus * 100 : 0;
  const m = s.memory_stats ?? {};
  const cache = m.stats?.inactive_file ?? m.stats?.total_inactive_file ?? 0;
  return { cpuPercent: Math.round(cpuPercent * 100) / 100, memoryBytes: Math.max(0, (m.usage ?? 0) - cache), memoryLimitBytes: m.limit ?? 0 };
}
