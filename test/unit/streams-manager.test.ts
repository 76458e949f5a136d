import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import getPort from 'get-port';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { createManager, type Manager } from '../../src/server/manager.js';
import { createToken } from '../../src/server/tokens.js';
import { BOOTSTRAP } from '../helpers/manager.js';
import { sseClient, wsClient } from '../helpers/streams.js';
import { validateOpenApi31 } from '../helpers/schemas.js';
import { eventually } from '../helpers/wait.js';

// The streams as createManager wires them: fleet actions run through the API reach the agents
// stream of that agent only; metrics snapshots arrive on their own stream.
describe('streams in the manager (createManager, fake engine, real sockets)', () => {
  let dir: string;
  let m: Manager;
  let base: string;
  let viewer: Record<string, string>;
  const admin = { authorization: `Bearer ${BOOTSTRAP}` };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nexus-streams-manager-'));
    const engine = new FakeEngine();
    const port = await getPort();
    const config = loadConfig(dir, { NEXUS_PORT_RANGE: `${port}-${port + 1}`, NEXUS_OFFLINE: 'always' });
    const probe = { health: async () => ({ ok: true }), tools: async () => [] };
    m = await createManager({ config, env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP }, engine, probe, metricsIntervalMs: 50 });
    await m.app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(m.app.server.address() as { port: number }).port}/api/v1`;
    viewer = { authorization: `Bearer ${(await createToken({ scope: 'viewer', ttl: '1h' }, { workspace: dir })).token}` };
  });
  afterAll(async () => {
    await m.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a fleet action reaches the stream of its agent (asked by name) and not another agent\'s', async () => {
    const mine = sseClient(`${base}/agents/stream?agent=DataAgent`, viewer);
    const other = wsClient(`${base}/agents/stream?agent=other-agent`, viewer);
    expect([await mine.status, await other.status]).toEqual([200, 101]);
    const inject = (url: string, body?: object) => m.app.inject({ method: 'POST', url: `/api/v1${url}`, headers: admin, ...(body ? { payload: body } : {}) });
    expect((await inject('/agents', { name: 'DataAgent', capabilities: ['data'] })).statusCode).toBe(201);
    expect((await inject('/agents/DataAgent/start')).statusCode).toBe(200);
    await eventually(async () => (mine.events.some((e) => e.type === 'fleet.agent') ? true : undefined), 10_000, 20);
    expect(mine.events.length).toBeGreaterThan(1);
    expect(new Set(mine.events.map((e) => e.agent))).toEqual(new Set(['data-agent']));
    expect(mine.events.find((e) => e.type === 'fleet.agent')).toMatchObject({ topic: 'agents', data: { kind: 'agent', agent: 'data-agent' } });
    expect(other.events).toEqual([]);
    mine.close();
    other.close();
  });

  it("a task's state changes reach /tasks/stream/{id} (resumed from seq 0) and no other task's stream", async () => {
    const submit = async () => {
      const r = await m.app.inject({ method: 'POST', url: '/api/v1/tasks/submit', headers: admin, payload: { agent: 'data-agent', tool_name: 'process_data', parameters: { data: [1] }, max_attempts: 1 } });
      expect(r.statusCode).toBe(202);
      return (r.json() as { task_id: string }).task_id;
    };
    const [a, b] = [await submit(), await submit()];
    const streamA = wsClient(`${base}/tasks/stream/${a}?since=0`, viewer);
    const streamB = sseClient(`${base}/tasks/stream/${b}`, { ...viewer, 'last-event-id': '0' });
    await eventually(async () => (streamA.events.length > 0 && streamB.events.length > 0 ? true : undefined), 10_000, 20);
    expect(streamA.events[0]).toMatchObject({ type: 'task.queued', topic: 'tasks', task_id: a, data: { status: 'queued' } });
    expect(streamA.events.every((e) => e.task_id === a)).toBe(true);
    expect(streamB.events.every((e) => e.task_id === b)).toBe(true);
    streamA.close();
    streamB.close();
  });

  it('metrics snapshots arrive on /metrics/stream; the stream routes are in the OpenAPI document, which stays valid OpenAPI 3.1', async () => {
    const metrics = sseClient(`${base}/metrics/stream`, viewer);
    await eventually(async () => (metrics.events.length >= 2 ? true : undefined), 10_000, 20);
    expect(metrics.events.every((e) => e.type === 'metrics.snapshot' && e.topic === 'metrics')).toBe(true);
    expect(metrics.events[0]!.data).toMatchObject({ process: { rss_bytes: expect.any(Number) }, streams: { subscribers: expect.any(Number) } });
    metrics.close();
    const doc = (await m.app.inject({ method: 'GET', url: '/api/v1/openapi.json', headers: admin })).json();
    for (const p of ['/api/v1/agents/stream', '/api/v1/tasks/stream/{id}', '/api/v1/metrics/stream', '/api/v1/events']) expect(doc.paths, p).toHaveProperty([p]);
    expect(validateOpenApi31(doc)).toEqual([]);
  });
});
