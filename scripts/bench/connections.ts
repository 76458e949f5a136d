/**
 * (--connections-only) Agent connections (issue 10 benchmark): the manager's memory per connected
 * agent (goal under 2 MB) and the reconnect time of 100 agents after a manager restart.
 *
 * - The manager is the real one (createManager: /ws/agent, commands with their SQLite store, the
 *   event bus, tasks) over a temp workspace with N agent records and tokens, on the FakeEngine
 *   (no container is started), in its own process run with --expose-gc, listening on 127.0.0.1:9780.
 * - The agents are the runtime's real dial-in code (src/runtime/connect.ts: HELLO, heartbeats,
 *   telemetry, reconnect with the default backoff: 1 s doubling, equal jitter), many links per
 *   process (4 processes) to keep the bench cheap; a stub tool invoker.
 * - Memory: the manager's RSS and heap (used + external) after forced GCs, before any agent and
 *   with all N connected and sending telemetry every second (each connection holds its latest);
 *   per agent = difference / N.
 * - Reconnect: SIGKILL the manager, start a new one on the same port, time each agent's welcome
 *   from the moment the new manager listens (and from the kill); `rounds` restarts, percentiles
 *   over every agent of every round.
 * Loopback only; the temp workspace is removed at the end.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadConfig } from '../../src/config/config.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { issueAgentToken } from '../../src/fleet/agent-tokens.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { LocalRegistry } from '../../src/registry/local.js';
import { connectToManager } from '../../src/runtime/connect.js';
import { ToolResult } from '../../src/runtime/invoke.js';
import { createManager } from '../../src/server/manager.js';

const PORT = 9780;
const PROCESSES = 4;
const SELF = fileURLToPath(import.meta.url);
const wallMs = () => performance.timeOrigin + performance.now();

interface Mem {
  rss: number;
  heapUsed: number;
  external: number;
  connections: number;
}

/** The manager child: createManager on the workspace in argv, then answers `mem` with its memory after GC. */
async function managerChild(workspace: string): Promise<void> {
  const m = await createManager({
    config: loadConfig(workspace, { NEXUS_OFFLINE: 'always' }),
    env: { NEXUS_MANAGER_TOKEN: 'b'.repeat(48) },
    engine: new FakeEngine(),
    log: { level: 'warn', stream: process.stderr },
    limits: { api: { perMinute: 100_000 } },
  });
  await m.app.listen({ host: '127.0.0.1', port: PORT });
  process.send!({ listening: wallMs() });
  process.on('message', async (msg: { cmd?: string }) => {
    if (msg.cmd !== 'mem') return;
    const gc = (globalThis as { gc?: () => void }).gc!;
    for (let i = 0; i < 4; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 50));
    }
    const u = process.memoryUsage();
    process.send!({ mem: { rss: u.rss, heapUsed: u.heapUsed, external: u.external, connections: m.connections.size } satisfies Mem });
  });
}

/** An agents child: one link per agent in AGENTS (JSON [{id, token}]); reports each welcome as {welcome: {id, at}}. */
function agentsChild(): void {
  const agents = JSON.parse(process.env.AGENTS ?? '[]') as { id: string; token: string }[];
  const links = agents.map((a) =>
    connectToManager({
      url: `http://127.0.0.1:${PORT}`,
      token: a.token,
      agentId: a.id,
      site: `bench-${process.pid}`,
      version: '1.0.0',
      capabilities: ['data'],
      tools: ['echo'],
      invokeTool: async () => new ToolResult('{}'),
      // each connection then holds its latest telemetry, as in steady state
      telemetryIntervalS: 1,
      log: { info: () => process.send!({ welcome: { id: a.id, at: wallMs() } }), warn: () => undefined },
    }),
  );
  process.on('SIGTERM', () => void Promise.all(links.map((l) => l.close())).then(() => process.exit(0)));
}

