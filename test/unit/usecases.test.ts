import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/config.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { ExitCode } from '../../src/errors.js';
import type { FleetDeps, FleetEvent } from '../../src/fleet/context.js';
import { createAgent, listAgents, removeAgent, startAgents, stopAgents } from '../../src/fleet/manager.js';
import { openFleet } from '../../src/fleet/open.js';
import { scaleAgent } from '../../src/fleet/scale.js';
import { USE_CASES } from '../../src/fleet/usecases.js';
import { commands } from '../../src/cli/commands.js';

// Every use case on the in-memory engine: no daemon; health comes from the fake's containers.
let dir: string;
let engine: FakeEngine;
let deps: FleetDeps;
let events: FleetEvent[];
let close: () => Promise<void>;

/** Healthy when a running fake container publishes the URL's port and `sick` does not name it. */
const sick = new Set<number>();
const probe = {
  health: async (url: string) => {
    const port = Number(new URL(url).port);
    const up = [...engine.containers.values()].some((c) => c.state === 'running' && c.spec.hostPort?.port === port);
    return { ok: up && !sick.has(port) };
  },
  tools: async () => [{ name: 'echo', description: 'echo', parameters: { type: 'object' } }],
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nexus-usecases-'));
  const clock = new ManualClock();
  engine = new FakeEngine({ clock });
  events = [];
  const config = loadConfig(dir, { NEXUS_PORT_RANGE: '9321-9340', NEXUS_OFFLINE: 'always' });
  const fleet = await openFleet(config, {}, { engine, clock, onEvent: (e) => events.push(e) });
  deps = { ...fleet.deps, probe };
  close = fleet.close;
  sick.clear();
});
afterEach(async () => {
  await close();
  await rm(dir, { recursive: true, force: true });
});

