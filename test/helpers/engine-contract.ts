import { describe, expect, it } from 'vitest';
import { HARDENED, LABEL } from '../../src/conventions.js';
import type { ContainerSpec, Engine } from '../../src/engine/engine.js';
import { eventually } from './wait.js';

/** A long-running command and healthchecks that pass and fail, for an image with `node` in it. */
export const NODE_PROBES = {
  cmd: ['node', '-e', 'setInterval(() => {}, 1e9)'],
  passing: ['node', '-e', '0'],
  failing: ['node', '-e', 'process.exit(1)'],
};

/** What the contract needs of an engine under test. */
export interface EngineFixture {
  engine: Engine;
  /** An image on the engine whose `cmd` runs until stopped, as the non-root user, read-only. */
  image: string;
  cmd: string[];
  /** Healthcheck commands (exec form) that pass and fail on this engine. */
  passing: string[];
  failing: string[];
  /** Labels on everything the contract creates (the caller removes by them). */
  labels: Record<string, string>;
  /** A name prefix unique to this run. */
  prefix: string;
  /** At least 3 host ports free on 127.0.0.1. */
  ports: number[];
  /** Hold a host port with a process outside the engine; returns the release. */
  holdPort(port: number): Promise<() => Promise<void>>;
  /** A reference for the offline Node image (built if absent, reused if present). */
  hostNodeRef: string;
}

/**
 * The Engine contract, run against every implementation (DockerEngine in
 * test/integration/engine-docker.test.ts, FakeEngine in test/unit/engine-fake.test.ts), so a use
 * case tested on the fake behaves the same on a daemon: containers found by labels, idempotent
 * start/stop/remove, PORT_IN_USE for a host port taken by a container or another process,
 * NAME_TAKEN, health states, images present and absent, networks, offline images.
 * Swarm stacks are not here: the real engine needs a swarm (test/integration/swarm.test.ts).
 */
