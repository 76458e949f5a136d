/**
 * npm run bench [-- --agents 20 --rounds 3 --records 100] [--registry-only | --router-only | --rollout-only | --protocols-only | --gateway-only | --manager-only | --cli-only | --idle-only | --tasks-only | --streams-only | --door-only (print, no file) | --dashboard-only | --connections-only [--connections 100 --restarts 3]]
 *
 * Measures, in one run on this machine, for N agents on the same (already built) images:
 *  1. `agent start-all` from no containers to all healthy (the real CLI, as a user runs it);
 *  2. `docker-compose up -d` of an equivalent compose file (same images, limits, hardening,
 *     port bindings, healthcheck), waiting for the same health (GET /health = 200 on every port);
 *  3. a sequential `docker run -d` loop, waiting for the same health;
 *  4. idle memory per agent container (docker stats: usage minus inactive file cache);
 *  5. the bytes an agent image adds over the base image;
 *  6. the registry: create + list of 100 records, local file vs Firestore (emulator);
 *  7. /execute requests/s and p50/p99 latency direct vs through the generated nginx;
 *  8. one tool call over /execute, A2A message:send and MCP tools/call on the same agent;
 *  9. the manager's gateway vs a direct call (scripts/bench/gateway.ts), and the manager service's
 *     idle memory and time from a hung agent to healthy again (scripts/bench/manager.ts);
 * 10. (--cli-only) CLI overhead of `list` and `create` with the local registry: the built CLI's
 *     wall time minus the same use case run warm in-process (its engine and registry calls), with
 *     `node -e 0` measured in the same rounds as the reference.
 * 11. agents with npm dependencies: image sizes, dependency layer build times, OCR memory.
 * 12. idle CPU (the container cgroup's CPU accounting, v2 cpu.stat usage_usec or v1
 *     cpuacct.usage, read on the host, health check running), idle memory of one agent and its
 *     peak memory under the issue 14 §3 attack (`--idle-only` runs just this one).
 * 13. (--streams-only) live streams: delivery latency p50/p99 of 5,000 events (50 agents x 100)
 *     to 20 subscribers (10 SSE, 10 WebSocket), the manager in a child process (`--role streams`).
 * Rounds are interleaved and the median is reported. Results go to BENCHMARKS.md.
 * Only loopback traffic; every container, image and file it makes is removed at the end.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import yaml from 'js-yaml';
import { loadConfig } from '../src/config/config.js';
import { DockerEngine } from '../src/engine/docker.js';
import { LABEL } from '../src/engine/labels.js';
import { agentContainerSpec } from '../src/fleet/containers.js';
import { workspaceId, type FleetDeps } from '../src/fleet/context.js';
import { probeHealth } from '../src/fleet/health.js';
import { buildAgents, createAgent, startAgents } from '../src/fleet/manager.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { LocalRegistry } from '../src/registry/local.js';
import { FirestoreRegistry } from '../src/registry/firestore.js';
import type { Registry } from '../src/registry/registry.js';
import { FirestoreServer } from '@firestore-emulator/server';
import autocannon from 'autocannon';
import { scaleAgent, removeLocalRouter } from '../src/fleet/scale.js';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { createInterface } from 'node:readline';
import { buildServer } from '../src/runtime/server.js';
import { defineAgent } from '../src/runtime/define.js';
import { Gateway, type ExecuteRequest } from '../src/server/gateway/gateway.js';
import { processData } from '../agent-template/tools/process_data.js';
import { Pool } from 'undici';
import { randomBytes } from 'node:crypto';
import { buildServer as buildManager } from '../src/server/app.js';
import { EventBus } from '../src/server/events-bus.js';
import { streamRoutes } from '../src/server/streams.js';
import { createManager } from '../src/server/manager.js';
import { containerTasksBench, tasksBench } from './bench/tasks.js';
import { mergeSections } from './bench/sections.js';
import { sseClient, wsClient, type StreamClient } from '../test/helpers/streams.js';
import { gatewayBench, gatewayBenchChild } from './bench/gateway.js';
import { managerBench } from './bench/manager.js';

const run = promisify(execFile);
const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const N = opt('agents', 20);
const ROUNDS = opt('rounds', 3);
const FROM = 9301;
const PROJECT = 'bench';
const docker = new Docker();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function allHealthy(ports: number[], timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  const pending = new Set(ports);
  while (pending.size) {
    await Promise.all([...pending].map(async (p) => ((await probeHealth(`http://127.0.0.1:${p}`, 500)).ok ? pending.delete(p) : undefined)));
    if (!pending.size) return;
    if (Date.now() > end) throw new Error(`not healthy in time: ${[...pending].join(',')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function removeContainers(labels: string[]): Promise<void> {
  const cs = await docker.listContainers({ all: true, filters: { label: labels } });
  await Promise.all(cs.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
}

function cli(ws: string, ...argv: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(PACKAGE_ROOT, 'src/cli/main.ts'), ...argv], {
      env: { ...process.env, NEXUS_WORKSPACE: ws },
      stdio: 'ignore',
    });
    child.on('close', (code) => resolve(code ?? -1));
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** create N records then list them N times; returns operations per second of each phase. */
async function registryOps(reg: Registry, n: number): Promise<{ create: number; list: number }> {
  const free = async () => true;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await reg.create(
      { name: `R${i}`, slug: `r${i}`, description: 'bench', capabilities: ['data'], category: 'data', model: 'none', version: '1' },
      { range: { from: 20000, to: 20000 + n - 1 }, isHostPortFree: free },
    );
  }
  const t1 = performance.now();
  for (let i = 0; i < n; i++) if ((await reg.list()).length !== n) throw new Error('list lost records');
  const t2 = performance.now();
  return { create: (n * 1000) / (t1 - t0), list: (n * 1000) / (t2 - t1) };
}

async function registryBench(n: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-bench-reg-'));
  const emulator = new FirestoreServer();
  const port = 28000 + Math.floor(Math.random() * 1000);
  await emulator.start(port);
  process.env.FIRESTORE_EMULATOR_HOST = `127.0.0.1:${port}`;
  try {
    const local = await registryOps(new LocalRegistry(dir), n);
    const fsReg = new FirestoreRegistry({ projectId: 'demo-bench', timeoutMs: 60_000 });
    const remote = await registryOps(fsReg, n);
    await fsReg.close();
    const row = (what: string, l: number, f: number) => `| ${what} | ${l.toFixed(0)} ops/s | ${f.toFixed(0)} ops/s | ${(l / f).toFixed(1)}x |`;
    return `## Registry: ${n} creates, then ${n} lists of all ${n} records

One process, sequential calls. Firestore is \`@firestore-emulator/server\` in the same process over
gRPC on loopback: real Firestore adds network round trips on top.

| operation | local (.nexus/registry.json) | firestore (emulator) | local / firestore |
| --- | --- | --- | --- |
${row('create (port reserved in the same atomic step)', local.create, remote.create)}
${row(`list (${n} records)`, local.list, remote.list)}
`;
  } finally {
    emulator.stop();
    delete process.env.FIRESTORE_EMULATOR_HOST;
    await rm(dir, { recursive: true, force: true });
  }
}

