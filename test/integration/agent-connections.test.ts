import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { loadConfig, type Config } from '../../src/config/config.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { issueAgentToken } from '../../src/fleet/agent-tokens.js';
import { LocalRegistry } from '../../src/registry/local.js';
import { createManager, type Manager } from '../../src/server/manager.js';
import { BOOTSTRAP } from '../helpers/manager.js';
import { eventually } from '../helpers/wait.js';

// Agents dial the manager (/ws/agent) over real sockets: wscat sends a HELLO by hand, 100 agents
// run as real runtime links in 10 child processes, the manager is closed and built again on the
// same port, and commands fan out over the connections. The Docker engine is not needed (FakeEngine):
// nothing here starts a container. Records reserve ports 9561-9661 in the registry only; no port
// but the manager's (OS-assigned) is ever bound.
const execFileP = promisify(execFile);
const AGENTS = 100;
const CHILDREN = 10;
const admin = { authorization: `Bearer ${BOOTSTRAP}` };

let dir: string;
let config: Config;
let m: Manager;
let port: number;
const tokens = new Map<string, string>();
const children: ChildProcess[] = [];

/** A manager over the test workspace with 1 s heartbeats, built but not listening. */
function buildManager(): Promise<Manager> {
  return createManager({
    config,
    env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP },
    engine: new FakeEngine(),
    snapshotTtlMs: 200,
    limits: { api: { perMinute: 100_000 } },
    connections: { heartbeatIntervalS: 1, helloTimeoutMs: 2000 },
  });
}

const api = async (method: 'GET' | 'POST', url: string, body?: unknown) => {
  const r = await m.app.inject({ method, url: `/api/v1${url}`, headers: admin, ...(body !== undefined ? { payload: body as object } : {}) });
  return { status: r.statusCode, body: r.json() };
};
const online = async () => (await api('GET', '/connections')).body.connections.filter((c: { state: string }) => c.state === 'online');

/** wscat (the CLI the source documents use) connects, sends `frames` and waits `waitS`; returns its stdout. */
async function wscat(frames: string[], waitS: number): Promise<string> {
  const args = ['wscat', '--no-color', '-c', `ws://127.0.0.1:${port}/ws/agent`, ...frames.flatMap((f) => ['-x', f]), '-w', String(waitS)];
  const r = await execFileP('npx', args, { timeout: 30_000 }).catch((e: { stdout?: string; stderr?: string }) => ({ stdout: `${e.stdout ?? ''}${e.stderr ?? ''}` }));
  return r.stdout;
}

/**
 * How the manager closes a socket that sent `frame` first (the `ws` client: wscat prints close codes
 * only on a terminal, never with -x or a piped stdin). Resolves with the close code and reason and
 * whatever frames came before.
 */
