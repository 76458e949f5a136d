import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentTokenFile } from '../../src/fleet/agent-tokens.js';
import { AGENT_TOKEN_MOUNT } from '../../src/fleet/containers.js';
import { createAgent } from '../../src/fleet/manager.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { BOOTSTRAP } from '../helpers/manager.js';
import { eventually } from '../helpers/wait.js';
import { makeWorkspace, type TestWorkspace } from '../helpers/workspace.js';

// A container the manager starts dials it back (issue 10 §5, "containers the manager starts get
// both"): `agent serve` listens on the default bridge's gateway address (what a container on
// Linux reaches; never 0.0.0.0 in a test), starts an agent through its API, and the agent's
// container connects with its HELLO over /ws/agent, answers a command over that connection,
// reconnects after the manager is SIGKILLed and started again, and a command queued for it while
// it was stopped survives another SIGKILL and is delivered when it is started. Real engine, real
// CLI, real sockets. Ports: agent 9761, manager 9770 (this file's band).
const docker = new Docker();
const MANAGER_PORT = 9770;
const admin = { authorization: `Bearer ${BOOTSTRAP}`, 'content-type': 'application/json' };
let ws: TestWorkspace;
let gateway: string;
let base: string;
let manager: { child: ChildProcess; exited: Promise<unknown>; log: () => string } | undefined;

/** `agent serve --host <bridge gateway> --port 9770` for the test workspace; resolves once it listens. */
async function serve(): Promise<{ child: ChildProcess; exited: Promise<unknown>; out: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(PACKAGE_ROOT, 'src/cli/main.ts'), '--workspace', ws.dir, 'serve', '--host', gateway, '--port', String(MANAGER_PORT)], {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, NEXUS_MANAGER_TOKEN: BOOTSTRAP },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((r) => child.on('close', r));
  let out = '';
  let err = '';
  // the manager's own lines, without the request log
  child.stderr!.on('data', (d) => (err = (err + String(d).split('\n').filter((l) => !/"msg":"(incoming request|request completed)"/.test(l)).join('\n')).slice(-20_000)));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('manager listening on')) resolve();
    });
    void exited.then(() => reject(new Error(`serve exited: ${err.slice(-2000)}`)));
  });
  manager = { child, exited, log: () => `${out}\n${err}`.slice(-4000) };
  return { child, exited, out: () => out };
}

async function kill9(): Promise<void> {
  if (!manager) return;
  manager.child.kill('SIGKILL');
  await manager.exited;
  manager = undefined;
}

