import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import getPort from 'get-port';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { buildServer as buildRuntime } from '../../src/runtime/server.js';
import { createManager, type Manager } from '../../src/server/manager.js';
import { testAgent } from '../helpers/gateway.js';
import { BOOTSTRAP } from '../helpers/manager.js';
import { eventually } from '../helpers/wait.js';

// Tasks inside the composed manager: the embedded store under .nexus/, the dispatcher started by
// createManager, a capability task routed through the real gateway to an in-process runtime.
let dir: string;
let engine: FakeEngine;
let m: Manager;
let port: number;
const admin = { authorization: `Bearer ${BOOTSTRAP}` };
const probe = {
  health: async (url: string) => ({ ok: [...engine.containers.values()].some((c) => c.state === 'running' && c.spec.hostPort?.port === Number(new URL(url).port)) }),
  tools: async () => [{ name: 'process_data', description: 'stats', parameters: { type: 'object' } }],
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nexus-manager-tasks-'));
  engine = new FakeEngine();
  port = await getPort();
  const config = loadConfig(dir, { NEXUS_PORT_RANGE: `${port}-${port}`, NEXUS_OFFLINE: 'always' });
  m = await createManager({ config, env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP }, engine, probe, tasks: { dispatcher: { pollMs: 20 } } });
});
afterEach(async () => {
  await m.close();
  await rm(dir, { recursive: true, force: true });
});

const inject = (method: 'GET' | 'POST', url: string, body?: unknown) =>
  m.app.inject({ method, url: `/api/v1${url}`, headers: admin, ...(body !== undefined ? { payload: body as object } : {}) });

describe('tasks in createManager', () => {
  it('runs a capability task on the healthy agent that has it, through the gateway; the store is .nexus/tasks.db', async () => {
    expect((await inject('POST', '/agents', { name: 'DataAgent', capabilities: ['data'] })).statusCode).toBe(201);
    expect((await inject('POST', '/agents/DataAgent/start')).json()).toMatchObject({ ok: 1 });
    const runtime = await buildRuntime(testAgent, { processMetrics: false });
    await runtime.listen({ host: '127.0.0.1', port });
    try {
      const r = await inject('POST', '/tasks/submit', { capability: 'data', tool_name: 'process_data', parameters: { data: [1, 2, 3] } });
      expect(r.statusCode).toBe(202);
      const { task_id } = r.json();
      const done = await eventually(async () => {
        const t = (await inject('GET', `/tasks/${task_id}`)).json();
        return t.status === 'succeeded' ? t : undefined;
      }, 10_000, 20);
      expect(done).toMatchObject({ capability: 'data', ran_on_agent: 'data-agent', ran_on_replica: expect.any(String) });
      expect((await inject('GET', `/tasks/${task_id}/result`)).json().result).toEqual({ result: expect.objectContaining({ sum: 6 }) });
      expect((await inject('GET', '/metrics/tasks')).json()).toMatchObject({ store: 'sqlite', counts: { succeeded: 1 } });
      expect((await stat(join(dir, '.nexus', 'tasks.db'))).isFile()).toBe(true);
    } finally {
      await runtime.close();
    }
  });
});
