import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/config.js';
import { FakeEngine } from '../../src/engine/fake.js';
import type { FleetDeps } from '../../src/fleet/context.js';
import { createAgent, startAgents } from '../../src/fleet/manager.js';
import { openFleet } from '../../src/fleet/open.js';
import { acquireRolloutLock } from '../../src/fleet/rollout-lock.js';
import { LocalRegistry } from '../../src/registry/local.js';
import { LOCAL_HISTORY_LIMIT } from '../../src/registry/registry.js';
import type { SupervisorEvent } from '../../src/supervisor/prober.js';
import { Supervisor, type SupervisorOptions } from '../../src/supervisor/supervisor.js';

// The supervisor's tick on the in-memory engine and a manual clock: no daemon, no sleeping. The
// supervisor's probe and the fleet's start probe are both answered from the fake's containers.
let dir: string;
let clock: ManualClock;
let engine: FakeEngine;
let deps: FleetDeps;
let close: () => Promise<void>;
let events: SupervisorEvent[];
/** Ports whose agents hang once running, every container on them (the supervisor's probe fails; starting still works). */
const hung = new Set<number>();
/** Containers that hang (a recreated one does not). */
const hungIds = new Set<string>();
/** Ports whose agent never becomes healthy (the fleet's start fails too: a crash loop). */
const broken = new Set<number>();

const running = (port: number) => [...engine.containers.values()].some((c) => c.state === 'running' && c.spec.hostPort?.port === port);
const portOf = (url: string) => Number(new URL(url).port);
/** The running container a URL reaches: by host port (primary) or by address (replicas). */
async function containerAt(url: string) {
  const u = new URL(url);
  for (const c of engine.containers.values()) {
    if (c.state !== 'running') continue;
    const listed = (await engine.listContainers({})).find((x) => x.id === c.id);
    if (c.spec.hostPort?.port === Number(u.port) || Object.values(listed?.addresses ?? {}).includes(u.hostname)) return c;
  }
  return undefined;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nexus-supervisor-'));
  clock = new ManualClock();
  engine = new FakeEngine({ clock });
  const fleet = await openFleet(loadConfig(dir, { NEXUS_PORT_RANGE: '9431-9440', NEXUS_OFFLINE: 'always' }), {}, { engine, clock });
  const probe = {
    health: async (url: string) => ({ ok: running(portOf(url)) && !broken.has(portOf(url)) }),
    tools: async () => [{ name: 'echo', description: 'echo', parameters: { type: 'object' } }],
  };
  deps = { ...fleet.deps, probe };
  close = fleet.close;
  events = [];
  hung.clear();
  hungIds.clear();
  broken.clear();
});
afterEach(async () => {
  await close();
  await rm(dir, { recursive: true, force: true });
});

function supervisor(opts: SupervisorOptions = {}): Supervisor {
  return new Supervisor(deps, {
    probe: async (url) => {
      const c = await containerAt(url);
      return !!c && !hungIds.has(c.id) && !hung.has(portOf(url)) && !broken.has(portOf(url));
    },
    random: () => 0,
    restartPolicy: { check_restart: { limit: 3, grace_s: 0 }, restart: { attempts: 2, delay_s: 1, interval_s: 600, max_delay_s: 60, mode: 'fail' } },
    onEvent: (e) => events.push(e),
    ...opts,
  });
}
/** One tick, then wait for the actions it started. */
async function tick(s: Supervisor, advanceMs = 0): Promise<void> {
  clock.advance(advanceMs);
  await s.tick();
  await s.idle();
}
const types = () => events.map((e) => e.type);
/** The supervisor's own history entries (appended with a reason, no status), without the registry's status changes. */
const supervisorHistory = async (d: FleetDeps, slug: string) => (await d.registry.history(slug)).filter((h) => h.status === undefined).map((h) => h.event);
const primary = () => [...engine.containers.values()].find((c) => c.spec.hostPort);

async function runningAgent(name = 'DataAgent'): Promise<{ slug: string; port: number }> {
  const c = await createAgent(deps, { name });
  await startAgents(deps, [name]);
  return { slug: c.agent.slug, port: c.agent.port };
}

