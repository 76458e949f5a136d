/**
 * The manager's gateway vs a direct call (issue 9 benchmark: >= 0.8x the requests/s, p99 <= 1.5x).
 *
 * Two setups, measured in the same run, rounds interleaved, medians compared:
 * 1. what users run: `POST /api/v1/agents/{name}/execute` of the manager as `agent serve` builds it
 *    (createManager + the supervisor + request logs at info, in its own process, an operator JWT
 *    per request: token check, per-IP and per-token rate limits, schemas, figures, metrics) in front
 *    of a real agent container with its default limits (0.5 CPU, 128 MiB); direct = the
 *    container's published port. The only change from `agent serve`: the rate-limit budgets are
 *    raised (the defaults, 1200/min, would answer 429 within a second of load); the request log is
 *    written as `agent serve` writes it (pino, fd 2, synchronous), fd 2 being /dev/null.
 * 2. the gateway's own cost: `Gateway.executeViaGateway` behind a bare fastify route vs an agent
 *    runtime in its own process with no CPU limit (no Docker), plus a bare undici proxy (the floor of
 *    any extra hop). Here the runtime is not capped, so the gateway's process competes with it and
 *    with the load generator for the machine's cores: a worst case, not what a capped agent sees.
 * Children are this repository's scripts/bench.ts with `--role runtime|gateway|proxy|manager`.
 * NEXUS_BENCH_CPU_PROF=<dir> runs the gateway and manager children under `node --cpu-prof` (the
 * profile is written when the child exits on SIGTERM).
 * Loopback only; the container, image and temp workspace it makes are removed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import Docker from 'dockerode';
import Fastify from 'fastify';
import yaml from 'js-yaml';
import pino from 'pino';
import { Pool } from 'undici';
import { processData } from '../../agent-template/tools/process_data.js';
import { loadConfig } from '../../src/config/config.js';
import { LABEL } from '../../src/engine/labels.js';
import { workspaceId } from '../../src/fleet/context.js';
import { probeHealth } from '../../src/fleet/health.js';
import { createAgent, startAgents } from '../../src/fleet/manager.js';
import { openFleet } from '../../src/fleet/open.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { defineAgent } from '../../src/runtime/define.js';
import { buildServer } from '../../src/runtime/server.js';
import { Gateway, type ExecuteRequest } from '../../src/server/gateway/gateway.js';
import { createManager } from '../../src/server/manager.js';
import { superviseManager } from '../../src/server/supervisor.js';
import { createToken } from '../../src/server/tokens.js';

const docker = new Docker();

/** The middle value (upper middle for an even count). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait until every port's GET /health answers 200. @throws Error after `timeoutMs`. */
export async function allHealthy(ports: number[], timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  const pending = new Set(ports);
  while (pending.size) {
    await Promise.all([...pending].map(async (p) => ((await probeHealth(`http://127.0.0.1:${p}`, 500)).ok ? pending.delete(p) : undefined)));
    if (!pending.size) return;
    if (Date.now() > end) throw new Error(`not healthy in time: ${[...pending].join(',')}`);
    await sleep(100);
  }
}

