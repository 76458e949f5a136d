/**
 * Tasks end to end vs direct POST /execute (issue 10's benchmark: goal at least 0.5x the
 * throughput), `npm run bench -- --tasks-only [--calls n] [--concurrency c] [--rounds r]`.
 *
 * One in-process agent runtime (process_data) on loopback; three paths at the same `concurrency`
 * clients, `n` calls each, in interleaved rounds (median):
 * - direct: POST /execute through an undici Pool of `concurrency` connections;
 * - gateway: the manager's Gateway (executeViaGateway), the transport a task's call uses: shown
 *   for reference, it bounds what the tasks path can reach;
 * - tasks: Dispatcher.submit (the body of POST /tasks/submit: validated, committed to the embedded
 *   SQLite store before it resolves) then the client waits for the task's `succeeded` event before
 *   its next submit; the dispatcher claims, calls through the same Gateway, records the outcome.
 * Each row also gives the process CPU per call (process.cpuUsage, all threads: the runtime is in
 * the same process) since the machine is shared and wall-clock throughput swings between runs.
 *
 * Then the shape users run (containerTasksBench): one real agent container created and started
 * through the fleet use cases (its default limits: 0.5 CPU) and a manager from createManager (the
 * same store, dispatcher, gateway and event bus as `agent serve`) listening on loopback; direct =
 * POST /execute on the container's published port, tasks = POST /api/v1/tasks/submit with a
 * bearer token, then the client waits for the task's `task.succeeded` on the manager's event bus.
 * Ports 9851-9852 (the agent's range); containers and images removed by the workspace label.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import yaml from 'js-yaml';
import { Pool } from 'undici';
import { loadConfig } from '../../src/config/config.js';
import { LABEL } from '../../src/engine/labels.js';
import { workspaceId } from '../../src/fleet/context.js';
import { probeHealth } from '../../src/fleet/health.js';
import { createAgent, startAgents } from '../../src/fleet/manager.js';
import { baseImageRef } from '../../src/names.js';
import { createManager } from '../../src/server/manager.js';
import { processData } from '../../agent-template/tools/process_data.js';
import { defineAgent } from '../../src/runtime/define.js';
import { buildServer } from '../../src/runtime/server.js';
import { Gateway } from '../../src/server/gateway/gateway.js';
import { Dispatcher } from '../../src/tasks/dispatcher.js';
import { SqliteTaskStore } from '../../src/tasks/sqlite-store.js';

interface Run {
  perS: number;
  cpuUsPerCall: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** `concurrency` clients doing `work` until `n` calls are done: calls/s and CPU µs per call. */
async function clients(n: number, concurrency: number, work: () => Promise<void>): Promise<Run> {
  let left = n;
  const t0 = performance.now();
  const c0 = cpuMs();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) await work();
    }),
  );
  return { perS: n / ((performance.now() - t0) / 1000), cpuUsPerCall: ((cpuMs() - c0) * 1000) / n };
}

