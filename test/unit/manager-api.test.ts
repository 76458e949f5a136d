import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import getPort from 'get-port';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { LABEL } from '../../src/conventions.js';
import { FakeEngine } from '../../src/engine/fake.js';
import type { ContainerInfo } from '../../src/engine/engine.js';
import { replicaViews } from '../../src/fleet/replicas.js';
import { localNetworkName } from '../../src/fleet/router.js';
import { GatewayFigures } from '../../src/server/gateway/figures.js';
import { createManager, type Manager } from '../../src/server/manager.js';
import { createToken } from '../../src/server/tokens.js';
import { buildServer as buildRuntime } from '../../src/runtime/server.js';
import { testAgent } from '../helpers/gateway.js';
import { BOOTSTRAP } from '../helpers/manager.js';

// The agents API on the in-memory engine through app.inject: route shapes, scopes, errors, and the
// gateway against a real in-process agent runtime listening on the agent's host port.
let dir: string;
let engine: FakeEngine;
let m: Manager;
let port: number;
const admin = { authorization: `Bearer ${BOOTSTRAP}` };

/** Healthy when a running fake container publishes the URL's port. */
const probe = {
  health: async (url: string) => ({ ok: [...engine.containers.values()].some((c) => c.state === 'running' && c.spec.hostPort?.port === Number(new URL(url).port)) }),
  tools: async () => [{ name: 'process_data', description: 'stats', parameters: { type: 'object' } }],
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nexus-manager-api-'));
  engine = new FakeEngine();
  port = await getPort();
  const config = loadConfig(dir, { NEXUS_PORT_RANGE: `${port}-${port}`, NEXUS_OFFLINE: 'always' });
  m = await createManager({ config, env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP }, engine, probe });
});
afterEach(async () => {
  await m.close();
  await rm(dir, { recursive: true, force: true });
});

const inject = (method: 'GET' | 'POST' | 'DELETE', url: string, opts: { body?: unknown; headers?: Record<string, string> } = {}) =>
  m.app.inject({ method, url: `/api/v1${url}`, headers: opts.headers ?? admin, ...(opts.body !== undefined ? { payload: opts.body as object } : {}) });

async function createAndStart(): Promise<void> {
  expect((await inject('POST', '/agents', { body: { name: 'DataAgent', capabilities: ['data'] } })).statusCode).toBe(201);
  expect((await inject('POST', '/agents/DataAgent/start')).json()).toMatchObject({ ok: 1, failed: 0 });
}

