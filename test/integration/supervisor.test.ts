import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import getPort from 'get-port';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, startAgents } from '../../src/fleet/manager.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import type { SupervisorEvent } from '../../src/supervisor/prober.js';
import { Supervisor, type SupervisorOptions } from '../../src/supervisor/supervisor.js';
import { BOOTSTRAP } from '../helpers/manager.js';
import { eventually } from '../helpers/wait.js';
import { makeWorkspace, type TestWorkspace } from '../helpers/workspace.js';

// The supervisor on the real engine with real agents (issue 9 §5 tests). Probes every 500 ms; every
// wait is bounded (eventually), nothing asserts on elapsed time. The time from a hung agent to
// healthy again is printed (`supervisor: ... healthy again after N ms`) for BENCHMARKS.md.
const docker = new Docker();
let ws: TestWorkspace;
beforeAll(async () => {
  ws = await makeWorkspace('9431-9445', { start: { healthTimeoutS: 20 } });
});
afterAll(() => ws.cleanup());

const OPTS: SupervisorOptions = {
  probeIntervalMs: 500,
  probeTimeoutMs: 400,
  restartPolicy: { check_restart: { limit: 3, grace_s: 2 }, restart: { attempts: 3, delay_s: 0.2, interval_s: 300, max_delay_s: 2 } },
  engineGraceMs: 2000,
};

function supervise(events: SupervisorEvent[], opts: SupervisorOptions = {}): Supervisor {
  const s = new Supervisor(ws.deps, { ...OPTS, ...opts, onEvent: (e) => events.push(e) });
  s.start();
  return s;
}

/** Create an agent, let `edit` change its entry point, start it (waits for health). */
async function runningAgent(name: string, edit?: (src: string) => string): Promise<{ slug: string; port: number }> {
  const c = await createAgent(ws.deps, { name, capabilities: ['data'] });
  if (edit) {
    const p = join(ws.dir, 'agents', c.agent.slug, 'src/index.ts');
    await writeFile(p, edit(await readFile(p, 'utf8')));
  }
  const r = await startAgents(ws.deps, [name]);
  expect(r.agents[0]?.outcome).toBe('started');
  return { slug: c.agent.slug, port: c.agent.port };
}

const primaryId = async (slug: string) => (await ws.deps.engine.listContainers({ 'dev.nexus-delta.agent': slug, 'dev.nexus-delta.replica': '0' })).find((c) => c.state === 'running')?.id;
const inRotation = (s: Supervisor, slug: string) => s.rotation(slug).some((r) => r.replica === 0 && r.inRotation);
/** Bounded wait for the agent's primary to be in rotation, in a running container other than `not`. */
const healthyAgain = (s: Supervisor, slug: string, not?: string, timeoutMs = 20_000) =>
  eventually(async () => {
    const id = await primaryId(slug);
    return id && id !== not && inRotation(s, slug) && s.rotation(slug)[0]?.id === id ? id : undefined;
  }, timeoutMs, 100);

/**
 * An agent whose main thread blocks its event loop for good on SIGUSR2 (tools run in worker
 * threads, so a spinning tool would not block it; the container's init forwards the signal).
 */
const withHangOnSignal = (src: string) =>
  `import { isMainThread } from 'node:worker_threads';\nif (isMainThread) process.on('SIGUSR2', () => { for (;;) {} });\n${src}`;

/** `agent serve` for the test workspace as a child process; resolves with its URL once it listens. */
async function serve(): Promise<{ child: ChildProcess; url: string; exited: Promise<unknown> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(PACKAGE_ROOT, 'src/cli/main.ts'), '--workspace', ws.dir, 'serve', '--port', String(await getPort())], {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, NEXUS_MANAGER_TOKEN: BOOTSTRAP },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((r) => child.on('close', r));
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /manager listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error(`serve exited: ${err.slice(-2000)}`)));
  });
  return { child, url, exited };
}