/** autocannon POST /execute at `url` for `seconds` with `connections`; loopback only, bounded. */
async function load(url: string, seconds: number, connections: number): Promise<{ rps: number; p50: number; p99: number; errors: number; non2xx: number }> {
  const r = await autocannon({
    url: `${url}/execute`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tool_name: 'process_data', parameters: { data: [1, 2, 3, 4, 5] } }),
    duration: seconds,
    connections,
  });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
}

/** /execute direct to the agent's port binding vs through the generated nginx (local router). */
async function routerBench(seconds: number): Promise<string> {
  const ws = await mkdtemp(join(tmpdir(), 'nexus-bench-router-'));
  await writeFile(join(ws, 'nexus.yaml'), yaml.dump({ project: 'benchr', ports: { range: '9721-9722' }, labels: { 'dev.nexus-delta.bench': 'true' } }));
  const config = loadConfig(ws, {});
  const deps: FleetDeps = { config, registry: new LocalRegistry(ws), engine: new DockerEngine() };
  try {
    await createAgent(deps, { name: 'LoadAgent', capabilities: ['data'] });
    const s = await scaleAgent(deps, 'LoadAgent', 1, { routerPort: 9723 });
    const direct = 'http://127.0.0.1:9721';
    const routed = s.url.replace(/\/$/, '');
    await allHealthy([9721]);
    for (let i = 0; i < 50 && (await probeHealth(routed, 1000)).ok === false; i++) await new Promise((r) => setTimeout(r, 200));
    await load(direct, 2, 10); // warm-up
    const ROUTER_ROUNDS = 3;
    const rounds: { direct: Awaited<ReturnType<typeof load>>; routed: Awaited<ReturnType<typeof load>> }[] = [];
    for (let i = 0; i < ROUTER_ROUNDS; i++) rounds.push({ direct: await load(direct, seconds, 10), routed: await load(routed, seconds, 10) });
    const med = (k: 'rps' | 'p50' | 'p99', w: 'direct' | 'routed') => median(rounds.map((r) => r[w][k]));
    const ratios = rounds.map((r) => r.routed.rps / r.direct.rps);
    const ratio = median(ratios);
    const errs = rounds.reduce((a, r) => a + r.direct.errors + r.routed.errors + r.direct.non2xx + r.routed.non2xx, 0);
    return `## /execute direct vs through the generated nginx

\`flock /tmp/nexus-integration.lock npm run bench -- --router-only\` on ${new Date().toISOString().slice(0, 10)}: \`process_data\` on one
agent (0.5 CPU), 10 connections, ${seconds} s per measurement, ${ROUTER_ROUNDS} interleaved rounds, medians (autocannon,
loopback, keep-alive clients). Both paths go through Docker's port publishing (docker-proxy); the
routed one adds the router container (1 CPU), which reaches the agent by its container address
over kept upstream connections. Errors and non-2xx answers: ${errs}.

| path | requests/s | p50 latency | p99 latency |
| --- | --- | --- | --- |
| direct to the port binding | ${med('rps', 'direct').toFixed(0)} | ${med('p50', 'direct').toFixed(1)} ms | ${med('p99', 'direct').toFixed(1)} ms |
| through nginx (\`/agents/<slug>/\`) | ${med('rps', 'routed').toFixed(0)} | ${med('p50', 'routed').toFixed(1)} ms | ${med('p99', 'routed').toFixed(1)} ms |
| router overhead (routed / direct) | **${ratio.toFixed(2)}x** throughput (rounds: ${ratios.map((x) => x.toFixed(2)).join(', ')}) | ${(med('p50', 'routed') / Math.max(med('p50', 'direct'), 0.01)).toFixed(2)}x | ${(med('p99', 'routed') / Math.max(med('p99', 'direct'), 0.01)).toFixed(2)}x |

Goal: at least 0.8x the requests/s of a direct call: ${ratio >= 0.8 ? 'met' : '**not met**'}.

Before (same command, 2026-11-23, before the fix): 0.49x (1368 vs 2812 requests/s; 0.37x in the
previous full run). The generated location set its own \`proxy_set_header X-Forwarded-Prefix\`, and
nginx inherits \`proxy_set_header\` into a location only when it sets none: the server-level
\`Connection ""\` was lost, nginx sent \`Connection: close\` to the agent, and every request opened
a new upstream connection (3,411 sockets in TIME-WAIT in the agent after 8 s of load) although the
upstream had \`keepalive 32\`. Every proxied location now carries the whole header set
(src/generate/nginx.ts; test/integration/router-keepalive.test.ts counts the upstream connections).
The routed figure includes the reload marker's check (one \`stat\` per call, src/generate/nginx.ts
ROUTER_RELOAD_MARKER); the same run before that check measured 1.05x. Rounds vary by +-0.15x on
this shared 2-core machine.
`;
  } finally {
    // containers first: a network with containers attached cannot be removed
    await removeContainers([`${LABEL.workspace}=${workspaceId(ws)}`]);
    await removeLocalRouter(deps).catch(() => undefined);
    const imgs = await docker.listImages({ filters: { label: [`${LABEL.workspace}=${workspaceId(ws)}`] } });
    for (const i of imgs) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
    await rm(ws, { recursive: true, force: true });
  }
}

/** Median idle memory (MiB) of one container: 5 samples 2 s apart (docker stats, minus inactive file cache). */
async function idleMiB(engine: DockerEngine, id: string): Promise<number> {
  const xs: number[] = [];
  for (let s = 0; s < 5; s++) {
    xs.push((await engine.containerMemory(id)) / 2 ** 20);
    await new Promise((r) => setTimeout(r, 2000));
  }
  return median(xs);
}

/**
 * The same tool call over the agent's three doors on one started agent: POST /execute, A2A
 * POST /message:send (HTTP+JSON 1.0) and MCP tools/call on /mcp (stateless, JSON response), plus
 * the agent's idle memory and its base image size. Loopback only, a few seconds per door.
 */