describe('agents API (fake engine, app.inject)', () => {
  it('create answers 201 with the record, and the alias /agents/register does the same', async () => {
    const r = await inject('POST', '/agents', { body: { name: 'DataAgent', capabilities: ['data'], description: 'd' } });
    expect(r.statusCode).toBe(201);
    expect(r.json()).toEqual({
      agent: expect.objectContaining({ name: 'DataAgent', slug: 'data-agent', port, desired: 'stopped' }),
      tools: expect.any(Array),
      url: `http://127.0.0.1:${port}`,
      // the connection token for /ws/agent, shown this once
      agentToken: expect.stringMatching(/^nxa_[A-Za-z0-9_-]{43}$/),
    });
    // the source path on the server is not part of the answer
    expect(r.json()).not.toHaveProperty('path');
    const again = await inject('POST', '/agents/register', { body: { name: 'DataAgent' } });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toEqual({ error: expect.objectContaining({ code: 'NAME_TAKEN' }) });
  });

  it('bad input is a 400 in the one error shape and changes nothing', async () => {
    for (const body of [{}, { name: 'X', replicas: 2 }, { name: 'X', port: 0 }, { name: 'bad name!!' }]) {
      const r = await inject('POST', '/agents', { body });
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
      expect(Object.keys(r.json())).toEqual(['error']);
    }
    expect(await m.fleet.deps.registry.list()).toEqual([]);
    expect((await inject('POST', '/agents/x/scale', { body: { replicas: 0 } })).statusCode).toBe(400);
    expect((await inject('GET', '/agents/x/logs?tail=-1')).statusCode).toBe(400);
  });

  it('start, then list: record + live state + health + replicas + CPU/memory', async () => {
    await createAndStart();
    const list = (await inject('GET', '/agents')).json();
    expect(list.agents).toHaveLength(1);
    const a = list.agents[0];
    expect(a).toMatchObject({ name: 'DataAgent', slug: 'data-agent', container: 'running', health: 'healthy', desired: 'running', inRotation: 1 });
    expect(a.replicas).toEqual([expect.objectContaining({ replica: 0, url: `http://127.0.0.1:${port}`, state: 'running', inRotation: true, stats: { cpuPercent: 1.5, memoryBytes: 20 * 2 ** 20, memoryLimitBytes: expect.any(Number) } })]);
    expect(a.stats).toMatchObject({ cpuPercent: 1.5, memoryBytes: 20 * 2 ** 20 });
    // stats=false skips the samples
    expect((await inject('GET', '/agents?stats=false')).json().agents[0]).not.toHaveProperty('stats');
    // by name or slug
    expect((await inject('GET', '/agents/data-agent')).json()).toMatchObject({ name: 'DataAgent' });
    expect((await inject('GET', '/agents/DataAgent')).json()).toMatchObject({ slug: 'data-agent' });
    const health = (await inject('GET', '/agents/health')).json();
    expect(health).toEqual({ healthy: 1, total: 1, agents: [{ name: 'DataAgent', slug: 'data-agent', health: 'healthy', container: 'running', replicas: 1, inRotation: 1 }] });
    const stats = (await inject('GET', '/statistics')).json();
    expect(stats).toMatchObject({ agents: { total: 1, desiredRunning: 1, running: 1, inRotation: 1 }, replicas: { total: 1, running: 1, inRotation: 1 } });
    expect((await inject('GET', '/metrics/agents')).json()).toEqual({ agents: [{ name: 'DataAgent', slug: 'data-agent', replicas: 1, inRotation: 1, inflight: 0, cpuPercent: 1.5, memoryBytes: 20 * 2 ** 20 }] });
  });

  it('an unknown agent is 404 AGENT_NOT_FOUND on every {name} route', async () => {
    for (const [method, url] of [['GET', '/agents/nope'], ['POST', '/agents/nope/start'], ['POST', '/agents/nope/stop'], ['DELETE', '/agents/nope'], ['GET', '/agents/nope/logs']] as const) {
      const r = await inject(method, url);
      expect(r.statusCode, url).toBe(404);
      expect(r.json().error.code, url).toBe('AGENT_NOT_FOUND');
    }
    const ex = await inject('POST', '/agents/nope/execute', { body: { tool_name: 'x', parameters: {} } });
    expect([ex.statusCode, ex.json().error.code]).toEqual([404, 'AGENT_NOT_FOUND']);
  });

  it('execute goes through the gateway to the agent and passes its answer through; 503 with Retry-After when nothing runs', async () => {
    await createAndStart();
    const runtime = await buildRuntime(testAgent, { processMetrics: false });
    await runtime.listen({ host: '127.0.0.1', port });
    try {
      const ok = await inject('POST', '/agents/DataAgent/execute', { body: { tool_name: 'process_data', parameters: { data: [1, 2, 3, 4, 5] } } });
      expect(ok.statusCode).toBe(200);
      expect(ok.json()).toEqual({ result: expect.objectContaining({ sum: 15 }) });
      const unknown = await inject('POST', '/agents/data-agent/execute', { body: { tool_name: 'nope', parameters: {} } });
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json().error.code).toBeTypeOf('string');
      const perf = (await inject('GET', '/metrics/performance')).json();
      expect(perf.agents).toEqual([expect.objectContaining({ agent: 'data-agent', calls: 2, errors: 0 })]);
    } finally {
      await runtime.close();
    }
    await inject('POST', '/agents/DataAgent/stop?timeout=0');
    const down = await inject('POST', '/agents/DataAgent/execute', { body: { tool_name: 'process_data', parameters: { data: [1] } } });
    expect(down.statusCode).toBe(503);
    expect(down.json().error.code).toBe('AGENT_UNAVAILABLE');
    expect(Number(down.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });

  it('scale runs replicas the gateway can dial on the workspace network; stop and delete clean up', async () => {
    await createAndStart();
    const r = await inject('POST', '/agents/DataAgent/scale', { body: { replicas: 3, routerPort: 18088 } });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().containers).toHaveLength(3);
    const replicas = (await inject('GET', '/agents/DataAgent?stats=false')).json().replicas;
    expect(replicas.map((x: { replica: number }) => x.replica)).toEqual([0, 1, 2]);
    for (const x of replicas.slice(1)) expect(x.url).toMatch(/^http:\/\/10\.\d+\.\d+\.\d+:8080$/);
    expect((await inject('POST', '/agents/DataAgent/stop?timeout=0')).json()).toEqual({ agents: [{ name: 'DataAgent', slug: 'data-agent', removed: 3 }] });
    const del = await inject('DELETE', '/agents/DataAgent');
    expect(del.json()).toMatchObject({ slug: 'data-agent', purged: false, recordKept: false });
    expect((await inject('GET', '/agents')).json()).toEqual({ agents: [] });
  });

  it('rollout (operator): the new version replaces the old; a viewer is refused, an unknown field is 400', async () => {
    await createAndStart();
    const before = (await inject('GET', '/agents/DataAgent?stats=false')).json().replicas[0].id;
    const operator = { authorization: `Bearer ${(await createToken({ scope: 'operator' }, { workspace: dir })).token}` };
    const viewer = { authorization: `Bearer ${(await createToken({ scope: 'viewer' }, { workspace: dir })).token}` };
    expect((await inject('POST', '/agents/DataAgent/rollout', { headers: viewer, body: {} })).statusCode).toBe(403);
    expect((await inject('POST', '/agents/DataAgent/rollout', { headers: operator, body: { replicas: 2 } })).statusCode).toBe(400);
    const r = await inject('POST', '/agents/DataAgent/rollout', { headers: operator, body: { version: '0.2.0', routerPort: 18088 } });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({ name: 'DataAgent', from: '0.1.0', to: '0.2.0', generation: 1, containers: ['nexus-agent-data-agent'] });
    const after = (await inject('GET', '/agents/DataAgent?stats=false')).json().replicas;
    expect(after).toHaveLength(1);
    expect(after[0].id).not.toBe(before);
  });

  it('logs: the last lines as JSON', async () => {
    await createAndStart();
    const r = await inject('GET', '/agents/DataAgent/logs?tail=5');
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ name: 'DataAgent', logs: expect.any(String) });
  });

  it('scopes: viewer reads, operator acts, admin creates and deletes', async () => {
    const tok = async (scope: 'viewer' | 'operator') => ({ authorization: `Bearer ${(await createToken({ scope }, { workspace: dir })).token}` });
    const viewer = await tok('viewer');
    const operator = await tok('operator');
    expect((await inject('GET', '/agents?stats=false', { headers: viewer })).statusCode).toBe(200);
    expect((await inject('POST', '/agents/x/start', { headers: viewer })).statusCode).toBe(403);
    expect((await inject('POST', '/agents/x/execute', { headers: viewer, body: { tool_name: 't' } })).statusCode).toBe(403);
    expect((await inject('POST', '/agents', { headers: operator, body: { name: 'X' } })).statusCode).toBe(403);
    expect((await inject('DELETE', '/agents/x', { headers: operator })).statusCode).toBe(403);
    expect((await inject('POST', '/agents/x/scale', { headers: operator, body: { replicas: 2 } })).statusCode).toBe(404);
    expect((await inject('GET', '/agents', { headers: {} })).statusCode).toBe(401);
  });

  it('the OpenAPI document lists every agents route; fleet events reach the event bus', async () => {
    const doc = (await inject('GET', '/openapi.json')).json();
    for (const p of ['/api/v1/agents', '/api/v1/agents/{name}', '/api/v1/agents/health', '/api/v1/agents/register', '/api/v1/agents/{name}/execute', '/api/v1/agents/{name}/scale', '/api/v1/agents/{name}/logs', '/api/v1/statistics', '/api/v1/metrics/agents', '/api/v1/metrics/performance']) {
      expect(doc.paths, p).toHaveProperty([p]);
    }
    await createAndStart();
    const types = m.events.recent().map((e) => e.type);
    expect(types).toContain('fleet.action');
    expect(types).toContain('fleet.agent');
  });

  it('close closes the gateway and the fleet', async () => {
    const registryClosed = vi.spyOn(m.fleet.deps.registry, 'close');
    await m.close();
    await expect(m.gateway.executeViaGateway('x', { tool_name: 't' })).rejects.toMatchObject({ code: 'AGENT_UNAVAILABLE', message: 'the gateway is closing' });
    expect(registryClosed).toHaveBeenCalledTimes(1);
    await m.close();
    expect(registryClosed).toHaveBeenCalledTimes(1);
  });
});