export function engineContract(kind: string, fixture: () => Promise<EngineFixture>): void {
  describe(`Engine contract: ${kind}`, () => {
    let n = 0;
    const spec = (f: EngineFixture, extra: Partial<ContainerSpec> = {}): ContainerSpec => ({
      name: `${f.prefix}-c${++n}`,
      image: f.image,
      labels: { ...f.labels, [LABEL.kind]: 'container' },
      env: {},
      containerPort: 8080,
      ...HARDENED,
      capDrop: [...HARDENED.capDrop],
      securityOpt: [...HARDENED.securityOpt],
      restartPolicy: 'no',
      tmpfs: { '/tmp': 'size=1m' },
      memoryMiB: 64,
      cpus: 0.5,
      pidsLimit: 32,
      cmd: f.cmd,
      ...extra,
    });
    const health = async (f: EngineFixture, id: string, want: string) =>
      eventually(async () => ((await f.engine.inspectContainer(id))?.health === want ? want : undefined), 60_000, 250);

    it('answers ping with its version', async () => {
      const f = await fixture();
      expect(await f.engine.ping()).toMatchObject({ version: expect.any(String), apiVersion: expect.any(String) });
    });

    it('creates, starts, stops and removes a container found by its labels; repeats are fine', async () => {
      const f = await fixture();
      const s = spec(f, { hostPort: { address: '127.0.0.1', port: f.ports[0]! } });
      const id = await f.engine.createContainer(s);
      expect(await f.engine.listContainers(f.labels)).toEqual([expect.objectContaining({ id, name: s.name, state: 'created', labels: expect.objectContaining(f.labels) })]);
      await f.engine.startContainer(id);
      await f.engine.startContainer(id);
      expect(await f.engine.inspectContainer(id)).toMatchObject({ id, name: s.name, state: 'running', health: 'none', labels: expect.objectContaining(f.labels) });
      expect((await f.engine.inspectContainer(s.name))?.id).toBe(id);
      await f.engine.signalContainer(id, 'SIGWINCH');
      await f.engine.stopContainer(id, 1);
      await f.engine.stopContainer(id, 1);
      expect((await f.engine.inspectContainer(id))?.state).toBe('exited');
      await f.engine.removeContainer(id);
      await f.engine.removeContainer(id);
      expect(await f.engine.inspectContainer(id)).toBeUndefined();
      expect(await f.engine.listContainers(f.labels)).toEqual([]);
    });

    it('refuses a second container with the same name (NAME_TAKEN) and an absent image (ENGINE_ERROR)', async () => {
      const f = await fixture();
      const s = spec(f);
      const id = await f.engine.createContainer(s);
      await expect(f.engine.createContainer({ ...s })).rejects.toMatchObject({ code: 'NAME_TAKEN' });
      await expect(f.engine.createContainer(spec(f, { image: `${f.prefix}-absent:none` }))).rejects.toMatchObject({ code: 'ENGINE_ERROR' });
      await f.engine.removeContainer(id);
    });

    it('fails to start with PORT_IN_USE when the host port is held by a container or by another process', async () => {
      const f = await fixture();
      const [p0, , p2] = f.ports as [number, number, number];
      const a = await f.engine.createContainer(spec(f, { hostPort: { address: '127.0.0.1', port: p0 } }));
      await f.engine.startContainer(a);
      const b = await f.engine.createContainer(spec(f, { hostPort: { address: '127.0.0.1', port: p0 } }));
      await expect(f.engine.startContainer(b)).rejects.toMatchObject({ code: 'PORT_IN_USE' });
      const release = await f.holdPort(p2);
      try {
        const c = await f.engine.createContainer(spec(f, { hostPort: { address: '127.0.0.1', port: p2 } }));
        await expect(f.engine.startContainer(c)).rejects.toMatchObject({ code: 'PORT_IN_USE' });
        await f.engine.removeContainer(c);
      } finally {
        await release();
      }
      for (const id of [a, b]) await f.engine.removeContainer(id);
    });

    it('reports health: healthy when the check passes, unhealthy when it fails', async () => {
      const f = await fixture();
      const hc = { intervalS: 1, timeoutS: 5, retries: 1, startPeriodS: 0 };
      const good = await f.engine.createContainer(spec(f, { healthcheck: { test: f.passing, ...hc } }));
      const bad = await f.engine.createContainer(spec(f, { healthcheck: { test: f.failing, ...hc } }));
      await f.engine.startContainer(good);
      await f.engine.startContainer(bad);
      expect(await health(f, good, 'healthy')).toBe('healthy');
      expect(await health(f, bad, 'unhealthy')).toBe('unhealthy');
      for (const id of [good, bad]) await f.engine.removeContainer(id);
    });

    it('inspects, tags and removes images; absent ones are undefined, unpullable ones fail with ENGINE_ERROR', async () => {
      const f = await fixture();
      expect(await f.engine.inspectImage(`${f.prefix}-absent:none`)).toBeUndefined();
      const img = await f.engine.inspectImage(f.image);
      expect(img).toMatchObject({ id: expect.stringMatching(/^sha256:/), tags: expect.arrayContaining([f.image]) });
      const alias = `${f.prefix}-alias:t`;
      await f.engine.tagImage(f.image, alias);
      expect((await f.engine.inspectImage(alias))?.id).toBe(img!.id);
      await f.engine.removeImage(alias);
      await f.engine.removeImage(alias);
      expect(await f.engine.inspectImage(alias)).toBeUndefined();
      expect((await f.engine.inspectImage(f.image))?.id).toBe(img!.id);
      await expect(f.engine.pullImage(`${f.prefix}-nowhere/absent:none`)).rejects.toMatchObject({ code: 'ENGINE_ERROR' });
    });

    it('builds the offline Node image once and reuses it', async () => {
      const f = await fixture();
      const a = await f.engine.ensureHostNodeImage(f.hostNodeRef);
      const b = await f.engine.ensureHostNodeImage(f.hostNodeRef);
      expect(a.tags).toContain(f.hostNodeRef);
      expect(b.id).toBe(a.id);
    });

    it('streams container events of labelled containers from a start time until aborted', async () => {
      const f = await fixture();
      const since = Date.now() - 1000;
      // another container without the labels: its events are not ours
      const other = await f.engine.createContainer(spec(f, { labels: { [LABEL.kind]: 'container', 'dev.nexus-delta.contract-other': f.prefix } }));
      try {
        const id = await f.engine.createContainer(spec(f));
        await f.engine.startContainer(other);
        await f.engine.startContainer(id);
        const details = await f.engine.inspectContainer(id);
        expect(details).toMatchObject({ restartPolicy: 'no' });
        await f.engine.removeContainer(id);
        const ac = new AbortController();
        const seen: { kind: string; id: string; exitCode?: number | undefined }[] = [];
        for await (const ev of f.engine.events(f.labels, ac.signal, since)) {
          expect(ev.labels).toMatchObject(f.labels);
          if (ev.id === id || ev.id === other) seen.push({ kind: ev.kind, id: ev.id, ...(ev.kind === 'die' ? { exitCode: ev.exitCode } : {}) });
          if (ev.kind === 'destroy' && ev.id === id) ac.abort();
        }
        const mine = seen.filter((e) => e.id === id).map((e) => e.kind);
        expect(mine).toEqual(expect.arrayContaining(['start', 'die', 'destroy']));
        expect(mine.indexOf('start')).toBeLessThan(mine.indexOf('die'));
        expect(seen.find((e) => e.id === id && e.kind === 'die')?.exitCode).toEqual(expect.any(Number));
        expect(seen.some((e) => e.id === other)).toBe(false);
      } finally {
        await f.engine.removeContainer(other);
      }
    });

    it('ensures, connects and removes networks; repeats are fine and a network in use stays', async () => {
      const f = await fixture();
      const net = `${f.prefix}-net`;
      const id = await f.engine.ensureNetwork(net, f.labels);
      expect(await f.engine.ensureNetwork(net, f.labels)).toBe(id);
      const c = await f.engine.createContainer(spec(f));
      await f.engine.startContainer(c);
      await f.engine.connectNetwork(net, c, ['contract']);
      await f.engine.connectNetwork(net, c, ['contract']);
      expect(await f.engine.removeNetwork(net)).toBe(false);
      await f.engine.removeContainer(c);
      expect(await f.engine.removeNetwork(net)).toBe(true);
      expect(await f.engine.removeNetwork(net)).toBe(false);
    });
  });
}