describe('Supervisor tick (FakeEngine, ManualClock)', () => {
  it('puts a new replica in rotation after its first passing check and exposes it in rotation()', async () => {
    const { slug, port } = await runningAgent();
    const s = supervisor();
    expect(s.rotation(slug)).toEqual([]);
    await tick(s);
    expect(s.rotation(slug)).toEqual([expect.objectContaining({ id: primary()!.id, name: primary()!.spec.name, replica: 0, url: `http://127.0.0.1:${port}`, state: 'running', inRotation: true })]);
    expect(types()).toEqual(['replica_in']);
  });

  it('restores desired state at its first tick: a removed container and one never started come back through the start use case', async () => {
    const { slug } = await runningAgent();
    const never = await createAgent(deps, { name: 'NeverStarted' });
    await deps.registry.update(never.agent.slug, { desired: 'running' });
    await engine.removeContainer(primary()!.id);
    const s = supervisor();
    await tick(s);
    expect([...engine.containers.values()].filter((c) => c.state === 'running').map((c) => c.spec.name).sort()).toEqual([expect.stringContaining('data-agent'), expect.stringContaining('never-started')]);
    expect(events.filter((e) => e.type === 'restored').map((e) => e.agent).sort()).toEqual([slug, 'never-started']);
    expect((await supervisorHistory(deps, slug))).toEqual(['restored']);
    expect(await deps.registry.get('never-started')).toMatchObject({ status: 'running', desired: 'running' });
  });

  it('after the first tick, acts on a missing container only when two ticks in a row saw it missing; leaves desired=stopped alone', async () => {
    const { slug } = await runningAgent();
    const stopped = await createAgent(deps, { name: 'Idle' });
    const s = supervisor();
    await tick(s);
    await engine.removeContainer(primary()!.id);
    await tick(s, 5000);
    expect(primary()).toBeUndefined();
    await tick(s, 5000);
    expect(primary()?.state).toBe('running');
    expect(events.filter((e) => e.type === 'restored').map((e) => e.agent)).toEqual([slug]);
    expect((await deps.registry.get(stopped.agent.slug))?.desired).toBe('stopped');
  });

  it('a died container is left to the engine restart policy for engineGraceMs, then started again (reason: its exit)', async () => {
    await runningAgent();
    const s = supervisor({ engineGraceMs: 10_000 });
    await tick(s);
    const id = primary()!.id;
    engine.crash(id, 137);
    await tick(s, 1000);
    expect(primary()!.state).toBe('exited');
    await tick(s, 10_000);
    expect(primary()).toMatchObject({ id, state: 'running' });
    expect(events.find((e) => e.type === 'restored')).toMatchObject({ reason: expect.stringContaining('exit 137') });
  });

  it('3 failing checks take a hung replica out (record unhealthy), restart it after the backoff, and it is recovered in rotation', async () => {
    const { slug, port } = await runningAgent();
    const s = supervisor();
    await tick(s);
    const old = primary()!.id;
    hungIds.add(old);
    await tick(s, 5000);
    await tick(s, 5000);
    expect(s.rotation(slug)[0]!.inRotation).toBe(true);
    await tick(s, 5000);
    expect(s.rotation(slug)[0]!.inRotation).toBe(false);
    expect(types()).toEqual(['replica_in', 'replica_out', 'restart_requested']);
    expect(events.at(-1)).toMatchObject({ delayMs: 1000, attempt: 1, reason: expect.stringContaining('3 failing checks in a row') });
    expect(await deps.registry.get(slug)).toMatchObject({ status: 'unhealthy', lastError: expect.stringContaining('failing health checks') });
    await tick(s, 500); // the backoff has not passed yet
    expect(primary()!.id).toBe(old);
    await tick(s, 500);
    expect(primary()!.id).not.toBe(old);
    expect(s.rotation(slug)[0]!.inRotation).toBe(false); // recreated: out until its first pass
    await tick(s, 5000);
    expect(s.rotation(slug)[0]!.inRotation).toBe(true);
    expect(types().slice(3)).toEqual(['restarted', 'replica_in', 'recovered']);
    expect((await supervisorHistory(deps, slug))).toEqual(['restarted', 'recovered']);
    expect(await deps.registry.get(slug)).toMatchObject({ status: 'running' });
    expect((await deps.registry.get(slug))?.lastError).toBeUndefined();
  });

  it('a passing check before the backoff ends cancels the restart (the hang was temporary)', async () => {
    const { slug, port } = await runningAgent();
    const s = supervisor();
    await tick(s);
    const old = primary()!.id;
    hung.add(port);
    for (let i = 0; i < 3; i++) await tick(s, 5000);
    expect(types()).toEqual(['replica_in', 'replica_out', 'restart_requested']);
    hung.delete(port);
    await tick(s, 500);
    await tick(s, 5000);
    expect(primary()!.id).toBe(old);
    expect(types().slice(3)).toEqual(['replica_in', 'recovered']);
    expect(s.rotation(slug)[0]!.inRotation).toBe(true);
  });

  it('past the restart limit an agent is failed: event, history, record status and lastError; no more restarts', async () => {
    const { slug, port } = await runningAgent();
    const s = supervisor({ restartPolicy: { check_restart: { limit: 3, grace_s: 0 }, restart: { attempts: 1, delay_s: 1 } } });
    await tick(s);
    hung.add(port);
    for (let i = 0; i < 12; i++) await tick(s, 2000);
    expect(events.filter((e) => e.type === 'restarted')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'failed')).toEqual([expect.objectContaining({ agent: slug, reason: expect.stringContaining('exceeded allowed attempts 1') })]);
    expect(await deps.registry.get(slug)).toMatchObject({ status: 'failed', lastError: expect.stringMatching(/^supervisor: .*exceeded allowed attempts/) });
    expect((await supervisorHistory(deps, slug))).toEqual(['restarted', 'failed']);
    const calls = engine.calls.length;
    for (let i = 0; i < 3; i++) await tick(s, 5000);
    expect(engine.calls.slice(calls).filter((c) => /^(create|start|remove) container/.test(c))).toEqual([]);
    // an operator's start clears it: the supervisor watches it again
    hung.delete(port);
    await startAgents(deps, ['DataAgent']);
    await tick(s, 5000);
    expect(s.rotation(slug)[0]!.inRotation).toBe(true);
  });

  it('a crash-looping start is retried with backoff, then failed (restart limit), and a new supervisor does not start it again', async () => {
    const c = await createAgent(deps, { name: 'Crashy' });
    broken.add(c.agent.port);
    await deps.registry.update(c.agent.slug, { desired: 'running' });
    const s = supervisor();
    for (let i = 0; i < 10; i++) await tick(s, 2500);
    expect(events.filter((e) => e.type === 'action_failed')).toHaveLength(3);
    expect(events.filter((e) => e.type === 'failed')).toEqual([expect.objectContaining({ agent: 'crashy', reason: expect.stringContaining('exceeded allowed attempts 2') })]);
    expect(await deps.registry.get('crashy')).toMatchObject({ status: 'failed', desired: 'running' });
    const creates = engine.calls.filter((x) => x.startsWith('create container')).length;
    await tick(supervisor(), 5000);
    expect(engine.calls.filter((x) => x.startsWith('create container')).length).toBe(creates);
  });

  it('listings of registered agents follow health: unavailable while down, available when recovered; unregistered agents are not touched', async () => {
    const { slug, port } = await runningAgent();
    const other = await runningAgent('Quiet');
    await deps.registry.update(slug, { marketplace: { id: 'm1', key: 'k1', url: 'http://127.0.0.1:1', cardHash: 'h', status: 'available', registeredAt: new Date(0).toISOString() } });
    const s = supervisor();
    await tick(s);
    hung.add(port);
    hung.add(other.port);
    for (let i = 0; i < 3; i++) await tick(s, 100);
    // no marketplace is configured: the change is kept pending, which proves it was asked for
    expect((await deps.registry.get(slug))?.marketplace?.pending).toBe('unavailable');
    hung.delete(port);
    await tick(s, 1000);
    await tick(s, 100);
    expect(types()).toContain('recovered');
    expect((await deps.registry.get(slug))?.marketplace?.pending).toBe('available');
    expect((await deps.registry.get(other.slug))?.marketplace).toBeUndefined();
  });

  it('autoscaling: sustained load scales out within max, quiet scales in after the cool-down; every decision is an event with its reason', async () => {
    const { slug } = await runningAgent();
    let inflight = 8;
    const s = supervisor({
      autoscale: async () => ({ min: 1, max: 3, target_inflight_per_replica: 2, scale_in_cooldown_s: 60, scale_out_window_s: 10 }),
      loadOf: () => ({ inflight, replicas: 1 }),
      routerPort: 9440,
    });
    for (let i = 0; i < 4; i++) await tick(s, 5000);
    const out = events.find((e) => e.type === 'scale_out');
    expect(out).toMatchObject({ replicas: 3, reason: expect.stringContaining('average in-flight 8.0 over 10 s') });
    expect(events.find((e) => e.type === 'scale_hold')).toMatchObject({ reason: expect.stringContaining('not enough load history') });
    expect([...engine.containers.values()].filter((c) => c.spec.labels['dev.nexus-delta.agent'] === slug)).toHaveLength(3);
    inflight = 0;
    for (let i = 0; i < 4; i++) await tick(s, 5000);
    expect(events.filter((e) => e.type === 'scale_in')).toEqual([]);
    expect(events.at(-1)).toMatchObject({ type: 'scale_hold', reason: expect.stringContaining('cool-down') });
    for (let i = 0; i < 10; i++) await tick(s, 5000);
    expect(events.find((e) => e.type === 'scale_in')).toMatchObject({ replicas: 1, reason: expect.stringContaining('after the 60 s cool-down') });
    expect([...engine.containers.values()].filter((c) => c.spec.labels['dev.nexus-delta.agent'] === slug)).toHaveLength(1);
    expect((await supervisorHistory(deps, slug))).toEqual(['scaled', 'scaled']);
  });

  it('autoscale reads the agent manifest before nexus.yaml and reports a bad setting once', async () => {
    const { slug } = await runningAgent();
    const manifest = join(dir, 'agents', slug, 'agent.json');
    const m = JSON.parse(await (await import('node:fs/promises')).readFile(manifest, 'utf8'));
    await writeFile(manifest, JSON.stringify({ ...m, autoscale: { min: 2, max: 1, target_inflight_per_replica: 1 } }));
    const s = supervisor();
    await tick(s);
    await tick(s, 5000);
    expect(events.filter((e) => e.type === 'action_failed')).toEqual([expect.objectContaining({ action: 'autoscale', reason: expect.stringMatching(/agent\.json: autoscale\.max: max must be >= min/) })]);
    await writeFile(manifest, JSON.stringify({ ...m, autoscale: { min: 2, max: 2, target_inflight_per_replica: 1 } }));
    await tick(s, 5000);
    expect(events.find((e) => e.type === 'scale_out')).toMatchObject({ replicas: 2, reason: expect.stringContaining('below min 2') });
  });

  it('a missing replica in the middle of a scaled agent is recreated through the start use case', async () => {
    const { slug } = await runningAgent();
    const { scaleAgent } = await import('../../src/fleet/scale.js');
    await scaleAgent(deps, 'DataAgent', 3, { routerPort: 9440 });
    const s = supervisor();
    await tick(s);
    const middle = [...engine.containers.values()].find((c) => c.spec.labels['dev.nexus-delta.replica'] === '1')!;
    await engine.removeContainer(middle.id);
    await tick(s, 5000);
    const now = [...engine.containers.values()].filter((c) => c.spec.labels['dev.nexus-delta.agent'] === slug).map((c) => c.spec.labels['dev.nexus-delta.replica']).sort();
    expect(now).toEqual(['0', '1', '2']);
    expect(events.find((e) => e.type === 'restored')).toMatchObject({ reason: 'replica 1 of 3 is missing' });
  });

  it('leaves an agent alone while its rollout marker is held (no restart, restore or scaling), and supervises it again after', async () => {
    const { slug } = await runningAgent();
    const s = supervisor({ autoscale: async () => ({ min: 2, max: 3, target_inflight_per_replica: 1, scale_in_cooldown_s: 60, scale_out_window_s: 10 }), routerPort: 9440 });
    const release = await acquireRolloutLock(dir, slug);
    await tick(s);
    expect(types()).toEqual(['rollout_hold', 'replica_in']);
    const calls = engine.calls.length;
    // the old primary drains: it stops answering, then it is removed (the rollout recreates it later)
    const old = primary()!.id;
    hungIds.add(old);
    for (let i = 0; i < 5; i++) await tick(s, 5000);
    await engine.removeContainer(old);
    const afterRemove = engine.calls.length;
    for (let i = 0; i < 3; i++) await tick(s, 5000);
    expect(engine.calls.slice(calls).filter((c) => /^(create|start|remove) container/.test(c))).toHaveLength(engine.calls.slice(calls, afterRemove).filter((c) => /^remove container/.test(c)).length);
    expect(types().filter((t) => ['restart_requested', 'restarted', 'restored', 'scale_out', 'scale_hold', 'failed'].includes(t))).toEqual([]);
    expect(types()).toContain('replica_out'); // probes go on: the rotation follows the draining replica
    expect(await deps.registry.get(slug)).not.toMatchObject({ status: 'failed' });
    // the rollout ends without a primary: the desired state is restored, after two ticks that saw it missing
    await release();
    await tick(s, 5000);
    expect(events.filter((e) => e.type === 'rollout_resume')).toEqual([expect.objectContaining({ agent: slug, reason: expect.stringContaining('rollout ended') })]);
    expect(primary()).toBeUndefined();
    await tick(s, 5000);
    expect(primary()?.state).toBe('running');
    expect(events.find((e) => e.type === 'restored')).toMatchObject({ agent: slug });
  });

  it('without onEvent, its events join the fleet\'s typed stream as notes', async () => {
    const notes: { phase: string; agent?: string | undefined; message?: string | undefined }[] = [];
    await runningAgent();
    const s = new Supervisor({ ...deps, onEvent: (e) => e.kind === 'note' && notes.push(e) }, { probe: async () => true });
    await tick(s);
    expect(notes).toEqual([expect.objectContaining({ phase: 'replica_in', agent: 'data-agent', message: 'health check passed' })]);
  });

  it('refuses bad options with a one-line USAGE error naming them', () => {
    expect(() => new Supervisor(deps, { probeIntervalMs: 0 })).toThrow(expect.objectContaining({ code: 'USAGE', message: expect.stringContaining('probeIntervalMs') }));
    expect(() => new Supervisor(deps, { failureThreshold: 1.5 })).toThrow(/failureThreshold/);
    expect(() => new Supervisor(deps, { restartPolicy: { restart: { mode: 'later' as never } } })).toThrow(/restart policy: restart.mode/);
  });

  it('stop() ends the loop started by start(), which restores desired state right away', async () => {
    const { slug } = await runningAgent();
    await engine.removeContainer(primary()!.id);
    const s = supervisor({ probeIntervalMs: 1000 });
    s.start();
    for (let i = 0; i < 50 && !events.some((e) => e.type === 'restored'); i++) await new Promise((r) => setTimeout(r, 10));
    await s.stop();
    expect(events.find((e) => e.type === 'restored')).toMatchObject({ agent: slug });
    expect(primary()?.state).toBe('running');
  });
});

describe('LocalRegistry history', () => {
  it(`keeps the last ${LOCAL_HISTORY_LIMIT} entries per agent`, async () => {
    const r = new LocalRegistry(dir);
    for (let i = 0; i < LOCAL_HISTORY_LIMIT + 5; i++) await r.appendHistory('a', { event: 'restarted', reason: `#${i}` });
    const h = await r.history('a');
    expect(h).toHaveLength(LOCAL_HISTORY_LIMIT);
    expect(h[0]!.reason).toBe('#5');
    expect(h.at(-1)!.reason).toBe(`#${LOCAL_HISTORY_LIMIT + 4}`);
  });
});