/** The markdown section body (table and notes). */
export async function tasksBench(n: number, concurrency: number, rounds: number): Promise<string> {
  const runtime = await buildServer(defineAgent({ name: 'TaskBench', description: 'bench', version: '1.0.0', tools: [processData] }), { processMetrics: false });
  await runtime.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(runtime.server.address() as AddressInfo).port}`;
  const parameters = { data: [1, 2, 3, 4, 5] };
  const body = JSON.stringify({ tool_name: 'process_data', parameters });
  const runs = { direct: [] as Run[], gateway: [] as Run[], tasks: [] as Run[] };
  let commits = 0;
  let tasksDone = 0;
  for (let r = 0; r < rounds; r++) {
    const pool = new Pool(url, { connections: concurrency });
    runs.direct.push(
      await clients(n, concurrency, async () => {
        const res = await pool.request({ path: '/execute', method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await res.body.text();
        if (res.statusCode !== 200) throw new Error(`direct call answered ${res.statusCode}`);
      }),
    );
    await pool.close();

    const gateway = new Gateway({ resolve: (slug) => ({ slug, replicas: [{ id: 'r0', url, inRotation: true }] }), connectionsPerReplica: concurrency });
    runs.gateway.push(
      await clients(n, concurrency, async () => {
        const res = await gateway.executeViaGateway('bench', { tool_name: 'process_data', parameters });
        if (res.status !== 200) throw new Error(`gateway call answered ${res.status}`);
      }),
    );

    const ws = await mkdtemp(join(tmpdir(), 'nexus-bench-tasks-'));
    const store = SqliteTaskStore.forWorkspace(ws);
    const commit = store.commit.bind(store);
    store.commit = (batch, now) => {
      commits++;
      return commit(batch, now);
    };
    const waiting = new Map<string, () => void>();
    const finished = new Set<string>();
    const d = new Dispatcher({
      store,
      gateway,
      perAgentLimit: concurrency,
      pollMs: 50,
      onEvent: (e) => {
        if (e.status === 'succeeded') (waiting.get(e.task_id) ?? (() => finished.add(e.task_id)))();
        else if (e.status !== 'queued' && e.status !== 'running') throw new Error(`task ${e.task_id} ended ${e.status}`);
      },
    });
    d.start();
    runs.tasks.push(
      await clients(n, concurrency, async () => {
        const { task } = await d.submit({ agent: 'bench', tool_name: 'process_data', parameters });
        if (finished.delete(task.task_id)) return;
        await new Promise<void>((resolve) => waiting.set(task.task_id, resolve));
        waiting.delete(task.task_id);
      }),
    );
    tasksDone += n;
    await d.stop();
    await gateway.close();
    await store.close();
    await rm(ws, { recursive: true, force: true });
  }
  await runtime.close();
  const perS = (xs: Run[]) => median(xs.map((x) => x.perS));
  const cpu = (xs: Run[]) => median(xs.map((x) => x.cpuUsPerCall));
  const row = (name: string, xs: Run[]) => `| ${name} | ${perS(xs).toFixed(0)} | ${cpu(xs).toFixed(0)} | ${(perS(xs) / perS(runs.direct)).toFixed(2)} |`;
  return [
    `${n} calls per round, ${concurrency} concurrent clients on every path, ${rounds} interleaved rounds (median), one in-process runtime (process_data), embedded SQLite store (WAL, synchronous=NORMAL).`,
    '',
    '| path | calls/s (median) | process CPU µs per call (median) | throughput vs direct |',
    '|---|---|---|---|',
    row('direct POST /execute', runs.direct),
    row("gateway only (the tasks path's transport, reference)", runs.gateway),
    row('tasks: submit -> succeeded (store + dispatcher + gateway)', runs.tasks),
    '',
    `Ratio tasks / direct: ${(perS(runs.tasks) / perS(runs.direct)).toFixed(2)} (goal >= 0.5); tasks / gateway only: ${(perS(runs.tasks) / perS(runs.gateway)).toFixed(2)}. SQLite write transactions: ${(commits / tasksDone).toFixed(3)} per task (group commits; claims made outside them: polling rounds only).`,
  ].join('\n');
}


/**
 * The container comparison (see the module comment): `rounds` interleaved rounds of `n` calls per
 * path at `concurrency` clients; paths: direct POST /execute on the published port, the manager's
 * gateway route POST /api/v1/agents/{slug}/execute (reference: the tasks path's transport behind
 * the manager's HTTP + auth), and tasks submit -> succeeded over the manager's HTTP API. Rate limits
 * are lifted for the run. Returns the markdown table and notes.
 */
export async function containerTasksBench(n: number, concurrency: number, rounds: number): Promise<string> {
  const docker = new Docker();
  const ws = await mkdtemp(join(tmpdir(), 'nexus-bench-tasksc-'));
  await writeFile(join(ws, 'nexus.yaml'), yaml.dump({ project: 'benchtasks', ports: { range: '9851-9852' }, images: { tag: 'bench-tasks' }, labels: { 'dev.nexus-delta.bench': 'true' } }));
  const config = loadConfig(ws, {});
  const wsLabel = `${LABEL.workspace}=${workspaceId(ws)}`;
  const admin = randomBytes(24).toString('hex');
  const m = await createManager({ config, env: { ...process.env, NEXUS_MANAGER_TOKEN: admin }, limits: { api: { perMinute: 1e9 }, gateway: { perMinute: 1e9 } } });
  const pools: Pool[] = [];
  try {
    await createAgent(m.fleet.deps, { name: 'TaskBenchAgent', capabilities: ['data'] });
    await startAgents(m.fleet.deps, ['TaskBenchAgent']);
    const rec = (await m.fleet.deps.registry.list()).find((r) => r.slug === 'task-bench-agent')!;
    const agentUrl = `http://127.0.0.1:${rec.port}`;
    for (let i = 0; i < 600 && !(await probeHealth(agentUrl, 500)).ok; i++) await new Promise((r) => setTimeout(r, 200));
    const managerUrl = await m.app.listen({ host: '127.0.0.1', port: 0 });
    const parameters = { data: [1, 2, 3, 4, 5] };
    const exec = JSON.stringify({ tool_name: 'process_data', parameters });
    const submit = JSON.stringify({ agent: rec.slug, tool_name: 'process_data', parameters });
    const json = { 'content-type': 'application/json' };
    const auth = { ...json, authorization: `Bearer ${admin}` };
    const direct = new Pool(agentUrl, { connections: concurrency });
    const api = new Pool(managerUrl, { connections: concurrency });
    pools.push(direct, api);
    const post = async (pool: Pool, path: string, headers: Record<string, string>, body: string, want: number) => {
      const res = await pool.request({ path, method: 'POST', headers, body });
      const text = await res.body.text();
      if (res.statusCode !== want) throw new Error(`${path} answered ${res.statusCode}: ${text.slice(0, 200)}`);
      return text;
    };
    // task.succeeded on the manager's bus (what /api/v1/tasks/stream/{id} serves); failures stop the run
    const waiting = new Map<string, () => void>();
    const finished = new Set<string>();
    let failure: string | undefined;
    m.events.subscribe(
      { topic: 'tasks' },
      {
        send: (e) => {
          if (!e.taskId) return;
          if (e.type === 'task.succeeded') (waiting.get(e.taskId) ?? (() => finished.add(e.taskId!)))();
          else if (e.type !== 'task.queued' && e.type !== 'task.running') failure ??= `task ${e.taskId}: ${e.type}`;
        },
        bufferedBytes: () => 0,
        close: () => undefined,
      },
    );
    const paths = {
      direct: () => post(direct, '/execute', json, exec, 200).then(() => undefined),
      gateway: () => post(api, `/api/v1/agents/${rec.slug}/execute`, auth, exec, 200).then(() => undefined),
      tasks: async () => {
        const { task_id } = JSON.parse(await post(api, '/api/v1/tasks/submit', auth, submit, 202)) as { task_id: string };
        if (failure) throw new Error(failure);
        if (finished.delete(task_id)) return;
        await new Promise<void>((resolve) => waiting.set(task_id, resolve));
        waiting.delete(task_id);
      },
    };
    // warm-up: pools, JIT, the agent's first calls
    for (const f of Object.values(paths)) await clients(Math.min(200, n), concurrency, f);
    const runs = { direct: [] as Run[], gateway: [] as Run[], tasks: [] as Run[] };
    const ratios: number[] = [];
    for (let r = 0; r < rounds; r++) {
      for (const k of ['direct', 'gateway', 'tasks'] as const) runs[k].push(await clients(n, concurrency, paths[k]));
      ratios.push(runs.tasks[r]!.perS / runs.direct[r]!.perS);
    }
    const perS = (xs: Run[]) => median(xs.map((x) => x.perS));
    const cpu = (xs: Run[]) => median(xs.map((x) => x.cpuUsPerCall));
    const row = (name: string, xs: Run[]) => `| ${name} | ${perS(xs).toFixed(0)} | ${cpu(xs).toFixed(0)} | ${(perS(xs) / perS(runs.direct)).toFixed(2)} |`;
    const ratio = perS(runs.tasks) / perS(runs.direct);
    return [
      `${n} calls per round, ${concurrency} concurrent clients on every path, ${rounds} interleaved rounds (median) after a warm-up; one agent container (process_data, default limits: ${config.resources.cpus} CPU) reached on its published port; the manager (createManager: embedded SQLite store, dispatcher, gateway, event bus, bearer token) in the bench's process. Manager CPU: the bench process's, the agent's is not in it.`,
      '',
      '| path | calls/s (median) | bench+manager process CPU µs per call (median) | throughput vs direct |',
      '|---|---|---|---|',
      row('direct POST /execute on the published port', runs.direct),
      row("manager POST /api/v1/agents/{slug}/execute (the tasks path's transport, reference)", runs.gateway),
      row('tasks: POST /api/v1/tasks/submit -> task.succeeded on the bus', runs.tasks),
      '',
      `Ratio tasks / direct: **${ratio.toFixed(2)}** (rounds: ${ratios.map((x) => x.toFixed(2)).join(', ')}; goal >= 0.5: ${ratio >= 0.5 ? 'met' : '**not met**'}). Calls/s per round, direct: ${runs.direct.map((x) => x.perS.toFixed(0)).join(', ')}; gateway route: ${runs.gateway.map((x) => x.perS.toFixed(0)).join(', ')}; tasks: ${runs.tasks.map((x) => x.perS.toFixed(0)).join(', ')}.`,
    ].join('\n');
  } finally {
    for (const p of pools) await p.close().catch(() => undefined);
    await m.close();
    const cs = await docker.listContainers({ all: true, filters: { label: [wsLabel] } });
    await Promise.all(cs.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    const imgs = await docker.listImages({ filters: { label: [wsLabel] } });
    for (const i of imgs) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
    // the base image under this run's tag: an untag when another tag shares it (the usual case)
    await docker.getImage(baseImageRef(config.images.tag)).remove().catch(() => undefined);
    await rm(ws, { recursive: true, force: true });
  }
}