function refusal(frame: string): Promise<{ code: number; reason: string; frames: string[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/agent`);
    const frames: string[] = [];
    ws.on('open', () => ws.send(frame));
    ws.on('message', (d) => frames.push(d.toString()));
    ws.on('error', reject);
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString(), frames }));
  });
}

const hello = (id: string, token: string) => JSON.stringify({ type: 'hello', agent_id: id, site: 'test-site', version: '1.0.0', capabilities: ['alpha'], auth_token: token });
const agentId = (i: number) => `conn-agent-${i}`;
const IDLE = 'conn-idle';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nexus-connections-'));
  config = loadConfig(dir, { NEXUS_OFFLINE: 'always' });
  const registry = new LocalRegistry(dir);
  // the 100 agents, and one more that never connects
  for (const [i, id] of [...Array.from({ length: AGENTS }, (_, i) => [i, agentId(i)] as const), [AGENTS, IDLE] as const]) {
    await registry.create(
      { name: id, slug: id, description: 'connection test', capabilities: [i % 2 ? 'beta' : 'alpha'], category: 'general', model: 'none', version: '1.0.0' },
      { range: { from: 9561, to: 9661 }, isHostPortFree: async () => true },
    );
    tokens.set(id, await issueAgentToken({ config, registry }, id));
  }
  await registry.close();
  m = await buildManager();
  await m.app.listen({ host: '127.0.0.1', port: 0 });
  port = (m.app.server.address() as { port: number }).port;
});

afterAll(async () => {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  await m?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('HELLO by hand (wscat)', () => {
  it('a HELLO with the agent token gets a welcome with a connection id and the heartbeat interval', async () => {
    const out = await wscat([hello(agentId(0), tokens.get(agentId(0))!)], 1);
    const line = out.split('\n').find((l) => l.includes('"welcome"'));
    expect(line, out).toBeDefined();
    const welcome = JSON.parse(line!.slice(line!.indexOf('{')));
    expect(welcome).toEqual({ type: 'welcome', connection_id: expect.stringMatching(/^[0-9a-f-]{36}$/), heartbeat_interval_s: 1 });
  });

  it('a bad token is refused with 4401, a malformed HELLO with 4400, and neither gets a welcome', async () => {
    const badToken = hello(agentId(0), `nxa_${'A'.repeat(43)}`);
    // by hand: wscat gets no welcome
    expect(await wscat([badToken], 1)).not.toContain('welcome');
    expect(await refusal(badToken)).toEqual({ code: 4401, reason: 'unknown agent or bad token', frames: [] });
    expect(await refusal(hello('no-such-agent', tokens.get(agentId(0))!))).toMatchObject({ code: 4401, frames: [] });
    const extra = await refusal(JSON.stringify({ ...JSON.parse(hello(agentId(0), tokens.get(agentId(0))!)), extra: 1 }));
    expect(extra).toMatchObject({ code: 4400, frames: [] });
    expect(extra.reason).toContain('malformed HELLO');
    expect(await refusal('not json')).toMatchObject({ code: 4400, frames: [] });
  });

  it('an agent that stops sending heartbeats is marked offline after three intervals', async () => {
    const id = agentId(1);
    await wscat([hello(id, tokens.get(id)!)], 5);
    const view = (await api('GET', '/connections')).body.connections.find((c: { agent: string }) => c.agent === id);
    expect(view).toMatchObject({ agent: id, state: 'offline', site: 'test-site' });
    // wscat held the socket open for 5 s without heartbeats (interval 1 s): the manager ended it
    expect(view.offline_reason).toBe('missed 3 heartbeats');
  });
});

describe('100 agents connected at once', () => {
  it('all connect; a command to chosen agents and one to a capability collect each result', async () => {
    const per = AGENTS / CHILDREN;
    for (let c = 0; c < CHILDREN; c++) {
      const list = Array.from({ length: per }, (_, k) => c * per + k).map((i) => ({ id: agentId(i), token: tokens.get(agentId(i))!, capabilities: [i % 2 ? 'beta' : 'alpha'] }));
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/connections/agents.ts'], {
        env: { ...process.env, MANAGER_URL: `http://127.0.0.1:${port}`, AGENTS: JSON.stringify(list), NEXUS_RECONNECT_INTERVAL_MS: '250' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
    }
    await eventually(async () => ((await online()).length === AGENTS ? true : undefined), 60_000, 200);
    expect(new Set((await online()).map((c: { connection_id: string }) => c.connection_id)).size).toBe(AGENTS);

    const chosen = [agentId(3), agentId(42), agentId(77)];
    const sent = await api('POST', '/commands', { verb: 'execute', args: { tool_name: 'echo', parameters: { text: 'hi' } }, agent_targets: chosen, priority: 'high' });
    expect(sent.status).toBe(202);
    const done = await eventually(async () => {
      const v = (await api('GET', `/commands/${sent.body.command_id}`)).body;
      return v.status === 'succeeded' ? v : undefined;
    }, 10_000, 50);
    expect(done.targets.map((t: { agent: string; via: string; result: unknown }) => [t.agent, t.via, t.result])).toEqual(chosen.map((a) => [a, 'connection', { agent: a, text: 'hi' }]));

    const byCap = await api('POST', '/commands', { verb: 'get_system_info', capability: 'beta' });
    expect(byCap.status).toBe(202);
    const capDone = await eventually(async () => {
      const v = (await api('GET', `/commands/${byCap.body.command_id}`)).body;
      return v.status === 'succeeded' ? v : undefined;
    }, 10_000, 50);
    expect(capDone.targets).toHaveLength(AGENTS / 2);
    for (const t of capDone.targets) expect(t.result).toMatchObject({ agent: t.agent, capabilities: ['beta'], tools: ['echo'] });
  });

  it('after the manager restarts on the same port all reconnect, and commands queued meanwhile are delivered', async () => {
    await m.close();
    const down = Date.now();
    m = await buildManager();
    // queued before the new manager listens: nobody can be connected yet
    const targets = [agentId(5), agentId(6), agentId(99)];
    const queued = await api('POST', '/commands', { verb: 'get_telemetry', agent_targets: targets, ttl_s: 60 });
    expect(queued.status).toBe(202);
    expect(queued.body.status).toBe('pending');
    expect(queued.body.targets.map((t: { status: string }) => t.status)).toEqual(['waiting', 'waiting', 'waiting']);
    await m.app.listen({ host: '127.0.0.1', port });
    const up = Date.now();
    await eventually(async () => ((await online()).length === AGENTS ? true : undefined), 60_000, 100);
    console.log(`reconnect: ${AGENTS} agents back ${Date.now() - up} ms after the manager listened again (${Date.now() - down} ms after it closed)`);
    const delivered = await eventually(async () => {
      const v = (await api('GET', `/commands/${queued.body.command_id}`)).body;
      return v.status === 'succeeded' ? v : undefined;
    }, 10_000, 50);
    for (const t of delivered.targets) {
      expect(t.via).toBe('connection');
      expect(t.result).toMatchObject({ memory_rss_bytes: expect.any(Number), cpu_percent: expect.any(Number), event_loop_lag_ms: expect.any(Number), tool_calls: expect.any(Object) });
    }
  });

  it('a command to an agent that never connects expires with a clear status', async () => {
    const r = await api('POST', '/commands', { verb: 'get_telemetry', agent_targets: [IDLE], ttl_s: 1 });
    expect(r.status).toBe(202);
    const v = await eventually(async () => {
      const x = (await api('GET', `/commands/${r.body.command_id}`)).body;
      return x.status === 'expired' ? x : undefined;
    }, 10_000, 100);
    expect(v.targets[0]).toMatchObject({ agent: IDLE, status: 'expired', error: { code: 'COMMAND_EXPIRED', message: expect.stringContaining('was not connected') } });
  });
});
