import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { NewTaskSchema } from '../../src/tasks/model.js';
import { SqliteTaskStore, tasksDbPath } from '../../src/tasks/sqlite-store.js';
import { taskStoreContract } from '../helpers/task-store-contract.js';

const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
const files = new WeakMap<SqliteTaskStore, string>();

async function open(): Promise<SqliteTaskStore> {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-tasks-'));
  dirs.push(dir);
  const s = SqliteTaskStore.forWorkspace(dir);
  files.set(s, tasksDbPath(dir));
  return s;
}

taskStoreContract('sqlite (embedded, WAL)', open, async (first) => new SqliteTaskStore(files.get(first as SqliteTaskStore)!));

describe('SqliteTaskStore', () => {
  it('lives in <workspace>/.nexus/tasks.db in WAL mode, with the queue index used by a claim', async () => {
    const s = await open();
    const file = files.get(s)!;
    expect(file.endsWith(join('.nexus', 'tasks.db'))).toBe(true);
    await s.submit(NewTaskSchema.parse({ agent: 'a', tool_name: 't' }), 0);
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    const plan = db.prepare(`EXPLAIN QUERY PLAN SELECT seq FROM tasks WHERE status = 'queued' AND run_at <= 0 ORDER BY prio, seq LIMIT 1`).all() as { detail: string }[];
    expect(plan.map((p) => p.detail).join(' ')).toContain('tasks_queue');
    db.close();
    await s.close();
  });

  it('refuses a record that breaks the task schema with TASK_STORE_CORRUPT', async () => {
    const s = await open();
    const { task } = await s.submit(NewTaskSchema.parse({ agent: 'a', tool_name: 't' }), 0);
    const db = new Database(files.get(s)!);
    db.prepare(`UPDATE tasks SET doc = json_set(doc, '$.priority', 'urgent') WHERE task_id = ?`).run(task.task_id);
    db.close();
    await expect(s.get(task.task_id)).rejects.toMatchObject({ code: 'TASK_STORE_CORRUPT', message: expect.stringContaining('priority') });
    await s.close();
  });
});