function startManager(workspace: string): Promise<{ child: ChildProcess; listening: number }> {
  const child = fork(SELF, ['--role', 'manager', workspace], { execArgv: ['--expose-gc', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench manager exited with ${code}`)));
    child.on('message', (m: { listening?: number }) => m.listening && resolve({ child, listening: m.listening }));
  });
}

function mem(child: ChildProcess): Promise<Mem> {
  return new Promise((resolve) => {
    const on = (m: { mem?: Mem }) => {
      if (!m.mem) return;
      child.off('message', on);
      resolve(m.mem);
    };
    child.on('message', on);
    child.send({ cmd: 'mem' });
  });
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

/** Run the bench (see the module docstring); returns the BENCHMARKS.md section. */
export async function connectionsBench(n = 100, rounds = 3): Promise<string> {
  const ws = await mkdtemp(join(tmpdir(), 'nexus-bench-conn-'));
  const children: ChildProcess[] = [];
  try {
    const config = loadConfig(ws, { NEXUS_OFFLINE: 'always' });
    const registry = new LocalRegistry(ws);
    const agents: { id: string; token: string }[] = [];
    for (let i = 0; i < n; i++) {
      const id = `bench-conn-${i}`;
      await registry.create(
        { name: id, slug: id, description: 'bench', capabilities: ['data'], category: 'general', model: 'none', version: '1.0.0' },
        { range: { from: 10_000, to: 10_000 + n }, isHostPortFree: async () => true },
      );
      agents.push({ id, token: await issueAgentToken({ config, registry }, id) });
    }
    await registry.close();

    let manager = await startManager(ws);
    children.push(manager.child);
    // the start-up peak (tsx compiling) is returned over the first GCs: settle, then measure
    await new Promise((r) => setTimeout(r, 1000));
    await mem(manager.child);
    await new Promise((r) => setTimeout(r, 1000));
    const before = await mem(manager.child);

    const welcomes: { id: string; at: number }[] = [];
    const per = Math.ceil(n / PROCESSES);
    for (let p = 0; p < PROCESSES; p++) {
      const list = agents.slice(p * per, (p + 1) * per);
      if (!list.length) continue;
      const c = fork(SELF, ['--role', 'agents'], { execArgv: ['--import', 'tsx'], env: { ...process.env, AGENTS: JSON.stringify(list) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      c.on('message', (m: { welcome?: { id: string; at: number } }) => m.welcome && welcomes.push(m.welcome));
      children.push(c);
    }
    const allSince = async (t: number) => {
      const end = Date.now() + 120_000;
      while (new Set(welcomes.filter((w) => w.at >= t).map((w) => w.id)).size < n) {
        if (Date.now() > end) throw new Error('agents did not all connect within 120 s');
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await allSince(0);
    await new Promise((r) => setTimeout(r, 3000));
    const after = await mem(manager.child);
    if (after.connections !== n) throw new Error(`expected ${n} connections, the manager has ${after.connections}`);

    const fromListen: number[] = [];
    const fromKill: number[] = [];
    let restartMs = 0;
    for (let r = 0; r < rounds; r++) {
      console.error(`bench: connections: restart ${r + 1}/${rounds}`);
      const killedAt = wallMs();
      const old = manager.child;
      old.removeAllListeners('exit');
      old.kill('SIGKILL');
      await new Promise((res) => old.once('exit', res));
      manager = await startManager(ws);
      children.push(manager.child);
      restartMs += manager.listening - killedAt;
      await allSince(killedAt);
      const first = new Map<string, number>();
      for (const w of welcomes) if (w.at >= killedAt && !first.has(w.id)) first.set(w.id, w.at);
      for (const at of first.values()) {
        fromListen.push(at - manager.listening);
        fromKill.push(at - killedAt);
      }
      await new Promise((res) => setTimeout(res, 1000));
    }

    const MB = 1e6;
    const perRss = (after.rss - before.rss) / n / MB;
    const perHeap = (after.heapUsed + after.external - before.heapUsed - before.external) / n / MB;
    const f = (x: number) => (x / 1000).toFixed(2);
    return `## Agent connections: manager memory per agent, reconnect after a restart (\`npm run bench -- --connections-only\`)

\`flock /tmp/nexus-integration.lock npm run bench -- --connections-only\` on ${new Date().toISOString().slice(0, 10)}: the real manager
(createManager on the FakeEngine, /ws/agent, commands store, event bus) in its own process with
--expose-gc on 127.0.0.1:${PORT}; ${n} agents running the runtime's dial-in code (src/runtime/connect.ts,
default backoff: 1 s doubling, equal jitter, cap 30 s; telemetry every second) in ${PROCESSES} processes;
the shared 2-core machine. RSS moves by whole pages and with the allocator's caches: the heap
figure is the steadier one.

| manager, after forced GC | before agents | ${n} connected | per agent | goal |
| --- | --- | --- | --- | --- |
| RSS | ${(before.rss / MB).toFixed(1)} MB | ${(after.rss / MB).toFixed(1)} MB | ${perRss.toFixed(3)} MB | under 2 MB: ${perRss < 2 ? 'met' : 'NOT met'} (${(perRss / 2).toFixed(3)}x the goal) |
| heap used + external | ${(before.heapUsed / MB + before.external / MB).toFixed(1)} MB | ${(after.heapUsed / MB + after.external / MB).toFixed(1)} MB | ${perHeap.toFixed(3)} MB | |

Reconnect after SIGKILL of the manager and a new one on the same port, ${rounds} restarts x ${n} agents
(the new manager took ${f(restartMs / rounds)} s on average from the kill to listening):

| time until an agent's welcome | p50 | p99 | max | goal |
| --- | --- | --- | --- | --- |
| from the new manager listening | ${f(pct(fromListen, 50))} s | ${f(pct(fromListen, 99))} s | ${f(Math.max(...fromListen))} s | all within 10 s: ${Math.max(...fromListen) <= 10_000 ? 'met' : 'NOT met'} (max ${(Math.max(...fromListen) / 10_000).toFixed(2)}x the goal) |
| from the kill | ${f(pct(fromKill, 50))} s | ${f(pct(fromKill, 99))} s | ${f(Math.max(...fromKill))} s | |

The reconnect time is mostly the backoff: an agent that failed k dials waits 2^k s x (0.5-1)
before the next, so the figures depend on how long the manager was away; jitter spreads the
${n} HELLOs instead of one burst.
`;
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await rm(ws, { recursive: true, force: true });
  }
}

const HEADING = '## Agent connections:';

/** `--connections-only`: run the bench, print its section and put it in BENCHMARKS.md (replacing this bench's section, other sections untouched). */
export async function runConnectionsBench(n: number, rounds: number): Promise<void> {
  const section = await connectionsBench(n, rounds);
  console.log(section);
  const file = join(PACKAGE_ROOT, 'BENCHMARKS.md');
  const md = await readFile(file, 'utf8');
  const start = md.indexOf(HEADING);
  if (start < 0) return writeFile(file, `${md.replace(/\n*$/, '\n\n')}${section}`);
  const next = md.indexOf('\n## ', start + HEADING.length);
  await writeFile(file, `${md.slice(0, start)}${section}${next < 0 ? '' : `\n${md.slice(next + 1)}`}`);
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const argv = process.argv.slice(2);
  const role = argv[argv.indexOf('--role') + 1];
  if (role === 'manager') await managerChild(argv[argv.indexOf('--role') + 2]!);
  else if (role === 'agents') agentsChild();
}
