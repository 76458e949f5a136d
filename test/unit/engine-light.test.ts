import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DockerEngine } from '../../src/engine/docker.js';
import type { Engine } from '../../src/engine/engine.js';
import { LightEngine, lightTarget } from '../../src/engine/light.js';
import { openDockerEngine } from '../../src/engine/open.js';

// A fake Docker engine on a unix socket (and on a loopback TCP port) speaking the Engine API's
// shapes for GET /version and GET /containers/json. The light client and DockerEngine (dockerode)
// are run against the same answers: they must give the same values and the same errors.

const RUNNING = {
  Id: 'a'.repeat(64),
  Names: ['/nexus-agent-data'],
  Image: 'nexus-agent-data:latest',
  ImageID: `sha256:${'b'.repeat(64)}`,
  State: 'running',
  Status: 'Up 3 minutes (healthy)',
  Labels: { 'dev.nexus-delta.agent': 'data', 'dev.nexus-delta.workspace': 'w1' },
  NetworkSettings: { Networks: { bridge: { IPAddress: '172.17.0.5' }, none: { IPAddress: '' } } },
};
const CREATED = { Id: 'c'.repeat(64), Names: ['/nexus-agent-other'], Image: 'x', ImageID: 'sha256:x', State: 'created', Status: 'Created', Labels: null, NetworkSettings: { Networks: {} } };
const VERSION = { Version: '27.3.1', ApiVersion: '1.47', Os: 'linux', Arch: 'amd64', KernelVersion: '6.1' };

let dir: string;
let socketPath: string;
const servers: Server[] = [];
let tcpPort = 0;
let seen: { method: string; path: string; query: Record<string, string> }[] = [];
/** What the fake engine answers next: status and body (a value is sent as JSON, a string as it is). */
let answer: ((req: IncomingMessage) => { status: number; body: unknown }) | undefined;