/** Remove the containers, then the images, labelled with the workspace of `ws`, then `ws` itself. */
export async function removeWorkspace(ws: string): Promise<void> {
  const label = `${LABEL.workspace}=${workspaceId(ws)}`;
  const cs = await docker.listContainers({ all: true, filters: { label: [label] } });
  await Promise.all(cs.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  const imgs = await docker.listImages({ filters: { label: [label] } });
  for (const i of imgs) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
  await rm(ws, { recursive: true, force: true });
}

export interface Load {
  rps: number;
  p50: number;
  p99: number;
  /** Socket errors + non-2xx answers. */
  errors: number;
  /** Requests answered. */
  total: number;
  /** CPU time the watched process (the hop) used during the load, ms; 0 when none is watched. */
  cpuMs: number;
}

/** CPU time (user + system) process `pid` has used so far, ms (/proc/<pid>/stat utime + stime, clock ticks of 10 ms). */
async function cpuMs(pid: number | undefined): Promise<number> {
  if (!pid) return 0;
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const CALL = JSON.stringify({ tool_name: 'process_data', parameters: { data: [1, 2, 3, 4, 5] } });

/** autocannon POST `url` (a full /execute URL) for `seconds` with `connections`; loopback only. */
export async function load(url: string, seconds: number, connections: number, headers: Record<string, string> = {}, watch?: number): Promise<Load> {
  const cpu0 = await cpuMs(watch);
  const r = await autocannon({ url, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: CALL, duration: seconds, connections });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx, total: r.requests.total, cpuMs: (await cpuMs(watch)) - cpu0 };
}

/**
 * A child of the gateway bench, serving until SIGTERM: `runtime` is one agent runtime with
 * process_data; `gateway` a fastify POST /execute in front of `--target` through the Gateway;
 * `proxy` a bare undici pool in front of `--target`; `manager` the manager of `--workspace` as
 * `agent serve` builds it (see the module docstring) on `--port`. Prints {"port": n} once listening.
 */
export async function gatewayBenchChild(role: string, args: string[]): Promise<void> {
  const arg = (name: string) => args[args.indexOf(`--${name}`) + 1]!;
  // exit on SIGTERM through process.exit, so --cpu-prof writes its profile
  process.once('SIGTERM', () => process.exit(0));
  let app;
  if (role === 'runtime') {
    app = await buildServer(defineAgent({ name: 'BenchAgent', description: 'bench', version: '1.0.0', tools: [processData] }), { processMetrics: false });
  } else if (role === 'proxy') {
    // the floor of any extra hop: a bare undici pool behind fastify, no balancing, breaker or retry
    const pool = new Pool(arg('target'), { connections: 32 });
    app = Fastify();
    app.post('/execute', async (req, reply) => {
      const r = await pool.request({ path: '/execute', method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(req.body) });
      return reply.code(r.statusCode).send(await r.body.json());
    });
  } else if (role === 'gateway') {
    const target = arg('target');
    const gw = new Gateway({ resolve: () => ({ slug: 'bench', replicas: [{ id: 'r0', url: target, inRotation: true }] }) });
    app = Fastify();
    app.post('/execute', async (req, reply) => {
      const r = await gw.executeViaGateway('bench', req.body as ExecuteRequest);
      return reply.code(r.status).send(r.body);
    });
  } else if (role === 'manager') {
    const config = loadConfig(arg('workspace'), {});
    const m = await createManager({
      config,
      env: process.env,
      limits: { api: { perMinute: 1e9 }, gateway: { perMinute: 1e9 } },
      // as serveWorkspace logs (src/server/manager.ts); the parent sends this child's stderr to /dev/null
      log: { level: 'info', stream: pino.destination({ fd: 2, sync: true }) },
      supervisor: superviseManager(),
    });
    await m.app.listen({ host: '127.0.0.1', port: Number(arg('port')) });
    app = m.app;
  } else throw new Error(`unknown bench role ${role}`);
  if (!app.server.listening) await app.listen({ host: '127.0.0.1', port: 0 });
  console.log(JSON.stringify({ port: (app.server.address() as AddressInfo).port }));
}

/** Start scripts/bench.ts as a bench child (`--role ...`); resolves with its URL and the child. */
export async function startBenchChild(roleArgs: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ url: string; child: ChildProcess }> {
  // the manager's request log (one line per request and response) is not for the terminal
  const stderr = roleArgs[0] === 'manager' ? 'ignore' : 'inherit';
  const prof = process.env.NEXUS_BENCH_CPU_PROF && roleArgs[0] !== 'runtime' && roleArgs[0] !== 'proxy' ? ['--cpu-prof', '--cpu-prof-dir', process.env.NEXUS_BENCH_CPU_PROF] : [];
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', join(PACKAGE_ROOT, 'scripts/bench.ts'), '--role', ...roleArgs], { env, stdio: ['ignore', 'pipe', stderr] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`bench child ${roleArgs[0]} exited with ${code}`)));
  });
  return { url: `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`, child };
}

/** SIGTERM a child and wait for it to exit (so a CPU profile is complete). */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(10_000)]);
}

const MANAGER_PORT = 9710;
const AGENT_PORT = 9706;

/**
 * The gateway bench (see the module docstring): `seconds` per measurement, `rounds` interleaved
 * rounds, 10 connections, a 1 s warm-up per path. Returns the BENCHMARKS.md section.
 * @throws Error when the agent or the manager does not come up
 */