describe('use cases on the fake engine', () => {
  it('create -> start -> list -> stop -> remove, each with its outcome', async () => {
    const c = await createAgent(deps, { name: 'DataAgent', capabilities: ['data'] });
    expect(c.agent).toMatchObject({ slug: 'data-agent', port: 9321 });
    const s = await startAgents(deps, ['DataAgent']);
    expect(s).toMatchObject({ ok: 1, failed: 0, agents: [{ outcome: 'started', imageBuilt: true }] });
    expect(await deps.registry.get('data-agent')).toMatchObject({ status: 'running', desired: 'running', tools: [{ name: 'echo' }] });
    expect((await listAgents(deps)).agents).toMatchObject([{ name: 'DataAgent', container: 'running', health: 'healthy' }]);
    expect((await stopAgents(deps, ['DataAgent'])).agents).toEqual([{ name: 'DataAgent', slug: 'data-agent', removed: 1 }]);
    expect(engine.containers.size).toBe(0);
    const r = await removeAgent(deps, 'DataAgent');
    expect(r).toMatchObject({ slug: 'data-agent', recordKept: false });
    expect(await deps.registry.list()).toEqual([]);
  });

  it('start is idempotent: a second run changes nothing and builds nothing', async () => {
    await createAgent(deps, { name: 'DataAgent' });
    await startAgents(deps, 'all');
    const before = engine.calls.length;
    const again = await startAgents(deps, 'all');
    expect(again.agents).toMatchObject([{ outcome: 'unchanged', imageBuilt: false }]);
    expect(engine.calls.slice(before).filter((c) => /^(create|start|remove|build)/.test(c))).toEqual([]);
  });

  it('emits typed, numbered events stamped by the injected clock', async () => {
    await createAgent(deps, { name: 'DataAgent' });
    await startAgents(deps, ['DataAgent']);
    const actions = events.filter((e) => e.kind === 'action' && e.phase === 'end').map((e) => e.action);
    expect(actions).toEqual(['build-image', 'create', 'wait-healthy', 'update-record']);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)).toMatchObject({ v: 1, kind: 'agent', agent: 'data-agent', outcome: 'started', at: expect.stringMatching(/^2030-01-01T/) });
  });

  it('an agent that never becomes healthy fails with CONTAINER_UNHEALTHY; its container is removed; the record says so', async () => {
    const { agent } = await createAgent(deps, { name: 'SickAgent' });
    sick.add(agent.port);
    const s = await startAgents(deps, ['SickAgent']);
    expect(s.agents[0]).toMatchObject({ outcome: 'failed', error: { code: 'CONTAINER_UNHEALTHY' } });
    expect(engine.containers.size).toBe(0);
    expect(await deps.registry.get('sick-agent')).toMatchObject({ status: 'unhealthy', lastError: expect.stringContaining('did not become healthy') });
    expect((await commands.start(deps, { name: ['SickAgent'] })).exitCode).toBe(ExitCode.UNHEALTHY);
  });

  it('a port held outside the engine fails that agent only (PORT_IN_USE) and leaves no container', async () => {
    const a = await createAgent(deps, { name: 'Blocked' });
    await createAgent(deps, { name: 'Good' });
    engine.heldPorts.add(a.agent.port);
    const s = await startAgents(deps, 'all');
    expect(s).toMatchObject({ ok: 1, failed: 1 });
    expect(s.agents.find((x) => x.name === 'Blocked')).toMatchObject({ outcome: 'failed', error: { code: 'PORT_IN_USE' } });
    expect([...engine.containers.values()].map((c) => c.spec.name)).toEqual(['nexus-agent-good']);
    expect((await commands['start-all'](deps)).exitCode).toBe(ExitCode.PARTIAL);
  });

  it('a foreign container holding the name is NAME_TAKEN, and is left alone', async () => {
    await createAgent(deps, { name: 'Taken' });
    engine.addImage('someone/else:1');
    await engine.createContainer({ ...(await import('../../src/fleet/router.js')).routerContainerSpec(deps.config, 'someone/else:1', 9399, '/a'), name: 'nexus-agent-taken', labels: {}, network: undefined });
    const s = await startAgents(deps, ['Taken']);
    expect(s.agents[0]).toMatchObject({ outcome: 'failed', error: { code: 'NAME_TAKEN' } });
    expect(engine.containers.size).toBe(1);
  });

  it('errors before anything changes: unknown agent, invalid name (not swallowed), bad replicas', async () => {
    await expect(startAgents(deps, ['Ghost'])).rejects.toMatchObject({ code: 'AGENT_NOT_FOUND' });
    await expect(stopAgents(deps, ['1bad'])).rejects.toMatchObject({ code: 'NAME_INVALID' });
    await createAgent(deps, { name: 'DataAgent' });
    await expect(scaleAgent(deps, 'DataAgent', 0)).rejects.toMatchObject({ code: 'USAGE' });
    expect(engine.containers.size).toBe(0);
  });

  it('scale adds replicas on the workspace network behind a router, and scales down', async () => {
    await createAgent(deps, { name: 'DataAgent' });
    const up = await scaleAgent(deps, 'DataAgent', 3, { routerPort: 9340 });
    expect(up.containers).toEqual(['nexus-agent-data-agent', 'nexus-agent-data-agent-1', 'nexus-agent-data-agent-2']);
    expect(up.url).toBe('http://127.0.0.1:9340/agents/data-agent/');
    expect([...engine.containers.values()].some((c) => c.spec.name.startsWith('nexus-router-') && c.state === 'running')).toBe(true);
    const down = await scaleAgent(deps, 'DataAgent', 1, { routerPort: 9340 });
    expect(down.containers).toEqual(['nexus-agent-data-agent']);
    expect(engine.calls.filter((c) => c.startsWith('signal SIGHUP'))).toHaveLength(1);
    // stop-all also removes the local router
    await commands['stop-all'](deps);
    expect(engine.containers.size).toBe(0);
  });

  it('logs --follow streams to the writable the caller passes', async () => {
    await createAgent(deps, { name: 'DataAgent' });
    const s = await startAgents(deps, ['DataAgent']);
    engine.writeLogs(s.agents[0]!.containerId!, 'hello\n');
    const out = new PassThrough();
    let text = '';
    out.on('data', (d) => (text += d));
    const logs = USE_CASES.find((u) => u.name === 'logs')!;
    await logs.run({ name: 'DataAgent', follow: true, tail: 10 }, deps, { out });
    expect(text).toBe('hello\n');
  });
});
