import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, Pool, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PRODUCTION, type AgentTarget } from '../../src/generate/model.js';
import { ROUTER_CLIENT_DRAIN_MS } from '../../src/fleet/router-sync.js';
import { ROUTER_GENERATION_PATH, ROUTER_RELOAD_MARKER, nginxConfig } from '../../src/generate/nginx.js';
import { eventually } from '../helpers/wait.js';

/**
 * The generated local router (upstream blocks) run by this host's nginx in front of a plain HTTP
 * server standing in for an agent: what reaches the agent, and over how many connections. No
 * Docker: the file is the one `scale`/`rollout` mount in the router container, with its listen
 * port moved to loopback (port band 9721-9740) and its reload marker moved to the test's folder.
 */
const LISTEN = 9730;
const target: AgentTarget = { name: 'KeepAgent', slug: 'keep-agent', description: 'd', version: '1', capabilities: [], tools: [], image: 'x', path: '/agents/keep-agent', envFile: false };

let dir: string;
let nginx: ChildProcess;
let agent: Server;
let connections = 0;
const seen: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  agent = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    });
  });
  agent.keepAliveTimeout = 72_000; // as the agents' fastify
  agent.on('connection', () => connections++);
  await new Promise<void>((r) => agent.listen(0, '127.0.0.1', r));
  const port = (agent.address() as { port: number }).port;
  dir = await mkdtemp(join(tmpdir(), 'nexus-router-keepalive-'));
  await chmod(dir, 0o755); // nginx's workers (nobody, when the test runs as root) stat the marker in it
  const conf = nginxConfig([target], DEFAULT_PRODUCTION, { kind: 'upstreams', servers: { [target.slug]: [{ host: '127.0.0.1', port }] } });
  expect(conf).toContain('\n    listen 8080;\n');
  expect(conf).toContain(ROUTER_RELOAD_MARKER);
  await writeFile(join(dir, 'nexus-agents.conf'), conf.replace('\n    listen 8080;\n', `\n    listen 127.0.0.1:${LISTEN};\n`).replaceAll(ROUTER_RELOAD_MARKER, join(dir, 'reloading')));
  await writeFile(
    join(dir, 'nginx.conf'),
    `worker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  include ${dir}/nexus-agents.conf;\n}\n`,
  );
  nginx = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log'), '-g', 'daemon off;'], { stdio: 'ignore' });
  const pool = new Pool(`http://127.0.0.1:${LISTEN}`, { connections: 1 });
  await eventually(async () => ((await pool.request({ path: ROUTER_GENERATION_PATH, method: 'GET' })).statusCode === 200 ? true : undefined), 10_000, 100);
  await pool.close();
});

afterAll(async () => {
  if (nginx?.exitCode === null) {
    const exited = new Promise((r) => nginx.once('exit', r));
    nginx.kill('SIGQUIT');
    await exited;
  }
  await new Promise((r) => agent?.close(r));
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function calls(clients: number, perClient: number): Promise<number[]> {
  const pool = new Pool(`http://127.0.0.1:${LISTEN}`, { connections: clients });
  try {
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (let i = 0; i < perClient; i++) {
          const r = await pool.request({ path: `${target.path}/execute`, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"tool_name":"t","parameters":{}}' });
          await r.body.text();
          statuses.push(r.statusCode);
        }
      }),
    );
    return statuses;
  } finally {
    await pool.close();
  }
}

describe('the generated local router keeps connections to the agents', () => {
  it('sends HTTP/1.1 without "Connection: close" and the forwarding headers to the agent', async () => {
    seen.length = 0;
    expect(await calls(1, 3)).toEqual([200, 200, 200]);
    expect(seen).toHaveLength(3);
    for (const h of seen) {
      expect(h.connection).toBeUndefined();
      expect(h['x-forwarded-prefix']).toBe('/agents/keep-agent');
      expect(h.host).toBe('127.0.0.1'); // $host: the request's host name, without the port
      expect(h['x-forwarded-proto']).toBe('http');
      expect(h['x-real-ip']).toBe('127.0.0.1');
    }
  });

  it('reuses upstream connections: 200 calls from 1 client over 1 connection, 500 calls from 10 clients over at most 10', async () => {
    const before = connections;
    expect((await calls(1, 200)).every((s) => s === 200)).toBe(true);
    const sequential = connections - before;
    expect(sequential).toBeLessThanOrEqual(1);
    const mid = connections;
    const statuses = await calls(10, 50);
    expect(statuses).toHaveLength(500);
    expect(statuses.every((s) => s === 200)).toBe(true);
    console.log(`upstream connections: ${sequential} for 200 sequential calls, ${connections - mid} for 500 calls from 10 clients`);
    expect(connections - mid).toBeLessThanOrEqual(10);
  });
});

describe('reloads under keep-alive load (the reload marker, src/fleet/router-sync.ts)', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** 10 keep-alive clients (no retries) while `reloads` SIGHUPs happen, each wrapped in the marker when `marker`; the failures by kind. */
  async function reloadsUnderLoad(reloads: number, marker: boolean): Promise<{ ok: number; failed: Record<string, number> }> {
    const dispatcher = new Agent({ pipelining: 1, connections: 10 });
    let done = false;
    let ok = 0;
    const failed: Record<string, number> = {};
    const client = async () => {
      while (!done) {
        const r = await request(`http://127.0.0.1:${LISTEN}${target.path}/execute`, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json' }, body: '{"tool_name":"t","parameters":{}}' }).then(
          async (res) => String((await res.body.text(), res.statusCode)),
          (e: Error & { code?: string }) => `${e.code ?? 'error'}: ${e.message}`,
        );
        if (r === '200') ok++;
        else failed[r] = (failed[r] ?? 0) + 1;
      }
    };
    const clients = Array.from({ length: 10 }, client);
    for (let i = 0; i < reloads; i++) {
      await sleep(100);
      if (marker) {
        await writeFile(join(dir, 'reloading'), '');
        await sleep(ROUTER_CLIENT_DRAIN_MS);
      }
      nginx.kill('SIGHUP');
      // the new workers serve within ms on loopback; the sync waits for the generation instead
      await sleep(marker ? ROUTER_CLIENT_DRAIN_MS : 100);
      if (marker) await rm(join(dir, 'reloading'), { force: true });
    }
    await sleep(100);
    done = true;
    await Promise.all(clients);
    await dispatcher.close();
    return { ok, failed };
  }

  it('answers "Connection: close" while the marker exists, keep-alive again once it is gone', async () => {
    const call = async () => {
      const r = await request(`http://127.0.0.1:${LISTEN}${target.path}/execute`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
      await r.body.text();
      return { status: r.statusCode, connection: r.headers.connection };
    };
    await writeFile(join(dir, 'reloading'), '');
    expect(await call()).toEqual({ status: 200, connection: 'close' });
    await rm(join(dir, 'reloading'));
    expect(await call()).toEqual({ status: 200, connection: 'keep-alive' });
  });

  it('loses no call of keep-alive clients over 15 reloads wrapped in the marker', async () => {
    const { ok, failed } = await reloadsUnderLoad(15, true);
    const bare = await reloadsUnderLoad(15, false);
    console.log(`15 reloads with the marker: ${ok} calls answered, failed ${JSON.stringify(failed)}; without it: ${bare.ok} answered, failed ${JSON.stringify(bare.failed)}`);
    expect(ok).toBeGreaterThan(0);
    expect(failed).toEqual({});
  });
});