export async function gatewayBench(seconds: number, rounds: number): Promise<string> {
  const connections = 10;
  const ws = await mkdtemp(join(tmpdir(), 'nexus-bench-gw-'));
  const children: ChildProcess[] = [];
  try {
    await writeFile(join(ws, 'nexus.yaml'), yaml.dump({ project: 'benchgw', ports: { range: `${AGENT_PORT}-${AGENT_PORT + 1}` }, labels: { 'dev.nexus-delta.bench': 'true' } }));
    const fleet = await openFleet(loadConfig(ws, {}), process.env);
    try {
      await createAgent(fleet.deps, { name: 'GatewayAgent', capabilities: ['data'] });
      await startAgents(fleet.deps, ['GatewayAgent']);
    } finally {
      await fleet.close();
    }
    await allHealthy([AGENT_PORT]);
    const { token } = await createToken({ scope: 'operator', ttl: '1h', label: 'bench' }, { workspace: ws });
    const manager = await startBenchChild(['manager', '--workspace', ws, '--port', String(MANAGER_PORT)]);
    children.push(manager.child);
    const runtime = await startBenchChild(['runtime']);
    children.push(runtime.child);
    const front = await startBenchChild(['gateway', '--target', runtime.url]);
    children.push(front.child);
    const proxy = await startBenchChild(['proxy', '--target', runtime.url]);
    children.push(proxy.child);

    const auth = { authorization: `Bearer ${token}` };
    const paths = {
      direct: { url: `http://127.0.0.1:${AGENT_PORT}/execute`, headers: {}, watch: undefined as number | undefined },
      manager: { url: `${manager.url}/api/v1/agents/gateway-agent/execute`, headers: auth, watch: manager.child.pid },
      runtime: { url: `${runtime.url}/execute`, headers: {}, watch: undefined },
      gateway: { url: `${front.url}/execute`, headers: {}, watch: front.child.pid },
      proxy: { url: `${proxy.url}/execute`, headers: {}, watch: proxy.child.pid },
    };
    // the supervisor puts the replica in rotation after its first passing probe
    for (let i = 0; ; i++) {
      const r = await fetch(paths.manager.url, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: CALL });
      await r.arrayBuffer();
      if (r.status === 200) break;
      if (i > 100) throw new Error(`the manager's gateway answers ${r.status}`);
      await sleep(200);
    }
    const results: Record<keyof typeof paths, Load[]> = { direct: [], manager: [], runtime: [], gateway: [], proxy: [] };
    for (const p of Object.values(paths)) await load(p.url, 1, connections, p.headers);
    for (let r = 0; r < rounds; r++) {
      for (const [k, p] of Object.entries(paths)) results[k as keyof typeof paths].push(await load(p.url, seconds, connections, p.headers, p.watch));
    }
    const m = (k: keyof typeof paths, f: 'rps' | 'p50' | 'p99') => median(results[k].map((x) => x[f]));
    const errs = (k: keyof typeof paths) => results[k].reduce((a, x) => a + x.errors, 0);
    // the hop's CPU per call over all rounds, µs (what the hot-path work costs, less noisy than requests/s on a shared machine)
    const cpuPerCall = (k: keyof typeof paths) => {
      const calls = results[k].reduce((a, x) => a + x.total, 0);
      return calls && paths[k].watch ? `${((results[k].reduce((a, x) => a + x.cpuMs, 0) * 1000) / calls).toFixed(0)} µs` : '-';
    };
    const row = (name: string, k: keyof typeof paths) => `| ${name} | ${m(k, 'rps').toFixed(0)} | ${m(k, 'p50').toFixed(1)} ms | ${m(k, 'p99').toFixed(1)} ms | ${cpuPerCall(k)} | ${errs(k)} |`;
    const verdict = (ok: boolean) => (ok ? 'met' : '**not met**');
    const ratios = (via: keyof typeof paths, ref: keyof typeof paths) => {
      const rps = m(via, 'rps') / m(ref, 'rps');
      const p99 = m(via, 'p99') / Math.max(m(ref, 'p99'), 0.01);
      return `**${rps.toFixed(2)}x** the requests/s (goal >= 0.8x: ${verdict(rps >= 0.8)}), **${p99.toFixed(2)}x** the p99 latency (goal <= 1.5x: ${verdict(p99 <= 1.5)})`;
    };
    return `## The manager's gateway vs a direct call

\`process_data\`, ${connections} connections, ${rounds} interleaved rounds of ${seconds} s per path after a 1 s warm-up
(autocannon, loopback); medians. Command: \`npm run bench -- --gateway-only\` (\`--seconds\`, \`--rounds\`).

**As users run it**: the manager as \`agent serve\` builds it (createManager with the supervisor, request logs at
info, in its own process), \`POST /api/v1/agents/gateway-agent/execute\` with an operator JWT on every request
(token check, per-IP and per-token rate limits, schemas, figures, metrics), in front of one agent container with
its default limits (0.5 CPU, 128 MiB); direct = the container's published port. Rate-limit budgets are raised for
the run (the default 1200/min would answer 429); the request log is written as \`agent serve\` writes it, to /dev/null.

| path | requests/s | p50 latency | p99 latency | hop CPU per call | errors + non-2xx |
| --- | --- | --- | --- | --- | --- |
${row('direct to the agent container', 'direct')}
${row('manager `/api/v1/agents/{name}/execute`', 'manager')}

Manager route/direct: ${ratios('manager', 'direct')}.
Hop CPU per call: the manager process's CPU time (user + system, /proc) over the calls it served, all rounds.

**The gateway's own cost** (a worst case, not what users see): \`Gateway.executeViaGateway\` behind a bare fastify
route (no auth, limits, schemas or logs) in its own process, vs an agent runtime in its own process with no CPU
limit and no Docker. The uncapped runtime, the extra process and autocannon compete for the machine's 2 cores,
so any extra hop costs a large share here; the bare undici proxy is the floor of any hop.

| path | requests/s | p50 latency | p99 latency | hop CPU per call | errors + non-2xx |
| --- | --- | --- | --- | --- | --- |
${row('direct to the uncapped runtime', 'runtime')}
${row('through the Gateway class', 'gateway')}
${row('through a bare undici proxy (the floor of any extra hop)', 'proxy')}

Gateway/direct: ${ratios('gateway', 'runtime')}.
Gateway/bare proxy: ${(m('gateway', 'rps') / m('proxy', 'rps')).toFixed(2)}x the requests/s (the gateway's own cost, hop excluded).
`;
  } finally {
    for (const c of children.reverse()) await stop(c);
    await removeWorkspace(ws).catch(() => undefined);
  }
}