describe('Supervisor on the real engine', () => {
  it('an agent whose event loop is blocked goes out of rotation, is restarted and is healthy again within 20 s', async () => {
    const { slug } = await runningAgent('SpinAgent', withHangOnSignal);
    const events: SupervisorEvent[] = [];
    await using s = supervise(events);
    const before = await healthyAgain(s, slug);
    const t0 = Date.now();
    await docker.getContainer(before).kill({ signal: 'SIGUSR2' });
    await eventually(async () => (inRotation(s, slug) ? undefined : true), 20_000, 50);
    await healthyAgain(s, slug, before, 20_000 - (Date.now() - t0));
    console.log(`supervisor: blocked event loop -> healthy again after ${Date.now() - t0} ms`);
    // in rotation as the probe round ends; its events (history first) follow right after. The new
    // replica may pass a probe round ('recovered') before the restart action returns ('restarted'
    // is noted once the start use case's own health wait ends), so wait for both.
    const seen = (type: string) => events.some((e) => e.agent === slug && e.type === type);
    await eventually(async () => (seen('recovered') && seen('restarted') ? true : undefined), 10_000, 50);
    expect(events.filter((e) => e.agent === slug).map((e) => e.type)).toEqual(expect.arrayContaining(['replica_out', 'restart_requested', 'restarted', 'recovered']));
    expect((await ws.deps.registry.history(slug)).map((h) => h.event)).toEqual(expect.arrayContaining(['restarted', 'recovered']));
    expect(await ws.deps.registry.get(slug)).toMatchObject({ status: 'running', desired: 'running' });
  });

  it('a frozen container (docker pause) goes out of rotation and is healthy again within 20 s', async () => {
    const { slug } = await runningAgent('PausedAgent');
    const events: SupervisorEvent[] = [];
    await using s = supervise(events);
    const before = await healthyAgain(s, slug);
    const t0 = Date.now();
    await docker.getContainer(before).pause();
    await eventually(async () => (inRotation(s, slug) ? undefined : true), 20_000, 50);
    await healthyAgain(s, slug, before, 20_000 - (Date.now() - t0));
    console.log(`supervisor: paused container -> healthy again after ${Date.now() - t0} ms`);
    // 'restarted' is noted when the restart action returns, which may follow the first passing probe
    await eventually(async () => (events.some((e) => e.agent === slug && e.type === 'restarted') ? true : undefined), 10_000, 50);
    expect(events.filter((e) => e.agent === slug).map((e) => e.type)).toEqual(expect.arrayContaining(['replica_out', 'restart_requested', 'restarted']));
  });

  it('a SIGKILLed agent process, a docker kill and a docker rm -f all come back', async () => {
    const { slug } = await runningAgent('KillAgent');
    const events: SupervisorEvent[] = [];
    await using s = supervise(events);
    let id = await healthyAgain(s, slug);

    // SIGKILL the node process (the child of the container's init): the engine's policy restarts it
    const pid = (await ws.deps.engine.inspectContainer(id))!.pid;
    const child = Number((await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/)[0]);
    process.kill(child, 'SIGKILL');
    await eventually(async () => (inRotation(s, slug) ? undefined : true), 20_000, 50).catch(() => undefined); // may be too quick to see
    await eventually(async () => ((await ws.deps.engine.inspectContainer(id))?.state === 'running' && inRotation(s, slug) ? true : undefined), 30_000, 100);

    // docker kill: the engine does not restart a container killed by hand; desired state does
    await docker.getContainer(id).kill();
    await eventually(async () => (events.some((e) => e.agent === slug && e.type === 'restored') ? true : undefined), 30_000, 100);
    id = await healthyAgain(s, slug, undefined, 30_000);

    // docker rm -f: a new container
    await docker.getContainer(id).remove({ force: true });
    await healthyAgain(s, slug, id, 30_000);
    // the start use case reports once its health wait ends, which may be after the probe saw it
    await eventually(async () => (events.filter((e) => e.agent === slug && e.type === 'restored').length >= 2 ? true : undefined), 30_000, 100);
  });

  it('a new supervisor (the manager restarted) restores the desired state at its start', async () => {
    const { slug } = await runningAgent('RebootAgent');
    const first: SupervisorEvent[] = [];
    const s1 = supervise(first);
    const id = await healthyAgain(s1, slug);
    await s1.stop();
    await docker.getContainer(id).remove({ force: true }); // e.g. the host rebooted
    const events: SupervisorEvent[] = [];
    await using s2 = supervise(events);
    await healthyAgain(s2, slug, id, 30_000);
    const restored = await eventually(async () => events.find((e) => e.agent === slug && e.type === 'restored'), 30_000, 100);
    expect(restored.reason).toContain('no container');
  });

  it('agent serve killed with SIGKILL and started again restores the desired state, and its gateway serves the agent', async () => {
    const { slug } = await runningAgent('ServeAgent');
    const first = await serve();
    let second: Awaited<ReturnType<typeof serve>> | undefined;
    try {
      first.child.kill('SIGKILL');
      await first.exited;
      const id = (await primaryId(slug))!;
      await docker.getContainer(id).remove({ force: true });
      second = await serve();
      const { url } = second;
      const call = async () => {
        const r = await fetch(`${url}/api/v1/agents/ServeAgent/execute`, { method: 'POST', headers: { authorization: `Bearer ${BOOTSTRAP}`, 'content-type': 'application/json' }, body: JSON.stringify({ tool_name: 'process_data', parameters: { data: [1, 2, 3] } }) });
        return r.status === 200 ? ((await r.json()) as unknown) : (await r.text(), undefined);
      };
      expect(await eventually(call, 30_000, 200)).toBeTruthy();
      expect(await primaryId(slug)).not.toBe(id);
      expect((await ws.deps.registry.history(slug)).map((h) => h.event)).toContain('restored');
    } finally {
      for (const p of [first, second]) if (p && p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    }
  }, 90_000);

  it('autoscaling from the manifest: load scales out within max (replicas probed on the network, in rotation), quiet scales back in after the cool-down', async () => {
    const { slug } = await runningAgent('ScaleAgent');
    const manifest = join(ws.dir, 'agents', slug, 'agent.json');
    await writeFile(manifest, JSON.stringify({ ...JSON.parse(await readFile(manifest, 'utf8')), autoscale: { min: 1, max: 3, target_inflight_per_replica: 2, scale_out_window_s: 1, scale_in_cooldown_s: 3 } }));
    let inflight = 6; // what the gateway would report under load
    const events: SupervisorEvent[] = [];
    await using s = supervise(events, { loadOf: () => ({ inflight, replicas: 1 }), routerPort: 9459 });
    await eventually(async () => (s.rotation(slug).filter((r) => r.inRotation).length === 3 ? true : undefined), 60_000, 200);
    expect(s.rotation(slug).map((r) => r.replica)).toEqual([0, 1, 2]);
    await s.idle(); // a scaling's event is noted when its use case returns, which may follow the probes
    expect(events.find((e) => e.type === 'scale_out')).toMatchObject({ replicas: 3, reason: expect.stringContaining('target 2 per replica') });
    inflight = 0;
    await eventually(async () => (s.rotation(slug).length === 1 ? true : undefined), 60_000, 200);
    await s.idle();
    // the average over the window falls step by step: 3 -> 2 -> 1, each after the cool-down
    const ins = events.filter((e) => e.type === 'scale_in');
    expect(ins.at(-1)).toMatchObject({ replicas: 1, reason: expect.stringContaining('after the 3 s cool-down') });
    expect(events.filter((e) => e.type === 'scale_out' || e.type === 'scale_in').every((e) => 'replicas' in e && e.replicas >= 1 && e.replicas <= 3)).toBe(true);
    await s.idle(); // the last scaling's history is written when its use case returns
    expect((await ws.deps.registry.history(slug)).filter((h) => h.event === 'scaled').length).toBe(1 + ins.length);
  });

  it('the restart limit stops a crash-looping agent and reports it (event, record status failed)', async () => {
    const c = await createAgent(ws.deps, { name: 'CrashLoop', capabilities: ['data'] });
    const p = join(ws.dir, 'agents', c.agent.slug, 'src/index.ts');
    await writeFile(p, `${await readFile(p, 'utf8')}\nthrow new Error('crash at start');\n`);
    expect((await startAgents(ws.deps, ['CrashLoop'])).agents[0]?.outcome).toBe('failed');
    const events: SupervisorEvent[] = [];
    await using s = supervise(events, { restartPolicy: { restart: { attempts: 2, delay_s: 0.2, interval_s: 300 } } });
    const failed = await eventually(async () => events.find((e) => e.agent === 'crash-loop' && e.type === 'failed'), 60_000, 200);
    expect(failed.reason).toMatch(/crash at start|exited/);
    expect(failed.reason).toMatch(/exceeded allowed attempts 2/);
    expect(events.filter((e) => e.agent === 'crash-loop' && e.type === 'action_failed')).toHaveLength(3);
    expect(await ws.deps.registry.get('crash-loop')).toMatchObject({ status: 'failed', desired: 'running', lastError: expect.stringMatching(/^supervisor: /) });
    expect((await ws.deps.registry.history('crash-loop')).map((h) => h.event)).toContain('failed');
    void s;
  });
});
