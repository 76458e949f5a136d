import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { resolveConfig } from '../../src/config/config.js';
import type { ServiceStatus, TaskStatus } from '../../src/engine/engine.js';
import { FAKE_ROUTER_IMAGE, FakeEngine, type FakeEngineOptions } from '../../src/engine/fake.js';
import type { FleetDeps, ProgressEvent } from '../../src/fleet/context.js';
import { serviceOutcome } from '../../src/fleet/converge.js';
import { deploySwarm } from '../../src/fleet/swarm.js';
import { agentImageRef } from '../../src/names.js';
import { LocalRegistry } from '../../src/registry/local.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A workspace with DataAgent and MathAgent recorded and their images on a fake engine. */
async function fixture(opts: FakeEngineOptions = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-swarm-unit-'));
  dirs.push(dir);
  const config = resolveConfig(dir, {}, {});
  const clock = new ManualClock();
  const registry = new LocalRegistry(dir, { clock });
  const images = [];
  for (const name of ['DataAgent', 'MathAgent']) {
    const slug = name === 'DataAgent' ? 'data-agent' : 'math-agent';
    await registry.create({ name, slug, description: name, capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0' }, { range: { from: 9301, to: 9320 }, isHostPortFree: async () => true });
    images.push(agentImageRef(slug, config.images.tag, config.project));
  }
  const engine = new FakeEngine({ ...opts, clock, images: [...images, ...(opts.images ?? [])] });
  const events: ProgressEvent[] = [];
  const deps: FleetDeps = { config, registry, engine, clock, onProgress: (e) => events.push(e) };
  return { deps, engine, clock, events };
}

describe('deploy --swarm on the fake engine', () => {
  it('falls back to the offline router image with a one-line notice when nginx cannot be pulled, and waits for every service', async () => {
    const { deps, events } = await fixture();
    const r = await deploySwarm(deps, { stack: 'nx', waitTimeoutS: 30 });
    expect(r.routerImage).toBe(FAKE_ROUTER_IMAGE);
    expect(events.filter((e) => e.phase === 'notice').map((e) => e.message)).toEqual([
      "could not pull nginx:1.27-alpine; building the router image offline from this host's nginx",
    ]);
    expect(r.outcomes).toEqual([
      { service: 'nx_data-agent', outcome: 'converged', running: 1, desired: 1 },
      { service: 'nx_math-agent', outcome: 'converged', running: 1, desired: 1 },
      { service: 'nx_router', outcome: 'converged', running: 1, desired: 1 },
    ]);
  });

  it('uses the public router image without a notice when the engine has it', async () => {
    const { deps, events } = await fixture({ images: ['nginx:1.27-alpine'] });
    const r = await deploySwarm(deps, { stack: 'nx', waitTimeoutS: 30 });
    expect(r.routerImage).toBe('nginx:1.27-alpine');
    expect(events.filter((e) => e.phase === 'notice')).toEqual([]);
  });

  it('fails naming the service and the engine task error when a service is rejected (an image no node has)', async () => {
    const { deps } = await fixture();
    await expect(deploySwarm(deps, { stack: 'nx', routerImage: 'nginx:absent', waitTimeoutS: 30 })).rejects.toMatchObject({
      code: 'STACK_NOT_CONVERGED',
      message: 'stack nx did not converge: nx_router failed (0/1 running): No such image: nginx:absent',
      details: { services: expect.arrayContaining([expect.objectContaining({ service: 'nx_data-agent', outcome: 'converged' })]) },
    });
  });

  it('fails naming the service whose tasks keep exiting', async () => {
    const { deps } = await fixture({ taskOf: (s) => (s === 'nx_math-agent' ? { state: 'failed', error: 'task: non-zero exit (1)' } : { state: 'running' }) });
    await expect(deploySwarm(deps, { stack: 'nx', offlineRouter: true, waitTimeoutS: 30 })).rejects.toMatchObject({
      code: 'STACK_NOT_CONVERGED',
      message: 'stack nx did not converge: nx_math-agent failed (0/1 running): task: non-zero exit (1)',
    });
  });

  it('gives up at the deadline, measured on the injected clock, when tasks never become healthy', async () => {
    const { deps, clock } = await fixture({ taskOf: (s) => (s === 'nx_data-agent' ? { state: 'starting' } : { state: 'running' }) });
    const start = clock.now();
    await expect(deploySwarm(deps, { stack: 'nx', offlineRouter: true, waitTimeoutS: 20 })).rejects.toMatchObject({
      code: 'STACK_NOT_CONVERGED',
      message: 'stack nx did not converge: nx_data-agent timed out (0/1 running)',
    });
    expect(clock.now() - start).toBe(20_000);
    expect(clock.sleeps.every((ms) => ms <= 1000)).toBe(true);
  });

  it('refuses an engine that is not a swarm manager, deploying nothing', async () => {
    const { deps, engine } = await fixture({ swarm: false });
    await expect(deploySwarm(deps, { stack: 'nx' })).rejects.toMatchObject({ code: 'ENGINE_ERROR' });
    expect(engine.stacks.size).toBe(0);
  });
});

const task = (state: TaskStatus['state'], createdAt: number, error?: string): TaskStatus => ({ id: `t${createdAt}`, state, desiredState: state === 'running' ? 'running' : 'shutdown', createdAt, ...(error ? { error } : {}) });
const svc = (tasks: TaskStatus[], desiredTasks = 1): ServiceStatus => ({ name: 's', mode: 'replicated', desiredTasks, tasks });

describe('serviceOutcome', () => {
  it.each([
    ['all desired tasks running', svc([task('running', 5)]), { outcome: 'converged', running: 1 }],
    ['one of two running', svc([task('running', 5)], 2), { outcome: 'pending', running: 1 }],
    ['two failures: still retrying', svc([task('failed', 5, 'x'), task('failed', 6, 'y')]), { outcome: 'pending', error: 'y' }],
    ['three failures: failed, latest error', svc([task('rejected', 5, 'a'), task('rejected', 7, 'c'), task('rejected', 6, 'b')]), { outcome: 'failed', error: 'c' }],
    ['failures before the deploy do not count', svc([task('failed', 1, 'old'), task('failed', 2, 'old'), task('failed', 3, 'old')]), { outcome: 'pending', running: 0 }],
  ] as const)('%s', (_, s, want) => {
    expect(serviceOutcome(s, 4)).toMatchObject(want);
  });
});

describe('LocalRegistry with an injected clock', () => {
  it('stamps createdAt and updatedAt from the clock', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-clock-'));
    dirs.push(dir);
    const clock = new ManualClock(Date.UTC(2031, 4, 6, 7, 8, 9));
    const r = new LocalRegistry(dir, { clock });
    const rec = await r.create({ name: 'A', slug: 'a', description: '', capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0' }, { range: { from: 9301, to: 9302 }, isHostPortFree: async () => true });
    expect(rec.createdAt).toBe('2031-05-06T07:08:09.000Z');
    clock.advance(1500);
    expect((await r.update('a', { status: 'built' })).updatedAt).toBe('2031-05-06T07:08:10.500Z');
  });
});