async function protocolBench(seconds: number): Promise<string> {
  const ws = await mkdtemp(join(tmpdir(), 'nexus-bench-proto-'));
  await writeFile(
    join(ws, 'nexus.yaml'),
    yaml.dump({ project: 'benchp', ports: { range: '9231-9232' }, images: { tag: 'bench-proto' }, labels: { 'dev.nexus-delta.bench': 'true' } }),
  );
  const config = loadConfig(ws, {});
  const engine = new DockerEngine();
  const deps: FleetDeps = { config, registry: new LocalRegistry(ws), engine };
  const wsLabel = `${LABEL.workspace}=${workspaceId(ws)}`;
  try {
    await createAgent(deps, { name: 'ProtoAgent', capabilities: ['data'] });
    await startAgents(deps, ['ProtoAgent']);
    const url = 'http://127.0.0.1:9231';
    await allHealthy([9231]);
    // idle first, before any protocol module is loaded by a call
    await new Promise((r) => setTimeout(r, 15_000));
    const [c] = await docker.listContainers({ filters: { label: [wsLabel] } });
    const idle = await idleMiB(engine, c!.Id);
    const base = await docker.getImage(`nexus-delta-agent:${config.images.tag}`).inspect();
    const params = { data: [1, 2, 3, 4, 5] };
    const doors: { name: string; path: string; headers: Record<string, string>; body: unknown }[] = [
      { name: 'POST /execute', path: '/execute', headers: {}, body: { tool_name: 'process_data', parameters: params } },
      {
        name: 'A2A POST /message:send',
        path: '/message:send',
        headers: { 'a2a-version': '1.0' },
        body: { message: { messageId: 'bench', role: 'ROLE_USER', parts: [{ data: { tool_name: 'process_data', parameters: params } }] } },
      },
      {
        name: 'MCP tools/call on /mcp',
        path: '/mcp',
        headers: { accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' },
        body: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'process_data', arguments: params } },
      },
    ];
    const rows: string[] = [];
    let reference = 0;
    for (const d of doors) {
      const once = await fetch(url + d.path, { method: 'POST', headers: { 'content-type': 'application/json', ...d.headers }, body: JSON.stringify(d.body) });
      if (once.status !== 200) {
        rows.push(`| ${d.name} | not served (HTTP ${once.status}) | | | |`);
        continue;
      }
      const opts = { url: url + d.path, method: 'POST' as const, headers: { 'content-type': 'application/json', ...d.headers }, body: JSON.stringify(d.body), connections: 10 };
      await autocannon({ ...opts, duration: 1 }); // warm-up
      const r = await autocannon({ ...opts, duration: seconds });
      reference ||= r.requests.average;
      rows.push(`| ${d.name} | ${r.requests.average.toFixed(0)} | ${(r.requests.average / reference).toFixed(2)}x | ${r.latency.p50.toFixed(1)} ms | ${r.latency.p99.toFixed(1)} ms | ${r.errors + r.non2xx} |`);
    }
    const after = await idleMiB(engine, c!.Id);
    return `### One agent: one tool call over /execute, A2A and MCP (\`npm run bench -- --protocols-only\`)

\`process_data\` on one agent (0.5 CPU), 10 connections, ${seconds} s per door after a 1 s warm-up (autocannon, loopback).
MCP is stateless streamable HTTP with JSON responses: one JSON-RPC \`tools/call\` per POST, no session.
Ratio: requests/s over POST /execute in the same run.

| door | requests/s | ratio | p50 latency | p99 latency | errors + non-2xx |
| --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

Idle memory of that agent (median of 5 samples, 2 s apart): ${idle.toFixed(1)} MiB before any call,
${after.toFixed(1)} MiB right after the load (protocol modules loaded, the last 1,000 A2A tasks kept, heap not yet collected). Base image: ${(base.Size / 1e6).toFixed(1)} MB.
`;
  } finally {
    await removeContainers([wsLabel]).catch(() => undefined);
    const imgs = await docker.listImages({ filters: { label: [wsLabel] } });
    for (const i of imgs) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
    await rm(ws, { recursive: true, force: true });
  }
}

/**
 * (--door-only) The manager's MCP and A2A doors: one call of process_data through the manager's
 * /mcp (a session, operator token, the gateway) and its A2A door (`POST /a2a/{slug}/message:send`,
 * operator token, the gateway, a task kept by the manager) vs the agent's own /mcp (stateless),
 * A2A message:send and POST /execute, and the manager's gateway route; one real agent, 10
 * connections, `seconds` each after a 1 s warm-up (autocannon, loopback), requests/s as a ratio to
 * the agent's own POST /execute in the same run. Rate limits are lifted for the run.
 */
