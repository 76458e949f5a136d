import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import getPort from 'get-port';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { createManager, type Manager } from '../../src/server/manager.js';
import { superviseManager, type SupervisedManager } from '../../src/server/supervisor.js';
import { BOOTSTRAP } from '../helpers/manager.js';
import { eventually } from '../helpers/wait.js';

// The supervisor wired into createManager (its seam): the gateway follows the supervisor's
// rotation, its events reach the manager's event bus, close() stops it. Fake engine, real timers
// with a 20 ms probe interval; every wait is bounded.
let dir: string;
let engine: FakeEngine;
let m: Manager;
let sm: SupervisedManager | undefined;
let hung = false;
const admin = { authorization: `Bearer ${BOOTSTRAP}` };
const runningOn = (port: number) => [...engine.containers.values()].some((c) => c.state === 'running' && c.spec.hostPort?.port === port);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nexus-manager-supervisor-'));
  engine = new FakeEngine();
  hung = false;
  const port = await getPort();
  const config = loadConfig(dir, { NEXUS_PORT_RANGE: `${port}-${port}`, NEXUS_OFFLINE: 'always' });
  const probe = { health: async (url: string) => ({ ok: runningOn(Number(new URL(url).port)) }), tools: async () => [] };
  const supervise = superviseManager({
    probeIntervalMs: 20,
    probe: async (url) => runningOn(Number(new URL(url).port)) && !hung,
    // a long backoff: the hung replica stays out instead of being restarted during the test
    restartPolicy: { check_restart: { limit: 3, grace_s: 0 }, restart: { delay_s: 600, max_delay_s: 600 } },
  });
  m = await createManager({ config, env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP }, engine, probe, supervisor: (ctx) => (sm = supervise(ctx)) });
});
afterEach(async () => {
  await m.close();
  await rm(dir, { recursive: true, force: true });
});

const inject = (method: 'GET' | 'POST', url: string, body?: object) => m.app.inject({ method, url: `/api/v1${url}`, headers: admin, ...(body ? { payload: body } : {}) });

describe('createManager with the supervisor', () => {
  it("routes by the supervisor's rotation: a hung replica is taken out and calls get 503 AGENT_UNAVAILABLE", async () => {
    expect((await inject('POST', '/agents', { name: 'DataAgent', capabilities: ['data'] })).statusCode).toBe(201);
    expect((await inject('POST', '/agents/DataAgent/start')).json()).toMatchObject({ ok: 1 });
    await eventually(async () => ((await m.context.rotation.rotation('data-agent'))[0]?.inRotation ? true : undefined), 5000, 20);
    expect(sm!.supervisor.rotation('data-agent')).toEqual([expect.objectContaining({ replica: 0, inRotation: true })]);
    hung = true;
    await eventually(async () => ((await m.context.rotation.rotation('data-agent'))[0]?.inRotation === false ? true : undefined), 5000, 20);
    const r = await inject('POST', '/agents/DataAgent/execute', { tool_name: 'process_data', parameters: { data: [1] } });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toEqual({ error: expect.objectContaining({ code: 'AGENT_UNAVAILABLE' }) });
    // the rotation changes as the probe round ends; its events follow right after
    const types = () => m.events.recent().filter((e) => e.topic === 'agents' && e.agent === 'data-agent').map((e) => e.type);
    await eventually(async () => (types().includes('supervisor.restart_requested') ? true : undefined), 5000, 20);
    expect(types()).toEqual(expect.arrayContaining(['supervisor.replica_in', 'supervisor.replica_out', 'supervisor.restart_requested']));
  });

  it('restores desired state when the manager starts, and close() stops the supervisor', async () => {
    expect((await inject('POST', '/agents', { name: 'DataAgent' })).statusCode).toBe(201);
    expect((await inject('POST', '/agents/DataAgent/start')).statusCode).toBe(200);
    await m.close();
    for (const c of [...engine.containers.values()]) await engine.removeContainer(c.id);
    const config = loadConfig(dir, { NEXUS_PORT_RANGE: m.context.config.ports.range.from + '-' + m.context.config.ports.range.to, NEXUS_OFFLINE: 'always' });
    const probe = { health: async (url: string) => ({ ok: runningOn(Number(new URL(url).port)) }), tools: async () => [] };
    m = await createManager({ config, env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP }, engine, probe, supervisor: superviseManager({ probeIntervalMs: 20, probe: async () => true }) });
    await eventually(async () => ([...engine.containers.values()].some((c) => c.state === 'running') ? true : undefined), 5000, 20);
    await m.close();
    const calls = engine.calls.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(engine.calls.slice(calls).filter((c) => c !== 'events')).toEqual([]);
  });
});