const api = async (method: string, path: string, body?: unknown) => {
  const r = await fetch(`${base}/api/v1${path}`, { method, headers: admin, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: r.status, body: (await r.json()) as Record<string, any> };
};
type Conn = { agent: string; state: string; connection_id: string; site: string };
const connection = async (slug: string): Promise<Conn | undefined> => ((await api('GET', '/connections')).body.connections as Conn[]).find((c) => c.agent === slug);
const onlineOtherThan = (slug: string, not?: string) =>
  eventually(async () => {
    const c = await connection(slug);
    return c?.state === 'online' && c.connection_id !== not ? c : undefined;
  }, 60_000, 200);
const settled = (id: string) =>
  eventually(async () => {
    const v = (await api('GET', `/commands/${id}`)).body;
    return ['succeeded', 'failed', 'partial', 'expired'].includes(v.status) ? v : undefined;
  }, 60_000, 200);

beforeAll(async () => {
  ws = await makeWorkspace('9761-9762');
  const net = await docker.getNetwork('bridge').inspect();
  gateway = net.IPAM!.Config![0]!.Gateway as string;
  base = `http://${gateway}:${MANAGER_PORT}`;
});
afterAll(async () => {
  await kill9();
  await ws.cleanup();
});

describe('containers the manager starts dial it back', () => {
  it('connects with its HELLO, answers a command over the connection, reconnects after a SIGKILL of the manager, and gets a command queued across another', async () => {
    const created = await createAgent(ws.deps, { name: 'DialAgent', capabilities: ['data'] });
    const slug = created.agent.slug;
    const token = (await readFile(agentTokenFile(ws.dir, slug), 'utf8')).trim();
    await serve();

    const started = await api('POST', `/agents/${slug}/start`, {});
    expect(started.status, JSON.stringify(started.body)).toBe(200);
    const first = await onlineOtherThan(slug).catch(async (e: unknown) => {
      // what the agent and the manager said, to see why it never connected
      const [c] = await docker.listContainers({ all: true, filters: { label: [`dev.nexus-delta.agent=${slug}`] } });
      const logs = c ? String(await docker.getContainer(c.Id).logs({ stdout: true, stderr: true, tail: 40 })) : 'no container';
      throw new Error(`${String(e)}\nstart: ${JSON.stringify(started.body)}\nagent:\n${logs}\nmanager:\n${manager?.log()}`);
    });
    expect(first).toMatchObject({ agent: slug, state: 'online' });

    // the container has the manager's URL and a read-only token file; the token is nowhere in `docker inspect`
    const [c] = await docker.listContainers({ filters: { label: [`dev.nexus-delta.agent=${slug}`] } });
    const inspect = await docker.getContainer(c!.Id).inspect();
    expect(inspect.Config.Env).toEqual(expect.arrayContaining([`NEXUS_MANAGER_URL=http://${gateway}:${MANAGER_PORT}`, `NEXUS_AGENT_TOKEN_FILE=${AGENT_TOKEN_MOUNT}`, `NEXUS_AGENT_ID=${slug}`]));
    expect(inspect.Mounts).toEqual(expect.arrayContaining([expect.objectContaining({ Type: 'bind', Destination: AGENT_TOKEN_MOUNT, RW: false })]));
    expect(JSON.stringify(inspect)).not.toContain(token);
    // the HELLO's site defaults to the container's hostname (its short id)
    expect(c!.Id.startsWith(first.site)).toBe(true);

    const info = await api('POST', '/commands', { verb: 'get_system_info', agent_targets: [slug] });
    expect(info.status).toBe(202);
    const infoDone = await settled(info.body.command_id);
    expect(infoDone.status).toBe('succeeded');
    expect(infoDone.targets[0]).toMatchObject({ agent: slug, via: 'connection', connection_id: first.connection_id, result: { agent: slug, tools: expect.arrayContaining(['process_data']), capabilities: ['data'] } });

    // a tool call goes over the connection too while the agent has one
    const exec = await api('POST', '/commands', { verb: 'execute', args: { tool_name: 'process_data', parameters: { data: [1, 2, 3] } }, agent_targets: [slug] });
    const execDone = await settled(exec.body.command_id);
    expect(execDone.targets[0]).toMatchObject({ agent: slug, status: 'succeeded', via: 'connection', result: { count: 3, sum: 6 } });

    // SIGKILL the manager, start it again on the same address: the agent dials back by itself
    await kill9();
    await serve();
    const second = await onlineOtherThan(slug, first.connection_id);
    expect(second.connection_id).not.toBe(first.connection_id);

    // stop the agent, queue a command for it, SIGKILL the manager again: the command survives and
    // is delivered over the new connection once the agent is started
    expect((await api('POST', `/agents/${slug}/stop`, {})).status).toBe(200);
    await eventually(async () => ((await connection(slug))?.state === 'offline' ? true : undefined), 30_000, 200);
    // get_telemetry goes over a connection only (an execute could also take the HTTP path)
    const queued = await api('POST', '/commands', { verb: 'get_telemetry', agent_targets: [slug], ttl_s: 300 });
    expect(queued.status).toBe(202);
    expect(queued.body.targets[0]).toMatchObject({ agent: slug, status: 'waiting' });
    await kill9();
    await serve();
    expect((await api('GET', `/commands/${queued.body.command_id}`)).body).toMatchObject({ status: 'pending', targets: [{ agent: slug, status: 'waiting' }] });
    expect((await api('POST', `/agents/${slug}/start`, {})).status).toBe(200);
    const delivered = await settled(queued.body.command_id);
    expect(delivered.status, JSON.stringify(delivered)).toBe('succeeded');
    expect(delivered.targets[0].via).toBe('connection');
    expect(delivered.targets[0].result).toMatchObject({ memory_rss_bytes: expect.any(Number), cpu_percent: expect.any(Number), event_loop_lag_ms: expect.any(Number), tool_calls: expect.any(Object) });
  });
});