function fakeEngine(): Server {
  return createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://docker');
    seen.push({ method: req.method ?? '', path: u.pathname, query: Object.fromEntries(u.searchParams) });
    const a = answer?.(req);
    if (a) {
      res.writeHead(a.status, { 'content-type': typeof a.body === 'string' ? 'text/plain' : 'application/json' });
      return res.end(typeof a.body === 'string' ? a.body : JSON.stringify(a.body));
    }
    if (req.method === 'GET' && u.pathname === '/version') return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(VERSION));
    if (req.method === 'GET' && u.pathname === '/containers/json') {
      const labels: string[] = JSON.parse(u.searchParams.get('filters') ?? '{}').label ?? [];
      const all = u.searchParams.get('all') === 'true';
      const list = [RUNNING, CREATED].filter((c) => (all || c.State === 'running') && labels.every((l) => `${l.split('=')[0]}=${(c.Labels as Record<string, string> | null)?.[l.split('=')[0]!]}` === l));
      return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(list));
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'page not found' }));
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nexus-light-engine-'));
  socketPath = join(dir, 'docker.sock');
  const unix = fakeEngine();
  const tcp = fakeEngine();
  servers.push(unix, tcp);
  await new Promise<void>((resolve) => unix.listen(socketPath, resolve));
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  tcpPort = (tcp.address() as { port: number }).port;
});
afterAll(async () => {
  for (const s of servers) await new Promise<void>((resolve) => s.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  seen = [];
  answer = undefined;
});

describe('lightTarget: which DOCKER_HOST the light client speaks to (the rest stays with dockerode)', () => {
  it('reads the default socket, unix:// and plain tcp://; not TLS, ssh or anything else', () => {
    expect(lightTarget({})).toEqual({ socketPath: '/var/run/docker.sock' });
    expect(lightTarget({ DOCKER_HOST: '' })).toEqual({ socketPath: '/var/run/docker.sock' });
    expect(lightTarget({ DOCKER_HOST: 'unix:///run/user/1000/docker.sock' })).toEqual({ socketPath: '/run/user/1000/docker.sock' });
    expect(lightTarget({ DOCKER_HOST: 'tcp://10.0.0.2:2380' })).toEqual({ host: '10.0.0.2', port: 2380 });
    expect(lightTarget({ DOCKER_HOST: 'tcp://docker' })).toEqual({ host: 'docker', port: 2375 });
    expect(lightTarget({ DOCKER_HOST: 'tcp://[::1]:2380' })).toEqual({ host: '::1', port: 2380 });
    expect(lightTarget({ DOCKER_HOST: 'tcp://10.0.0.2:2376', DOCKER_TLS_VERIFY: '1' })).toBeUndefined();
    expect(lightTarget({ DOCKER_HOST: 'ssh://me@host' })).toBeUndefined();
    expect(lightTarget({ DOCKER_HOST: 'npipe:////./pipe/docker_engine' })).toBeUndefined();
  });
});

describe('LightEngine: the read-only calls of quick commands, over node:http', () => {
  const labels = { 'dev.nexus-delta.workspace': 'w1' };
  const pair = (): [Engine, Pick<Engine, 'ping' | 'listContainers'>] => [
    new DockerEngine({ env: { DOCKER_HOST: `unix://${socketPath}` } }),
    new LightEngine(`unix://${socketPath}`, { socketPath }),
  ];

  it('lists containers by label (all states) exactly as DockerEngine does, with the same request', async () => {
    const [docker, light] = pair();
    const viaDockerode = await docker.listContainers(labels);
    const dockerodeRequest = seen.splice(0);
    const viaLight = await light.listContainers(labels);
    expect(viaLight).toEqual(viaDockerode);
    expect(seen).toEqual(dockerodeRequest);
    expect(seen).toEqual([{ method: 'GET', path: '/containers/json', query: { all: 'true', filters: JSON.stringify({ label: ['dev.nexus-delta.workspace=w1'] }) } }]);
    expect(viaLight).toEqual([
      {
        id: RUNNING.Id,
        name: 'nexus-agent-data',
        image: RUNNING.Image,
        imageId: RUNNING.ImageID,
        state: 'running',
        status: RUNNING.Status,
        labels: RUNNING.Labels,
        health: 'healthy',
        addresses: { bridge: '172.17.0.5' },
      },
    ]);
    expect(await light.listContainers({})).toEqual(await docker.listContainers({}));
    expect((await light.listContainers({})).map((c) => [c.name, c.labels, c.health])).toEqual([
      ['nexus-agent-data', RUNNING.Labels, 'healthy'],
      ['nexus-agent-other', {}, 'none'],
    ]);
  });

  it('pings with the engine version, as DockerEngine does', async () => {
    const [docker, light] = pair();
    expect(await light.ping()).toEqual({ version: '27.3.1', apiVersion: '1.47', os: 'linux', arch: 'amd64' });
    expect(await light.ping()).toEqual(await docker.ping());
  });

  it('fails with the same AppError as DockerEngine when the engine refuses (ENGINE_ERROR with its message and status)', async () => {
    const [docker, light] = pair();
    answer = () => ({ status: 500, body: { message: 'invalid filter' } });
    const viaDockerode = await docker.listContainers(labels).catch((e: unknown) => e);
    const viaLight = await light.listContainers(labels).catch((e: unknown) => e);
    expect(viaLight).toMatchObject({ code: 'ENGINE_ERROR', message: 'list containers: invalid filter', details: { statusCode: 500 } });
    expect(pick(viaLight)).toEqual(pick(viaDockerode));
    answer = () => ({ status: 400, body: 'bad filter text' });
    expect(pick(await light.listContainers(labels).catch((e: unknown) => e))).toEqual(pick(await docker.listContainers(labels).catch((e: unknown) => e)));
    answer = () => ({ status: 500, body: { message: 'daemon is shutting down' } });
    expect(pick(await light.ping().catch((e: unknown) => e))).toEqual(pick(await docker.ping().catch((e: unknown) => e)));
  });

  it('fails with ENGINE_UNREACHABLE naming the endpoint when nothing listens, as DockerEngine does', async () => {
    const gone = join(dir, 'absent.sock');
    const docker = new DockerEngine({ env: { DOCKER_HOST: `unix://${gone}` } });
    const light = new LightEngine(`unix://${gone}`, { socketPath: gone });
    const viaLight = await light.listContainers(labels).catch((e: unknown) => e);
    expect(viaLight).toMatchObject({ code: 'ENGINE_UNREACHABLE', message: `cannot reach the Docker engine at unix://${gone} (ENOENT)` });
    expect(pick(viaLight)).toEqual(pick(await docker.listContainers(labels).catch((e: unknown) => e)));
    expect(pick(await light.ping().catch((e: unknown) => e))).toEqual(pick(await docker.ping().catch((e: unknown) => e)));
  });
});

describe('openDockerEngine: light calls through the lazy engine, honouring DOCKER_HOST', () => {
  it('lists and pings over a unix socket and over plain tcp', async () => {
    for (const DOCKER_HOST of [`unix://${socketPath}`, `tcp://127.0.0.1:${tcpPort}`]) {
      const engine = openDockerEngine({ DOCKER_HOST });
      expect(engine.endpoint).toBe(DOCKER_HOST);
      expect((await engine.listContainers({ 'dev.nexus-delta.agent': 'data' })).map((c) => c.name)).toEqual(['nexus-agent-data']);
      expect(await engine.ping()).toMatchObject({ version: '27.3.1' });
    }
  });

  it('still answers the other calls through dockerode', async () => {
    answer = (req) => (req.url?.startsWith('/containers/nexus-agent-data/json') ? { status: 404, body: { message: 'No such container: nexus-agent-data' } } : undefined)!;
    const engine = openDockerEngine({ DOCKER_HOST: `unix://${socketPath}` });
    expect(await engine.inspectContainer('nexus-agent-data')).toBeUndefined();
    expect(seen.map((s) => s.path)).toEqual(['/containers/nexus-agent-data/json']);
  });
});

/** The fields of an AppError a user sees. */
function pick(e: unknown): unknown {
  const a = e as { code?: string; message?: string; hint?: string; details?: unknown; exitCode?: number };
  return { code: a.code, message: a.message, hint: a.hint, details: a.details, exitCode: a.exitCode };
}
