import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteTaskStore } from '../../src/tasks/sqlite-store.js';
import { LEASE_EXPIRED } from '../../src/tasks/transitions.js';
import { tempWorkspace } from '../helpers/manager.js';
import { startWorkRuntimes } from '../helpers/task-runtimes.js';
import { eventually } from '../helpers/wait.js';

const CHILD = fileURLToPath(new URL('../helpers/tasks-child.ts', import.meta.url));
const children: ChildProcess[] = [];
afterAll(() => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')));

/** Start the task side of a manager in a child process; `lines` gets its stdout JSON lines. */
function startChild(env: Record<string, string>, onLine: (msg: Record<string, unknown>) => void): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  createInterface({ input: child.stdout! }).on('line', (l) => onLine(JSON.parse(l) as Record<string, unknown>));
  return child;
}

describe('task durability (issue 10 §3)', () => {
  it('SIGKILL mid-run with 200 accepted tasks: a new process on the same store finishes all 200, none run twice without a recorded retry', async () => {
    const { runtimes, log, close } = await startWorkRuntimes(3);
    const workspace = await tempWorkspace();
    const env = { WORKSPACE: workspace, RUNTIMES: JSON.stringify(runtimes.map(({ slug, url }) => ({ slug, url }))), LEASE_MS: '1500' };
    const accepted: string[] = [];
    let submitted = false;
    const first = startChild({ ...env, SUBMIT: '200' }, (m) => {
      if (typeof m.accepted === 'string') accepted.push(m.accepted);
      if (m.submitted) submitted = true;
    });
    // kill it while work is in flight: all accepted, some finished, some running, most still queued
    await eventually(async () => (submitted && [...log.runs.values()].length >= 30 ? true : undefined), 60_000, 5);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    expect(accepted).toHaveLength(200);
    const store = SqliteTaskStore.forWorkspace(workspace);
    const before = await store.counts();
    expect(before.succeeded).toBeLessThan(200);

    startChild(env, () => undefined);
    await eventually(async () => ((await store.counts()).succeeded === 200 ? true : undefined), 120_000, 100);
    let expiredLeases = 0;
    for (const id of accepted) {
      const t = (await store.get(id))!;
      expect(t.status).toBe('succeeded');
      const key = (t.parameters as { key: number }).key;
      const runs = log.runs.get(key) ?? 0;
      // every execution the agent saw is a recorded attempt: a second run always shows a retry
      expect(runs, `task ${key}`).toBeLessThanOrEqual(t.attempts.length);
      expect(t.attempts.filter((a) => !a.error)).toHaveLength(1);
      expiredLeases += t.attempts.filter((a) => a.error === LEASE_EXPIRED).length;
    }
    // the tasks running at the kill came back through lease expiry
    expect(expiredLeases).toBeGreaterThanOrEqual(before.running);
    expect(log.runs.size).toBe(200);
    await store.close();
    await close();
  });

  it('SIGKILL while 16 submitters share group commits: every task whose submit returned is stored and finishes after a restart', async () => {
    const { runtimes, close } = await startWorkRuntimes(3);
    const workspace = await tempWorkspace();
    const env = { WORKSPACE: workspace, RUNTIMES: JSON.stringify(runtimes.map(({ slug, url }) => ({ slug, url }))), LEASE_MS: '1500' };
    const accepted: string[] = [];
    const first = startChild({ ...env, SUBMIT: '2000', SUBMIT_CONCURRENCY: '16' }, (m) => {
      if (typeof m.accepted === 'string') accepted.push(m.accepted);
    });
    await eventually(async () => (accepted.length >= 60 ? true : undefined), 60_000, 1);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const seen = [...accepted];
    // the kill landed while submits were still coming in (batches in flight)
    expect(seen.length).toBeLessThan(2000);
    const store = SqliteTaskStore.forWorkspace(workspace);
    startChild(env, () => undefined);
    const counts = await eventually(async () => {
      const c = await store.counts();
      return c.queued === 0 && c.running === 0 ? c : undefined;
    }, 120_000, 100);
    for (const id of seen) expect((await store.get(id))?.status, id).toBe('succeeded');
    expect(counts.succeeded).toBeGreaterThanOrEqual(seen.length);
    expect(counts.failed + counts.dead + counts.cancelled).toBe(0);
    await store.close();
    await close();
  });
});