async function doorBench(seconds: number): Promise<string> {
  const ws = await mkdtemp(join(tmpdir(), 'nexus-bench-door-'));
  await writeFile(join(ws, 'nexus.yaml'), yaml.dump({ project: 'benchdoor', ports: { range: '9525-9526' }, images: { tag: 'bench-door' }, labels: { 'dev.nexus-delta.bench': 'true' } }));
  const config = loadConfig(ws, {});
  const wsLabel = `${LABEL.workspace}=${workspaceId(ws)}`;
  const admin = randomBytes(24).toString('hex');
  const m = await createManager({ config, env: { ...process.env, NEXUS_MANAGER_TOKEN: admin }, limits: { api: { perMinute: 1e9 }, gateway: { perMinute: 1e9 } } });
  try {
    await createAgent(m.fleet.deps, { name: 'DoorAgent', capabilities: ['data'] });
    await startAgents(m.fleet.deps, ['DoorAgent']);
    await allHealthy([9525]);
    const agent = 'http://127.0.0.1:9525';
    const manager = await m.app.listen({ host: '127.0.0.1', port: 0 });
    const auth = { authorization: `Bearer ${admin}` };
    const mcpHeaders = { accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };
    const init = await fetch(`${manager}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...mcpHeaders, ...auth },
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } }),
    });
    const sid = init.headers.get('mcp-session-id') ?? '';
    const params = { data: [1, 2, 3, 4, 5] };
    const call = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'process_data', arguments: params } };
    const a2aHeaders = { 'a2a-version': '1.0' };
    const message = { message: { messageId: 'bench', role: 'ROLE_USER', parts: [{ data: { tool_name: 'process_data', parameters: params } }] } };
    const doors = [
      { name: 'agent POST /execute', url: `${agent}/execute`, headers: {}, body: { tool_name: 'process_data', parameters: params } },
      { name: 'agent /mcp tools/call (stateless)', url: `${agent}/mcp`, headers: mcpHeaders, body: call },
      { name: 'agent A2A POST /message:send', url: `${agent}/message:send`, headers: a2aHeaders, body: message },
      { name: 'manager POST /api/v1/agents/{name}/execute', url: `${manager}/api/v1/agents/door-agent/execute`, headers: auth, body: { tool_name: 'process_data', parameters: params } },
      { name: 'manager /mcp tools/call (session)', url: `${manager}/mcp`, headers: { ...mcpHeaders, ...auth, 'mcp-session-id': sid }, body: { ...call, params: { ...call.params, name: 'door-agent__process_data' } } },
      { name: 'manager A2A POST /a2a/{slug}/message:send', url: `${manager}/a2a/door-agent/message:send`, headers: { ...a2aHeaders, ...auth }, body: message },
    ];
    const rows: string[] = [];
    let reference = 0;
    for (const d of doors) {
      const opts = { url: d.url, method: 'POST' as const, headers: { 'content-type': 'application/json', ...d.headers }, body: JSON.stringify(d.body), connections: 10 };
      const once = await fetch(d.url, { method: 'POST', headers: opts.headers, body: opts.body });
      const text = await once.text();
      if (once.status !== 200 || /"isError":true|TASK_STATE_(FAILED|REJECTED)/.test(text)) {
        rows.push(`| ${d.name} | failed (HTTP ${once.status}) | | | |`);
        continue;
      }
      // JSON-RPC ids must be unique among a session's requests in flight: number them
      let id = 1;
      const numbered = { ...opts, requests: [{ setupRequest: (req: autocannon.Request) => ({ ...req, body: JSON.stringify({ ...(d.body as object), ...('jsonrpc' in (d.body as object) ? { id: id++ } : {}) }) }) }] };
      await autocannon({ ...numbered, duration: 1 });
      const r = await autocannon({ ...numbered, duration: seconds });
      reference ||= r.requests.average;
      rows.push(`| ${d.name} | ${r.requests.average.toFixed(0)} | ${(r.requests.average / reference).toFixed(2)}x | ${r.latency.p50.toFixed(1)} ms | ${r.latency.p99.toFixed(1)} ms | ${r.errors + r.non2xx} |`);
    }
    return `### Through the manager: its MCP and A2A doors vs the agent's own doors (\`npm run bench -- --door-only\`)

\`process_data\` on one agent (0.5 CPU), 10 connections, ${seconds} s per door after a 1 s warm-up (autocannon, loopback);
the manager in the bench's process. The manager's /mcp: one session (stateful transport, JSON responses); its A2A door: a
task per message kept by the manager; both verify the token per request and call through the gateway.
Ratio: requests/s over the agent's own POST /execute in the same run.

| door | requests/s | ratio | p50 latency | p99 latency | errors + non-2xx |
| --- | --- | --- | --- | --- | --- |
${rows.join('\n')}
`;
  } finally {
    await m.close();
    await removeContainers([wsLabel]).catch(() => undefined);
    const imgs = await docker.listImages({ filters: { label: [wsLabel] } });
    for (const i of imgs) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
    await rm(ws, { recursive: true, force: true });
  }
}

/** CPU time (µs) the container's cgroup has used so far: cgroup v2 cpu.stat, else v1 cpuacct.usage. */
async function cgroupCpuUsec(id: string): Promise<number> {
  const v2 = [`/sys/fs/cgroup/system.slice/docker-${id}.scope/cpu.stat`, `/sys/fs/cgroup/docker/${id}/cpu.stat`];
  for (const f of v2) {
    const text = await readFile(f, 'utf8').catch(() => undefined);
    const m = text && /^usage_usec (\d+)/m.exec(text);
    if (m) return Number(m[1]);
  }
  for (const f of [`/sys/fs/cgroup/cpuacct/docker/${id}/cpuacct.usage`, `/sys/fs/cgroup/cpu,cpuacct/docker/${id}/cpuacct.usage`]) {
    const text = await readFile(f, 'utf8').catch(() => undefined);
    if (text) return Number(text.trim()) / 1000;
  }
  throw new Error(`no cgroup CPU accounting found for container ${id.slice(0, 12)}`);
}

/** Host pid of the agent's node process in container `id` (under its init process). */
async function agentNodePid(id: string): Promise<number> {
  const top = (await docker.getContainer(id).top({ ps_args: '-o pid,comm' })) as { Processes: string[][] };
  const row = top.Processes.find((p) => p[1] === 'node');
  if (!row) throw new Error(`no node process in container ${id.slice(0, 12)}`);
  return Number(row[0]);
}

/** CPU time (µs, user + system) a host process has used so far, from /proc/<pid>/stat. */
async function processCpuUsec(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[11], fields[12]: utime, stime in clock ticks (USER_HZ, 100 on Linux)
  return ((Number(fields[11]) + Number(fields[12])) / 100) * 1e6;
}

/**
 * One agent, started with the real CLI path and idle: its CPU share of one core over `seconds`
 * (Docker's health check included: the window covers at least one 30 s probe) and its memory
 * (usage minus inactive file cache, what `docker stats` shows: DockerEngine.containerMemory), from
 * 20 s after it is healthy. Then the issue 14 §3 attack on loopback (two concurrent 1 MiB
 * `[{},{},...]` echo bodies, then four concurrent heaviest accepted bodies) and the cgroup's peak
 * memory (v1 max_usage from the stats API), and its memory again once its tool worker has stopped.
 */
async function idleBench(seconds: number): Promise<string> {
  const ws = await mkdtemp(join(tmpdir(), 'nexus-bench-idle-'));
  await writeFile(join(ws, 'nexus.yaml'), yaml.dump({ project: `${PROJECT}idle`, ports: { range: '9206-9210' }, labels: { 'dev.nexus-delta.bench': 'true' } }));
  const config = loadConfig(ws, {});
  const engine = new DockerEngine();
  const deps: FleetDeps = { config, registry: new LocalRegistry(ws), engine };
  try {
    await createAgent(deps, { name: 'IdleAgent', capabilities: ['general'] });
    if ((await cli(ws, 'start', '--name', 'IdleAgent')) !== 0) throw new Error('start failed');
    const [c] = await docker.listContainers({ filters: { label: [`${LABEL.workspace}=${workspaceId(ws)}`] } });
    const url = `http://127.0.0.1:${c!.Ports.find((p) => p.PublicPort)!.PublicPort}`;
    // one tool call first, so the idle window includes a worker thread started and stopped again
    await fetch(`${url}/execute`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"tool_name":"echo","parameters":{"message":[1,2,3]}}' });
    await new Promise((r) => setTimeout(r, 20_000));
    const nodePid = await agentNodePid(c!.Id);
    const t0 = Date.now();
    const u0 = await cgroupCpuUsec(c!.Id);
    const n0 = await processCpuUsec(nodePid);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const elapsedUs = (Date.now() - t0) * 1000;
    const share = ((await cgroupCpuUsec(c!.Id)) - u0) / elapsedUs;
    const nodeShare = ((await processCpuUsec(nodePid)) - n0) / elapsedUs;
    const mib = await idleMiB(engine, c!.Id);
    const info = await docker.getContainer(c!.Id).inspect();
    // the attack: bodies the runtime refuses before parsing, then the heaviest it accepts
    const execute = (body: string) => fetch(`${url}/execute`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then((r) => r.status);
    const refused = `{"tool_name":"echo","parameters":{"message":[${Array(349_500).fill('{}').join(',')}]}}`;
    const heaviest = `{"tool_name":"echo","parameters":{"message":[${Array(49_990).fill('{"k":"xxxxxxxx"}').join(',')}],"pad":"${'y'.repeat(150_000)}"}}`;
    const statuses = [...(await Promise.all([execute(refused), execute(refused)])), ...(await Promise.all([1, 2, 3, 4].map(() => execute(heaviest))))];
    const stats = (await docker.getContainer(c!.Id).stats({ stream: false })) as { memory_stats?: { max_usage?: number } };
    const peak = stats.memory_stats?.max_usage;
    await new Promise((r) => setTimeout(r, 15_000)); // the worker stops after 10 s idle
    const after = await idleMiB(engine, c!.Id);
    const state = (await docker.getContainer(c!.Id).inspect()).State;
    return `## One idle agent: CPU and memory

From 20 s after start (one tool call made first, so a worker thread was started and stopped), ${seconds} s of the container
cgroup's CPU accounting (read on the host), with Docker's health check running
(${info.Config.Healthcheck?.Test?.slice(1, 3).join(' ')}, every 30 s; health: ${info.State.Health?.Status}). Memory: the
median of 5 samples of the cgroup's usage minus its inactive file cache (what \`docker stats\` shows).

| CPU, share of one core | memory (docker stats) | CPU target | memory target |
| --- | --- | --- | --- |
| ${(share * 100).toFixed(4)}% | ${mib.toFixed(1)} MiB | at most 0.05%: ${share <= 0.0005 ? 'met' : '**not met**'} | at most 32 MiB: ${mib <= 32 ? 'met' : '**not met**'} |

Of that CPU, the agent's node process itself used ${(nodeShare * 100).toFixed(3)}% of a core (/proc/<pid>/stat utime+stime);
the rest is the health probes (Docker's exec of busybox wget in the container's cgroup).

Under the issue 14 §3 attack (two concurrent 1 MiB \`[{},{},...]\` bodies, answered ${statuses.slice(0, 2).join(', ')}; then four
concurrent 1 MiB bodies of 49,990 objects, answered ${statuses.slice(2).join(', ')}): peak memory of the container
${peak ? `${(peak / 2 ** 20).toFixed(1)} MiB (cgroup max_usage, page cache included)` : 'not reported (cgroup v2)'} of its ${config.resources.memoryMiB} MiB
limit; ${after.toFixed(1)} MiB once its worker stopped; restarts ${(await docker.getContainer(c!.Id).inspect()).RestartCount}, OOM-killed: ${state.OOMKilled}.
`;
  } finally {
    await removeContainers([`${LABEL.workspace}=${workspaceId(ws)}`]);
    const imgs = await docker.listImages({ filters: { label: [`${LABEL.workspace}=${workspaceId(ws)}`] } });
    for (const i of imgs) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
    await rm(ws, { recursive: true, force: true });
  }
}

/**
 * Agents with npm dependencies: image size over the base without dependencies, with sharp and with
 * the OCR stack; cold build of a dependency layer (npm install from npm's cache + layer + code) and
 * the rebuild after a code-only change; idle and one-call peak memory of the OCR agent (docker
 * stats sampled every 100 ms during the call). Loopback only; removes what it makes.
 */
async function dependencyBench(): Promise<string> {
  const ws = await mkdtemp(join(tmpdir(), 'nexus-bench-deps-'));
  await writeFile(
    join(ws, 'nexus.yaml'),
    yaml.dump({ project: 'benchd', ports: { range: '9355-9358' }, images: { tag: 'bench-deps' }, labels: { 'dev.nexus-delta.bench': 'true' } }),
  );
  const config = loadConfig(ws, {});
  const engine = new DockerEngine();
  const deps: FleetDeps = { config, registry: new LocalRegistry(ws), engine };
  const wsLabel = `${LABEL.workspace}=${workspaceId(ws)}`;
  try {
    await buildAgents(deps, []); // the base image, outside the timings
    await createAgent(deps, { name: 'PlainAgent', capabilities: ['data'] });
    await createAgent(deps, { name: 'SharpAgent', capabilities: ['image'] });
    const ocr = await createAgent(deps, { name: 'OcrAgent', capabilities: ['ocr'] });
    await buildAgents(deps, ['PlainAgent']);
    const coldSharp = await timed(() => buildAgents(deps, ['SharpAgent']));
    const coldOcr = await timed(() => buildAgents(deps, ['OcrAgent']));
    const tool = join(ws, 'agents', 'sharp-agent', 'src', 'tools', 'image_info.ts');
    await writeFile(tool, `${await readFile(tool, 'utf8')}\n// a code-only change\n`);
    const codeOnly = await timed(() => buildAgents(deps, ['SharpAgent']));
    const base = (await docker.getImage(`nexus-delta-agent:${config.images.tag}`).inspect()).Size;
    const added = async (slug: string) => (await docker.getImage(`nexus-delta-agent-benchd-${slug}:${config.images.tag}`).inspect()).Size - base;
    const sizes = { plain: await added('plain-agent'), sharp: await added('sharp-agent'), ocr: await added('ocr-agent') };

    await startAgents(deps, ['OcrAgent']);
    await allHealthy([ocr.agent.port]);
    await new Promise((r) => setTimeout(r, 15_000));
    const [c] = await docker.listContainers({ filters: { label: [wsLabel] } });
    const idle = await idleMiB(engine, c!.Id);
    const { drawTextPng } = await import('../src/fleet/demo.js');
    const image = (await drawTextPng('Nexus Delta 2025')).toString('base64');
    let peak = 0;
    let calling = true;
    const sampler = (async () => {
      while (calling) {
        peak = Math.max(peak, (await engine.containerMemory(c!.Id)) / 2 ** 20);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    let text = '';
    const callMs = await timed(async () => {
      const res = await fetch(`http://127.0.0.1:${ocr.agent.port}/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tool_name: 'extract_text', parameters: { image } }),
      });
      text = ((await res.json()) as { result?: { text: string } }).result?.text ?? `HTTP ${res.status}`;
    });
    calling = false;
    await sampler;
    await new Promise((r) => setTimeout(r, 5000));
    const after = await idleMiB(engine, c!.Id);
    const mb = (b: number) => (b < 1e6 ? `${(b / 1024).toFixed(1)} KiB` : `${(b / 1e6).toFixed(2)} MB`);
    return `## Agents with npm dependencies

Images over the base image (${(base / 1e6).toFixed(1)} MB), by what the agent ships in its dependency layer:

| agent | tools | dependency layer | added over the base |
| --- | --- | --- | --- |
| PlainAgent (\`data\`) | process_data | none | ${mb(sizes.plain)} |
| SharpAgent (\`image\`) | image_info, resize | sharp 0.35 + libvips (+ libresolv from the host, offline base) | ${mb(sizes.sharp)} |
| OcrAgent (\`ocr\`) | extract_text | sharp, tesseract.js 7 + wasm core, English trained data | ${mb(sizes.ocr)} |

Target: under 2 MB added without dependencies: ${sizes.plain < 2e6 ? 'met' : '**not met**'}.

| build | time |
| --- | --- |
| SharpAgent, cold (npm ci from npm's cache, dependency layer, code layer) | ${fmt(coldSharp)} |
| OcrAgent, cold | ${fmt(coldOcr)} |
| SharpAgent after a code-only change (dependency layer reused, code layer rebuilt) | ${fmt(codeOnly)} |

OCR agent (limit 256 MiB from agent.json): idle ${idle.toFixed(1)} MiB before any call (median of 5
samples, 2 s apart); peak ${peak.toFixed(1)} MiB during one \`extract_text\` call on a 640x120 PNG
(docker stats every 100 ms; the call took ${fmt(callMs)}, read "${text}"); ${after.toFixed(1)} MiB 5 s after it
(the tesseract worker ends with each call; V8 and the allocator keep some of what it used).
`;
  } finally {
    await removeContainers([wsLabel]).catch(() => undefined);
    const imgs = await docker.listImages({ filters: { label: [wsLabel] } });
    for (const i of imgs) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
    await rm(ws, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const ws = await mkdtemp(join(tmpdir(), 'nexus-bench-'));
  await writeFile(join(ws, 'nexus.yaml'), yaml.dump({ project: PROJECT, ports: { range: `${FROM}-${FROM + N + 19}` }, labels: { 'dev.nexus-delta.bench': 'true' } }));
  const config = loadConfig(ws, {});
  const deps: FleetDeps = { config, registry: new LocalRegistry(ws), engine: new DockerEngine() };
  const wsLabel = `${LABEL.workspace}=${workspaceId(ws)}`;
  const composeProject = 'nexusbenchcompose';
  const composeFile = join(ws, 'docker-compose.bench.yml');
  try {
    console.error(`bench: creating and building ${N} agents`);
    for (let i = 0; i < N; i++) await createAgent(deps, { name: `BenchAgent${i}`, capabilities: ['data'] });
    const tBuild = await timed(() => buildAgents(deps, 'all'));
    const records = await deps.registry.list();
    const ports = records.map((r) => r.port);
    const images = await Promise.all(records.map(async (r) => ({ ref: r.image!.ref, id: r.image!.id })));

    // an equivalent compose file: the same spec our engine creates, port for port
    const services: Record<string, unknown> = {};
    records.forEach((r, i) => {
      const s = agentContainerSpec(config, r, images[i]!);
      services[r.slug] = {
        image: s.image,
        ports: [`127.0.0.1:${r.port}:8080`],
        user: s.user,
        read_only: true,
        tmpfs: ['/tmp:rw,noexec,nosuid,nodev,size=16m,mode=1777'],
        cap_drop: ['ALL'],
        security_opt: ['no-new-privileges:true'],
        mem_limit: `${s.memoryMiB}m`,
        cpus: s.cpus,
        pids_limit: s.pidsLimit,
        init: true,
        restart: 'unless-stopped',
        environment: s.env,
        labels: { 'dev.nexus-delta.bench': 'true' },
        healthcheck: { test: ['CMD', ...s.healthcheck!.test], interval: `${s.healthcheck!.intervalS}s`, timeout: `${s.healthcheck!.timeoutS}s`, retries: s.healthcheck!.retries, start_period: `${s.healthcheck!.startPeriodS}s` },
      };
    });
    await writeFile(composeFile, yaml.dump({ version: '2.4', services }));

    const results = { startAll: [] as number[], compose: [] as number[], dockerRun: [] as number[], floor: [] as number[] };
    const engine = new DockerEngine();
    for (let round = 1; round <= ROUNDS; round++) {
      console.error(`bench: round ${round}/${ROUNDS}`);
      await removeContainers([wsLabel]);
      results.startAll.push(
        await timed(async () => {
          const code = await cli(ws, 'start-all');
          if (code !== 0) throw new Error(`start-all exited ${code}`);
          await allHealthy(ports);
        }),
      );
      await removeContainers([wsLabel]);

      results.compose.push(
        await timed(async () => {
          await run('docker-compose', ['-p', composeProject, '-f', composeFile, 'up', '-d'], { maxBuffer: 1 << 24 });
          await allHealthy(ports);
        }),
      );
      await run('docker-compose', ['-p', composeProject, '-f', composeFile, 'down', '-t', '1'], { maxBuffer: 1 << 24 });

      results.dockerRun.push(
        await timed(async () => {
          for (const r of records) {
            await run('docker', [
              'run', '-d', '--name', `nexus-bench-run-${r.slug}`, '--label', 'dev.nexus-delta.bench=true',
              '-p', `127.0.0.1:${r.port}:8080`, '--user', '1000:1000', '--read-only', '--tmpfs', '/tmp:rw,noexec,nosuid,nodev,size=16m,mode=1777',
              '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges:true', '--memory', '128m', '--cpus', '0.5',
              '--pids-limit', '128', '--init', '--restart', 'unless-stopped', r.image!.ref,
            ]);
          }
          await allHealthy(ports);
        }),
      );
      await removeContainers(['dev.nexus-delta.bench=true']);

      // the engine's own floor: create + start the same N containers with all requests in
      // flight at once, no health wait (what any client pays before a single agent boots)
      results.floor.push(
        await timed(() =>
          Promise.all(
            records.map(async (r, i) => {
              const spec = agentContainerSpec(config, r, images[i]!);
              spec.name = `nexus-bench-floor-${r.slug}`;
              spec.labels['dev.nexus-delta.bench'] = 'true';
              await engine.startContainer(await engine.createContainer(spec));
            }),
          ),
        ),
      );
      await removeContainers(['dev.nexus-delta.bench=true']);
    }

    // idle memory of the start-all fleet after it settles
    console.error('bench: idle memory');
    if ((await cli(ws, 'start-all')) !== 0) throw new Error('start-all failed');
    await allHealthy(ports);
    await new Promise((r) => setTimeout(r, 15_000));
    const cs = await docker.listContainers({ filters: { label: [wsLabel] } });
    // 5 samples 2 s apart per container: the median is the idle footprint; the peak may catch the
    // Docker HEALTHCHECK probe (a second, short-lived node process every 30 s)
    const samples: number[][] = cs.map(() => []);
    for (let s = 0; s < 5; s++) {
      const mem = await Promise.all(cs.map((c) => engine.containerMemory(c.Id)));
      mem.forEach((b, i) => samples[i]!.push(b / 2 ** 20));
      await new Promise((r) => setTimeout(r, 2000));
    }
    const mib = samples.map(median);
    const memMean = mib.reduce((a, b) => a + b, 0) / mib.length;
    const memMax = Math.max(...mib);
    const memPeak = Math.max(...samples.flat());
    await removeContainers([wsLabel]);

    // agent image size over the base
    const base = await docker.getImage(`nexus-delta-agent:${config.images.tag}`).inspect();
    const agentImg = await docker.getImage(images[0]!.ref).inspect();
    const addedBytes = agentImg.Size - base.Size;

    const sa = median(results.startAll);
    const dc = median(results.compose);
    const dr = median(results.dockerRun);
    const fl = median(results.floor);
    const dockerVersion = (await docker.version()).Version;
    const composeVersion = (await run('docker-compose', ['version', '--short'])).stdout.trim();
    const verdict = (ok: boolean) => (ok ? 'met' : '**not met**');
    const md = `# Benchmarks

Produced by \`npm run bench -- --agents ${N} --rounds ${ROUNDS}\` on ${new Date().toISOString().slice(0, 10)}:
${cpus().length} cores, Node ${process.versions.node}, Docker engine ${dockerVersion}, docker-compose ${composeVersion}.
Median of ${ROUNDS} interleaved rounds. Every run starts from no containers with all images already built
(building ${N} agent images from scratch took ${fmt(tBuild)} including the base image check).
"Healthy" means \`GET /health\` answers 200 on every agent's host port, polled every 100 ms, for all three.

## Start ${N} agents, from no containers to all healthy

| method | median | rounds | ratio to docker-compose |
| --- | --- | --- | --- |
| \`npm run agent -- start-all\` (CLI process start included) | ${fmt(sa)} | ${results.startAll.map(fmt).join(', ')} | **${(sa / dc).toFixed(2)}x** |
| \`docker-compose up -d\` of an equivalent file | ${fmt(dc)} | ${results.compose.map(fmt).join(', ')} | 1.00x |
| sequential \`docker run -d\` loop | ${fmt(dr)} | ${results.dockerRun.map(fmt).join(', ')} | ${(dr / dc).toFixed(2)}x |
| engine floor: create + start of the ${N} containers, all requests at once, no health wait | ${fmt(fl)} | ${results.floor.map(fmt).join(', ')} | ${(fl / dc).toFixed(2)}x |

Target: start-all at most 0.8x the time of docker-compose up: ${verdict(sa / dc <= 0.8)}.

The engine floor is why: on this machine dockerd creates and starts containers one after another
(about ${((fl / N) | 0)} ms each, whatever the number of requests in flight), so every method pays
${fmt(fl)} before its last agent can boot; start-all spends ${fmt(sa - fl)} beyond that floor,
docker-compose ${fmt(dc - fl)}. With identical containers, no client can be 0.8x of another here.

## Idle memory per agent container (docker stats, from 15 s after all healthy)

Each container sampled 5 times, 2 s apart; its idle footprint is the median of its samples.

| agents | mean | max | peak of any sample | target |
| --- | --- | --- | --- | --- |
| ${mib.length} | ${memMean.toFixed(1)} MiB | ${memMax.toFixed(1)} MiB | ${memPeak.toFixed(1)} MiB | at most 32 MiB: ${verdict(memMax <= 32)} |

The peak includes the Docker HEALTHCHECK probe: every 30 s it runs a second, short-lived \`node\`
process in the container (about 45 MB and 0.09 s of CPU; there is no shell or curl in the offline base).

## Agent image size over the base image

| base image | agent image | added |
| --- | --- | --- |
| ${(base.Size / 1e6).toFixed(1)} MB | ${(agentImg.Size / 1e6).toFixed(1)} MB | ${(addedBytes / 1024).toFixed(1)} KiB |

Target: under 2 MB added: ${verdict(addedBytes < 2e6)}.
`;
    console.error('bench: registry');
    const regMd = await registryBench(opt('records', 100));
    console.error('bench: router');
    const routerMd = await routerBench(opt('seconds', 5));
    console.error('bench: protocols');
    const protoMd = `## Protocol doors\n\n${await protocolBench(3)}\n${await doorBench(3)}`;
    console.error('bench: gateway');
    const gwMd = await gatewayBench(opt('seconds', 5), ROUNDS);
    console.error('bench: manager service');
    const mgrMd = await managerBench(ROUNDS);
    console.error('bench: dependencies');
    const depsMd = await dependencyBench();
    console.error('bench: idle agent');
    const idleMd = await idleBench(opt('idle-seconds', 90));
    console.error('bench: streams');
    const streamsMd = await streamsBench(ROUNDS);
    // the sections this run produced replace theirs; those other benches wrote (tasks, rollout, CLI, connections, dashboard) stay
    const benchFile = join(PACKAGE_ROOT, 'BENCHMARKS.md');
    const before = await readFile(benchFile, 'utf8').catch(() => '');
    await writeFile(benchFile, mergeSections(before, `${md}\n${regMd}\n${routerMd}\n${protoMd}\n${gwMd}\n${mgrMd}\n${depsMd}\n${idleMd}\n${streamsMd}`));
    console.log(md + '\n' + regMd + '\n' + routerMd + '\n' + protoMd + '\n' + gwMd + '\n' + mgrMd + '\n' + depsMd + '\n' + idleMd + '\n' + streamsMd);
  } finally {
    await removeContainers([wsLabel]).catch(() => undefined);
    await removeContainers(['dev.nexus-delta.bench=true']).catch(() => undefined);
    await run('docker-compose', ['-p', composeProject, '-f', composeFile, 'down', '-t', '1']).catch(() => undefined);
    const imgs = await docker.listImages({ filters: { label: [wsLabel] } });
    for (const i of imgs) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
    await rm(ws, { recursive: true, force: true });
  }
}

/** Wall-clock ms with sub-ms precision, comparable between processes on one machine. */
const wallMs = () => performance.timeOrigin + performance.now();

/**
 * The manager side of the streams bench: buildServer with the stream routes only, listening on
 * loopback; prints {"port"} and then, for each stdin line `burst` or `paced`, publishes 50 agents x
 * 100 events (`data.sent` = wallMs()): burst in batches of 100 per macrotask, paced 25 every 10 ms
 * (2,500 events/s).
 */
async function streamsBenchChild(): Promise<void> {
  const bus = new EventBus();
  const app = await buildManager({
    workspace: await mkdtemp(join(tmpdir(), 'nexus-bench-streams-')),
    bootstrapToken: process.env.NEXUS_MANAGER_TOKEN,
    limits: { api: { perMinute: 100_000 } },
    plugins: { api: [streamRoutes({ bus })] },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  console.log(JSON.stringify({ port: (app.server.address() as AddressInfo).port }));
  for await (const line of createInterface({ input: process.stdin })) {
    const [batch, pauseMs] = line === 'paced' ? [25, 10] : [100, 0];
    let k = 0;
    for (let n = 0; n < 100; n++) {
      for (let a = 0; a < 50; a++) {
        bus.publish({ type: 'fleet.note', topic: 'agents', agent: `agent-${a}`, data: { n, sent: wallMs() } });
        if (++k % batch === 0) await new Promise((r) => (pauseMs ? setTimeout(r, pauseMs) : setImmediate(r)));
      }
    }
  }
}

/**
 * Stream delivery latency (issue 10): 5,000 events to 20 subscribers (10 SSE, 10 WebSocket, all
 * of /events) over loopback, the manager in its own process, the clients in this one; latency =
 * arrival time minus the publish time stamped in the event (one machine, one clock). Per round a
 * burst and a paced run; percentiles over all deliveries of all rounds. Lost = expected minus received.
 */
async function streamsBench(rounds: number): Promise<string> {
  const token = randomBytes(24).toString('hex');
  const child = spawn(process.execPath, ['--import', 'tsx', join(PACKAGE_ROOT, 'scripts/bench.ts'), '--role', 'streams'], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, NEXUS_MANAGER_TOKEN: token },
  });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`streams bench child exited with ${code}`)));
    });
    const base = `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}/api/v1/events`;
    let sink: { sse: number[]; ws: number[] } = { sse: [], ws: [] };
    const clients: StreamClient[] = [];
    for (let i = 0; i < 20; i++) {
      const kind = i % 2 ? 'ws' : 'sse';
      const record = (e: { data: unknown }) => void sink[kind].push(wallMs() - (e.data as { sent: number }).sent);
      clients.push((kind === 'ws' ? wsClient : sseClient)(base, { authorization: `Bearer ${token}` }, record));
    }
    await Promise.all(clients.map((c) => c.status));
    const results: Record<'burst' | 'paced', { sse: number[]; ws: number[]; lost: number; p99s: number[] }> = {
      burst: { sse: [], ws: [], lost: 0, p99s: [] },
      paced: { sse: [], ws: [], lost: 0, p99s: [] },
    };
    const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))] ?? NaN;
    for (let r = 0; r < rounds; r++) {
      for (const mode of ['burst', 'paced'] as const) {
        sink = { sse: [], ws: [] };
        for (const c of clients) c.events.length = 0;
        child.stdin!.write(`${mode}
`);
        const until = Date.now() + 60_000;
        while (clients.some((c) => c.events.length < 5000) && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
        results[mode].lost += clients.reduce((n, c) => n + 5000 - c.events.length, 0);
        results[mode].sse.push(...sink.sse);
        results[mode].ws.push(...sink.ws);
        results[mode].p99s.push(pct([...sink.sse, ...sink.ws], 99));
      }
    }
    for (const c of clients) c.close();
    const row = (mode: 'burst' | 'paced', what: string) => {
      const x = results[mode];
      const all = [...x.sse, ...x.ws];
      const f = (xs: number[]) => `${pct(xs, 50).toFixed(1)} / ${pct(xs, 99).toFixed(1)} ms`;
      return `| ${what} | ${f(all)} | ${f(x.sse)} | ${f(x.ws)} | ${pct(all, 100).toFixed(1)} ms | ${x.p99s.map((p) => p.toFixed(1)).join(', ')} | ${x.lost} |`;
    };
    return `## Live streams: delivery latency

5,000 events (50 agents x 100) to 20 subscribers of \`/api/v1/events\` (10 SSE, 10 WebSocket) over loopback:
the manager (buildServer + stream routes) in its own process, the 20 clients in the bench process, ${rounds}
round(s) of each mode; latency = arrival minus the publish time stamped in the event; percentiles over
all ${(rounds * 100_000).toLocaleString('en')} deliveries of a mode. The clients share one event loop (parsing 100,000 envelopes
per run), so the figures include client-side queueing; on this 2-core machine other work competes too.

| mode | all p50 / p99 | SSE p50 / p99 | WebSocket p50 / p99 | max | p99 per round | lost |
| --- | --- | --- | --- | --- | --- | --- |
${row('burst', 'burst: 5,000 events as fast as possible (100 per macrotask)')}
${row('paced', 'paced: 2,500 events/s (25 every 10 ms)')}
`;
  } finally {
    child.kill();
  }
}

/**
 * CLI overhead: `node bin/agent.mjs list|create` (the built dist/ CLI, as `npm run agent` runs it)
 * wall time, minus the same use case run warm in this process (what the command itself does).
 * Reference in the same rounds: `node -e 0`, Node's own start, which every command pays and no
 * change to the CLI can remove. Empty workspace, local registry; rounds interleave the three,
 * median of `rounds` runs each. Milliseconds.
 */
async function cliBench(rounds: number): Promise<string> {
  // bin/agent.mjs runs the sources through tsx when dist/ is older than src/: build, so the built CLI is measured
  await run(process.execPath, ['--import', 'tsx', 'scripts/build.ts'], { cwd: PACKAGE_ROOT });
  const ws = await mkdtemp(join(tmpdir(), 'nexus-bench-cli-'));
  const env = { ...process.env, NEXUS_WORKSPACE: ws, NEXUS_LOG_LEVEL: 'warn' };
  const spawnWall = async (args: string[]) => {
    const t = performance.now();
    await new Promise<void>((resolve) => spawn(process.execPath, args, { env, stdio: 'ignore' }).on('close', () => resolve()));
    return performance.now() - t;
  };
  const wall = (...argv: string[]) => spawnWall([join(PACKAGE_ROOT, 'bin/agent.mjs'), ...argv]);
  const { openFleet } = await import('../src/fleet/open.js');
  await using fleet = await openFleet(loadConfig(ws, env), env);
  const inProcess = async (fn: () => Promise<unknown>) => {
    await fn(); // warm: modules loaded, engine connected
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  const nodeWall: number[] = [];
  const listWall: number[] = [];
  const listCalls: number[] = [];
  const createWall: number[] = [];
  const createCalls: number[] = [];
  for (let i = 0; i < rounds; i++) {
    nodeWall.push(await spawnWall(['-e', '0']));
    listWall.push(await wall('list'));
    listCalls.push(await inProcess(() => (async () => (await import('../src/fleet/list.js')).listAgents(fleet.deps))()));
    createWall.push(await wall('create', '--name', `CliBench${i}`));
    const t = performance.now();
    await createAgent(fleet.deps, { name: `InProc${i}` });
    createCalls.push(performance.now() - t);
  }
  const node = median(nodeWall);
  const row = (name: string, w: number[], calls: number[]) => {
    const overhead = median(w) - median(calls);
    return `| ${name} | ${median(w).toFixed(0)} | ${median(calls).toFixed(0)} | **${overhead.toFixed(0)}** | ${(overhead - node).toFixed(0)} |`;
  };
  // the first in-process create loads the create modules: it is left out
  const rows = [row('list', listWall, listCalls), row('create', createWall, createCalls.slice(1)), `| \`node -e 0\` (reference: Node's own start) | ${node.toFixed(0)} | - | - | - |`];
  await rm(ws, { recursive: true, force: true });
  return ["| command | CLI wall ms | use case in-process ms | CLI overhead ms | overhead beyond Node's start ms |", '|---|---|---|---|---|', ...rows].join('\n');
}

if (args.includes('--role')) {
  // a bench child (gateway roles, streams): serves until the parent kills it
  const role = args[args.indexOf('--role') + 1]!;
  await (role === 'streams' ? streamsBenchChild() : gatewayBenchChild(role, args));
} else {
  if (args.includes('--cli-only')) console.log(await cliBench(opt('rounds', 9)));
  else if (args.includes('--registry-only')) console.log(await registryBench(opt('records', 100)));
  else if (args.includes('--router-only')) console.log(await routerBench(opt('seconds', 5)));
  else if (args.includes('--rollout-only')) console.log(await (await import('./bench/rollout.js')).rolloutBench(opt('rollouts', 4)));
  else if (args.includes('--protocols-only')) console.log(await protocolBench(opt('seconds', 3)));
  else if (args.includes('--idle-only')) console.log(await idleBench(opt('idle-seconds', 90)));
  else if (args.includes('--gateway-only')) console.log(await gatewayBench(opt('seconds', 3), ROUNDS));
  else if (args.includes('--manager-only')) console.log(await managerBench(opt('rounds', 3)));
  else if (args.includes('--deps-only')) console.log(await dependencyBench());
  else if (args.includes('--tasks-only')) console.log(`${await tasksBench(opt('calls', 2000), opt('concurrency', 32), ROUNDS)}\n\n${await containerTasksBench(opt('calls', 2000), opt('concurrency', 32), ROUNDS)}`);
  else if (args.includes('--streams-only')) console.log(await streamsBench(ROUNDS));
  else if (args.includes('--door-only')) console.log(await doorBench(opt('seconds', 3)));
  else if (args.includes('--dashboard-only')) console.log(await (await import('./bench/dashboard.js')).dashboardBench({ changes: opt('changes', 40), rounds: opt('rounds', 5) }));
  else if (args.includes('--connections-only')) await (await import('./bench/connections.js')).runConnectionsBench(opt('connections', 100), opt('restarts', 3));
  else await main();
  // nothing else to wait for (gRPC channels can linger after their apps are deleted)
  process.exit(0);
}
