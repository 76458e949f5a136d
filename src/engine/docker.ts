import { PassThrough, type Readable } from 'node:stream';
import Docker from 'dockerode';
import tar from 'tar-fs';
import { AppError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import type { BuildSpec, ContainerDetails, ContainerInfo, ContainerSpec, ContainerState, Engine, EngineInfo, ImageInfo } from './engine.js';

const log = logger('engine');
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ETIMEDOUT', 'EHOSTUNREACH', 'ECONNRESET', 'EPIPE']);
const PING_TIMEOUT_MS = 5000;

/** Where dockerode will connect: DOCKER_HOST, else the default socket (Docker's own rule). */
export function engineEndpoint(env: Record<string, string | undefined> = process.env): string {
  return env.DOCKER_HOST || 'unix:///var/run/docker.sock';
}

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

function labelFilters(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`);
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
 * The dockerode implementation of Engine. Every call logs start/failure with the short id under
 * `nexus:engine` and rethrows as AppError with context.
 */
export class DockerEngine implements Engine {
  readonly endpoint: string;
  private readonly docker: Docker;

  constructor(opts: { docker?: Docker; env?: Record<string, string | undefined> } = {}) {
    const env = opts.env ?? process.env;
    this.endpoint = engineEndpoint(env);
    // TLS over tcp: let docker-modem read DOCKER_CERT_PATH itself from the process environment
    this.docker = opts.docker ?? (env.DOCKER_HOST?.startsWith('tcp:') && env.DOCKER_TLS_VERIFY ? new Docker() : new Docker(dockerOptions(env)));
  }

  /** Map a dockerode/socket error to AppError. */
  private wrap(err: unknown, what: string): AppError {
    if (err instanceof AppError) return err;
    const e = err as { code?: string; statusCode?: number; json?: { message?: string }; reason?: string };
    if (e.code && UNREACHABLE_CODES.has(e.code)) {
      const hint =
        e.code === 'EACCES'
          ? 'run as root or add your user to the docker group (then log in again)'
          : 'start Docker (sudo bash scripts/ensure-docker.sh, or systemctl start docker), or set DOCKER_HOST';
      return new AppError('ENGINE_UNREACHABLE', `cannot reach the Docker engine at ${this.endpoint} (${e.code})`, { hint, cause: err });
    }
    const detail = e.json?.message ?? messageOf(err);
    return new AppError('ENGINE_ERROR', `${what}: ${detail.trim()}`, {
      hint: 'see the Docker engine message above',
      cause: err,
      details: e.statusCode ? { statusCode: e.statusCode } : undefined,
    });
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    log.debug({ op: what }, 'start');
    try {
      const out = await fn();
      log.debug({ op: what }, 'ok');
      return out;
    } catch (err) {
      log.debug({ op: what, err: messageOf(err) }, 'failed');
      throw this.wrap(err, what);
    }
  }

  async ping(): Promise<EngineInfo> {
    return this.call('ping', async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), PING_TIMEOUT_MS);
      });
      try {
        const v = await Promise.race([this.docker.version(), timeout]);
        return { version: v.Version, apiVersion: v.ApiVersion, os: v.Os, arch: v.Arch };
      } finally {
        clearTimeout(timer);
      }
    });
  }

  async inspectImage(ref: string): Promise<ImageInfo | undefined> {
    try {
      const i = await this.docker.getImage(ref).inspect();
      return { id: i.Id, tags: i.RepoTags ?? [], labels: i.Config?.Labels ?? {}, size: i.Size };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw this.wrap(err, `inspect image ${ref}`);
    }
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
    await this.call(`pull ${ref}`, async () => {
      const stream = await this.docker.pull(ref);
      await this.follow(stream, onProgress);
    });
  }

  async buildImage(spec: BuildSpec, onProgress?: (line: string) => void): Promise<ImageInfo> {
    log.debug({ tag: spec.tag }, 'build start');
    let tail: string[] = [];
    try {
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
    } catch (err) {
      const wrapped = this.wrap(err, `build ${spec.tag}`);
      if (wrapped.code === 'ENGINE_UNREACHABLE') throw wrapped;
      throw new AppError('BUILD_FAILED', `docker build of ${spec.tag} failed: ${messageOf(err).trim()}`, {
        hint: tail.length ? `last build output: ${tail.slice(-3).join(' | ')}` : 'check the Dockerfile and build context',
        cause: err,
      });
    }
    const img = await this.inspectImage(spec.tag);
    if (!img) throw new AppError('BUILD_FAILED', `docker build of ${spec.tag} reported success but the image is missing`);
    log.debug({ tag: spec.tag, id: img.id.slice(7, 19) }, 'build ok');
    return img;
  }

  async importImage(tarStream: Readable, ref: string, changes: string[] = []): Promise<ImageInfo> {
    const [repo, tag] = splitRef(ref);
    await this.call(`import ${ref}`, async () => {
      const stream = await this.docker.importImage(tarStream as unknown as string, { repo, tag, changes });
      await this.follow(stream as NodeJS.ReadableStream);
    });
    const img = await this.inspectImage(ref);
    if (!img) throw new AppError('ENGINE_ERROR', `import of ${ref} reported success but the image is missing`);
    return img;
  }

  async removeImage(ref: string, force = false): Promise<void> {
    try {
      await this.docker.getImage(ref).remove({ force, noprune: false });
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return;
      throw this.wrap(err, `remove image ${ref}`);
    }
  }

  async listImages(labels: Record<string, string>): Promise<ImageInfo[]> {
    return this.call('list images', async () => {
      const list = await this.docker.listImages({ filters: { label: labelFilters(labels) } });
      return list.map((i) => ({ id: i.Id, tags: i.RepoTags ?? [], labels: i.Labels ?? {}, size: i.Size }));
    });
  }

  async listContainers(labels: Record<string, string>): Promise<ContainerInfo[]> {
    return this.call('list containers', async () => {
      const list = await this.docker.listContainers({ all: true, filters: { label: labelFilters(labels) } });
      return list.map((c) => ({
        id: c.Id,
        name: (c.Names[0] ?? '').replace(/^\//, ''),
        image: c.Image,
        imageId: c.ImageID,
        state: c.State as ContainerState,
        status: c.Status,
        labels: c.Labels ?? {},
      }));
    });
  }

  async inspectContainer(idOrName: string): Promise<ContainerDetails | undefined> {
    try {
      const c = await this.docker.getContainer(idOrName).inspect();
      const health = (c.State.Health?.Status ?? 'none') as ContainerDetails['health'];
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
        health,
        exitCode: c.State.ExitCode,
        startedAt: c.State.StartedAt,
      };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw this.wrap(err, `inspect container ${idOrName}`);
    }
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    try {
      return await this.createContainerRaw(spec);
    } catch (err) {
      const sc = ((err as AppError).cause as { statusCode?: number } | undefined)?.statusCode;
      if (sc === 409) {
        throw new AppError('NAME_TAKEN', `container name ${spec.name} is already used by a container outside this workspace`, {
          hint: `remove it (docker rm -f ${spec.name}) or set a project name in nexus.yaml (project: myproj) to namespace this workspace`,
          cause: err,
        });
      }
      throw err;
    }
  }

  private async createContainerRaw(spec: ContainerSpec): Promise<string> {
    return this.call(`create container ${spec.name}`, async () => {
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
        },
        ...(spec.cmd ? { Cmd: spec.cmd } : {}),
        ...(spec.network && spec.networkAliases?.length ? { NetworkingConfig: { EndpointsConfig: { [spec.network]: { Aliases: spec.networkAliases } } } } : {}),
      });
      log.debug({ name: spec.name, id: c.id.slice(0, 12) }, 'created');
      return c.id;
    });
  }

  async startContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (err) {
      const sc = (err as { statusCode?: number }).statusCode;
      if (sc === 304) return; // already started
      const msg = (err as { json?: { message?: string } }).json?.message ?? messageOf(err);
      if (/port is already allocated|address already in use/i.test(msg)) {
        throw new AppError('PORT_IN_USE', `cannot start container ${id.slice(0, 12)}: its host port is taken (${msg.trim()})`, {
          hint: 'free the port, or remove the agent and create it again to get another port',
          cause: err,
        });
      }
      throw this.wrap(err, `start container ${id.slice(0, 12)}`);
    }
  }

  async stopContainer(id: string, timeoutS = 10): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: timeoutS });
    } catch (err) {
      const sc = (err as { statusCode?: number }).statusCode;
      if (sc === 304 || sc === 404) return;
      throw this.wrap(err, `stop container ${id.slice(0, 12)}`);
    }
  }

  async removeContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      const sc = (err as { statusCode?: number }).statusCode;
      if (sc === 404) return;
      // 409 "removal already in progress" is fine too: it is going away.
      if (sc === 409 && /already in progress/.test(messageOf(err))) return;
      throw this.wrap(err, `remove container ${id.slice(0, 12)}`);
    }
  }

  async containerLogs(id: string, tail: number): Promise<string> {
    return this.call(`logs ${id.slice(0, 12)}`, async () => {
      const buf = (await this.docker.getContainer(id).logs({ stdout: true, stderr: true, tail, follow: false })) as unknown as Buffer;
      return demuxLogBuffer(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf)));
    });
  }

  async followLogs(id: string, tail: number, out: NodeJS.WritableStream): Promise<{ stop: () => void; done: Promise<void> }> {
    return this.call(`follow logs ${id.slice(0, 12)}`, async () => {
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
    return this.call(`network ${name}`, async () => {
      const found = (await this.docker.listNetworks({ filters: { name: [name] } })).find((n) => n.Name === name);
      if (found) return found.Id;
      const net = await this.docker.createNetwork({ Name: name, Driver: 'bridge', Labels: labels, CheckDuplicate: true });
      return net.id;
    });
  }

  async connectNetwork(network: string, containerId: string, aliases: string[]): Promise<void> {
    try {
      await this.docker.getNetwork(network).connect({ Container: containerId, EndpointConfig: { Aliases: aliases } });
    } catch (err) {
      if (/already exists|already attached/i.test(messageOf(err) + JSON.stringify((err as { json?: unknown }).json ?? ''))) return;
      throw this.wrap(err, `connect ${containerId.slice(0, 12)} to ${network}`);
    }
  }

  async removeNetwork(name: string): Promise<boolean> {
    try {
      await this.docker.getNetwork(name).remove();
      return true;
    } catch (err) {
      const sc = (err as { statusCode?: number }).statusCode;
      if (sc === 404 || sc === 403 || sc === 409) return false;
      throw this.wrap(err, `remove network ${name}`);
    }
  }

  async signalContainer(id: string, signal: string): Promise<void> {
    await this.call(`signal ${id.slice(0, 12)} ${signal}`, () => this.docker.getContainer(id).kill({ signal }));
  }

  async tagImage(ref: string, newRef: string): Promise<void> {
    const [repo, tag] = splitRef(newRef);
    await this.call(`tag ${ref} ${newRef}`, () => this.docker.getImage(ref).tag({ repo, tag }));
  }

  async pushImage(ref: string, onProgress?: (line: string) => void): Promise<string> {
    const [, tag] = splitRef(ref);
    return this.call(`push ${ref}`, async () => {
      // the Engine API wants an X-Registry-Auth header even for registries without auth
      const stream = await this.docker.getImage(ref).push({ tag, authconfig: { username: '', password: '', serveraddress: '' } } as never);
      const out = await this.follow(stream as unknown as NodeJS.ReadableStream, onProgress);
      const digest = out.map((o) => o.aux?.Digest as string | undefined).find(Boolean);
      return digest ?? '';
    });
  }

  async swarmInfo(): Promise<{ active: boolean; manager: boolean; nodes: number }> {
    return this.call('swarm info', async () => {
      const info = (await this.docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean; Nodes?: number } };
      return { active: info.Swarm?.LocalNodeState === 'active', manager: !!info.Swarm?.ControlAvailable, nodes: info.Swarm?.Nodes ?? 0 };
    });
  }

  async serviceTasks(service: string): Promise<{ id: string; state: string; containerId?: string | undefined }[]> {
    return this.call(`tasks of ${service}`, async () => {
      const tasks = (await this.docker.listTasks({ filters: { service: [service] } })) as {
        ID: string;
        Status?: { State?: string; ContainerStatus?: { ContainerID?: string } };
      }[];
      return tasks.map((t) => ({ id: t.ID, state: t.Status?.State ?? 'unknown', containerId: t.Status?.ContainerStatus?.ContainerID }));
    });
  }

  async containerMemory(id: string): Promise<number> {
    return this.call(`stats ${id.slice(0, 12)}`, async () => {
      const s = (await this.docker.getContainer(id).stats({ stream: false })) as any;
      const m = s.memory_stats ?? {};
      const st = m.stats ?? {};
      // docker CLI: usage - inactive_file (cgroup v2) or - total_inactive_file (cgroup v1)
      const cache = st.inactive_file ?? st.total_inactive_file ?? 0;
      return Math.max(0, (m.usage ?? 0) - cache);
    });
  }
}

/** "repo:tag" -> [repo, tag] (tag defaults to latest; registry ports are kept in repo). */
export function splitRef(ref: string): [string, string] {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return [ref.slice(0, colon), ref.slice(colon + 1)];
  return [ref, 'latest'];
}
