import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/config.js';
import { LABEL, VERSION_HISTORY } from '../../src/conventions.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { ExitCode } from '../../src/errors.js';
import type { FleetDeps, FleetEvent } from '../../src/fleet/context.js';
import { createAgent } from '../../src/fleet/manager.js';
import { openFleet } from '../../src/fleet/open.js';
import { rollbackAgent, rolloutAgent } from '../../src/fleet/rollout.js';
import { acquireRolloutLock, rolloutsInProgress } from '../../src/fleet/rollout-lock.js';
import { scaleAgent } from '../../src/fleet/scale.js';
import { useCase } from '../../src/fleet/usecases.js';
import { checkRecordToWrite } from '../../src/registry/record.js';

// Rollouts on the in-memory engine: the order of steps, the automatic rollback, rollback to the previous version.
let dir: string;
let engine: FakeEngine;
let deps: FleetDeps;
let events: FleetEvent[];
let close: () => Promise<void>;
/** Versions whose containers fail their health check. */
const broken = new Set<string>();

const probe = {
  health: async (url: string) => {
    const port = Number(new URL(url).port);
    return { ok: [...engine.containers.values()].some((c) => c.state === 'running' && c.spec.hostPort?.port === port && !broken.has(c.spec.labels[LABEL.version] ?? '')) };
  },
  tools: async () => [],
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nexus-rollout-'));
  const clock = new ManualClock();
  engine = new FakeEngine({ clock, healthOf: (spec) => (broken.has(spec.labels[LABEL.version] ?? '') ? 'unhealthy' : 'healthy') });
  events = [];
  const config = loadConfig(dir, { NEXUS_PORT_RANGE: '9461-9470', NEXUS_OFFLINE: 'always' });
  const fleet = await openFleet(config, {}, { engine, clock, onEvent: (e) => events.push(e) });
  deps = { ...fleet.deps, probe };
  close = fleet.close;
  broken.clear();
  await createAgent(deps, { name: 'DataAgent', capabilities: ['data'] });
  await scaleAgent(deps, 'DataAgent', 2, { routerPort: 9471 });
});
afterEach(async () => {
  await close();
  await rm(dir, { recursive: true, force: true });
});

/** Set the version in agents/data-agent/agent.json (a new source, so a new image). */
async function bumpManifest(version: string): Promise<void> {
  const path = join(dir, 'agents/data-agent/agent.json');
  const m = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  await writeFile(path, JSON.stringify({ ...m, version }));
}

const agentContainers = () => [...engine.containers.values()].filter((c) => c.spec.labels[LABEL.agent] === 'data-agent');
const actions = () => events.filter((e) => e.kind === 'action').map((e) => `${e.action}:${e.phase}${e.replica !== undefined ? `:${e.replica}` : ''}`);

