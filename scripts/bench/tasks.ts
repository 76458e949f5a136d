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
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
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