describe('rotation by observed state (replicaViews)', () => {
  const config = { workspace: '/w', ports: { bindAddress: '127.0.0.1', range: { start: 1, end: 2 } } } as never;
  const net = localNetworkName('/w');
  const c = (replica: number, over: Partial<ContainerInfo>): ContainerInfo => ({
    id: `id${replica}`, name: `n${replica}`, image: 'i', imageId: 'x', state: 'running', status: 'Up', labels: { [LABEL.agent]: 'a', [LABEL.replica]: String(replica) }, health: 'healthy', addresses: { [net]: `10.0.0.${replica + 2}` }, ...over,
  });
  it('in rotation: running, not unhealthy, dialable; primary on its host port, replicas on the workspace network', () => {
    const views = replicaViews(config, { slug: 'a', port: 9401 }, [c(2, { health: 'unhealthy' }), c(1, { health: 'starting' }), c(0, {}), c(3, { state: 'exited' }), c(4, { addresses: {} }), { ...c(5, {}), labels: { [LABEL.agent]: 'b' } }]);
    expect(views.map((v) => [v.replica, v.url, v.inRotation])).toEqual([
      [0, 'http://127.0.0.1:9401', true],
      [1, 'http://10.0.0.3:8080', true],
      [2, 'http://10.0.0.4:8080', false],
      [3, 'http://10.0.0.5:8080', false],
      [4, '', false],
    ]);
  });
});