describe('rollout', () => {
  it('starts the new version beside the old, waits for health, shifts the router, then drains the old', async () => {
    const oldIds = agentContainers().map((c) => c.id);
    await bumpManifest('0.2.0');
    events.length = 0;
    const r = await rolloutAgent(deps, 'DataAgent', { routerPort: 9471 });
    expect(r).toMatchObject({ name: 'DataAgent', from: '0.1.0', to: '0.2.0', generation: 1 });
    expect(r.image.ref).toMatch(/^nexus-delta-agent-data-agent:v0\.2\.0-[0-9a-f]{12}$/);
    // the same count, all of the new version and generation, primary with the host port
    const now = agentContainers();
    expect(now).toHaveLength(2);
    expect(now.every((c) => c.state === 'running' && c.spec.labels[LABEL.version] === '0.2.0' && c.spec.labels[LABEL.generation] === '1')).toBe(true);
    expect(now.filter((c) => c.spec.hostPort?.port === 9461)).toHaveLength(1);
    expect(now.some((c) => oldIds.includes(c.id))).toBe(false);
    // order: both new replicas healthy before the router reload, the reload before the first drain
    const a = actions();
    const lastHealthy = Math.max(a.indexOf('wait-healthy:end:1'), a.indexOf('wait-healthy:end:2'));
    const firstReload = a.indexOf('reload-router:end');
    const firstStop = a.indexOf('stop:begin:0');
    expect(a.indexOf('wait-healthy:end:1')).toBeGreaterThan(a.indexOf('create:end:2'));
    expect(lastHealthy).toBeGreaterThan(-1);
    expect(firstReload).toBeGreaterThan(lastHealthy);
    expect(firstStop).toBeGreaterThan(firstReload);
    // old replicas were stopped with SIGTERM and a grace period before removal
    for (const id of oldIds) expect(engine.calls.indexOf(`stop ${id.slice(0, 12)}`)).toBeLessThan(engine.calls.indexOf(`remove container ${id.slice(0, 12)}`));
    // the router file lists exactly the new replicas
    const conf = await readFile(join(dir, '.nexus/router/nexus-agents.conf'), 'utf8');
    expect(conf.match(/^\s+server \S+ /gm)).toHaveLength(2);
    expect(conf).toContain('keepalive 32;');
    const rec = await deps.registry.get('data-agent');
    expect(rec).toMatchObject({ version: '0.2.0', status: 'running' });
    expect(rec!.versions!.map((v) => v.version)).toEqual(['0.1.0', '0.2.0']);
    expect(engine.images.has(rec!.versions![0]!.image.ref)).toBe(true);
  });

  it('rolls a version that fails its health checks back: new replicas removed, old ones untouched, UNHEALTHY', async () => {
    const before = agentContainers().map((c) => `${c.id}:${c.state}`).sort();
    await bumpManifest('0.3.0');
    broken.add('0.3.0');
    events.length = 0;
    const err = await rolloutAgent(deps, 'DataAgent', { routerPort: 9471, healthTimeoutMs: 5000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ROLLOUT_UNHEALTHY', exitCode: ExitCode.UNHEALTHY });
    expect(agentContainers().map((c) => `${c.id}:${c.state}`).sort()).toEqual(before);
    const rolledBack = events.find((e) => e.kind === 'agent' && e.outcome === 'rolled-back');
    expect(rolledBack?.error?.code).toBe('ROLLOUT_UNHEALTHY');
    expect(actions()).not.toContain('reload-router:begin');
    expect(await deps.registry.get('data-agent')).toMatchObject({ version: '0.1.0' });
  });

  it('rollback returns to the previous version from its kept image', async () => {
    const firstImage = agentContainers()[0]!.imageId;
    await bumpManifest('0.2.0');
    await rolloutAgent(deps, 'DataAgent', { routerPort: 9471 });
    expect(agentContainers()[0]!.imageId).not.toBe(firstImage);
    const r = await rollbackAgent(deps, 'DataAgent', { routerPort: 9471 });
    expect(r).toMatchObject({ from: '0.2.0', to: '0.1.0', generation: 2 });
    expect(agentContainers().map((c) => c.imageId)).toEqual([firstImage, firstImage]);
    const rec = await deps.registry.get('data-agent');
    expect(rec).toMatchObject({ version: '0.1.0' });
    expect(rec!.versions!.map((v) => v.version)).toEqual(['0.1.0', '0.2.0', '0.1.0']);
  });

  it('rollback without an earlier version is refused and changes nothing', async () => {
    const before = agentContainers().map((c) => c.id).sort();
    await expect(rollbackAgent(deps, 'DataAgent')).rejects.toMatchObject({ code: 'NO_PREVIOUS_VERSION', exitCode: ExitCode.CONFLICT });
    expect(agentContainers().map((c) => c.id).sort()).toEqual(before);
  });

  it('is declared in the use-case table, and the record keeps a bounded, checked version history', async () => {
    expect(useCase('rollout')?.options.map((o) => o.flags)).toContain('--version <version>');
    expect(useCase('rollback')).toBeDefined();
    const rec = (await deps.registry.get('data-agent'))!;
    const v = { version: '1.0.0', image: { ref: 'x:1', id: 'sha256:1' }, sourceHash: 'h', deployedAt: '' };
    expect(() => checkRecordToWrite({ ...rec, versions: Array.from({ length: VERSION_HISTORY + 1 }, () => v) })).toThrow(/versions/);
    expect(() => checkRecordToWrite({ ...rec, versions: [{ ...v, version: 'latest!' }] })).toThrow(/versions\.0\.version/);
    expect(checkRecordToWrite({ ...rec, versions: [v] }).versions).toEqual([v]);
  });
});

describe('rollout marker', () => {
  it('is held while a rollout runs and released after; a second rollout of the agent meanwhile is refused (409)', async () => {
    await bumpManifest('0.2.0');
    const held: string[][] = [];
    const seen = (e: FleetEvent) => e.kind === 'action' && e.action === 'wait-healthy' && e.phase === 'begin';
    const first = rolloutAgent({ ...deps, onEvent: (e) => void (seen(e) && rolloutsInProgress(dir).then((x) => held.push([...x]))) }, 'DataAgent', { routerPort: 9471 });
    await expect(rolloutAgent(deps, 'DataAgent', { routerPort: 9471 })).rejects.toMatchObject({ code: 'ROLLOUT_IN_PROGRESS', exitCode: ExitCode.CONFLICT, httpStatus: 409 });
    await first;
    await new Promise((r) => setTimeout(r, 50)); // the onEvent checks above are asynchronous
    expect(held.length).toBeGreaterThan(0);
    expect(held.every((x) => x.includes('data-agent'))).toBe(true);
    expect([...(await rolloutsInProgress(dir))]).toEqual([]);
  });

  it('is released when the rollout fails, and refuses a rollback while another process holds it', async () => {
    await bumpManifest('0.2.0');
    broken.add('0.2.0');
    await expect(rolloutAgent(deps, 'DataAgent', { routerPort: 9471, healthTimeoutMs: 1000 })).rejects.toMatchObject({ code: 'ROLLOUT_UNHEALTHY' });
    expect([...(await rolloutsInProgress(dir))]).toEqual([]);
    const release = await acquireRolloutLock(dir, 'data-agent');
    await expect(rollbackAgent(deps, 'DataAgent')).rejects.toMatchObject({ code: 'ROLLOUT_IN_PROGRESS' });
    await release();
    await release(); // idempotent
  });
});
