import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer, type ManagerApp } from '../../src/server/app.js';
import { EventBus, startMetricsProducer, type BusOptions, type StreamEvent } from '../../src/server/events-bus.js';
import { streamRoutes, WS_CLOSE } from '../../src/server/streams.js';
import { createToken } from '../../src/server/tokens.js';
import { BOOTSTRAP, tempWorkspace } from '../helpers/manager.js';
import { sseClient, wsClient, type StreamClient } from '../helpers/streams.js';
import { eventually } from '../helpers/wait.js';

interface Running {
  app: ManagerApp;
  bus: EventBus;
  base: string;
  viewer: string;
  logs: string[];
}

/** A manager on 127.0.0.1 (port 0) with only the stream routes, logging at debug into `logs`. */
async function start(busOpts: BusOptions = {}, heartbeatMs = 15_000): Promise<Running> {
  const workspace = await tempWorkspace();
  const bus = new EventBus(busOpts);
  const logs: string[] = [];
  const stream = new Writable({ write: (chunk, _enc, cb) => (logs.push(String(chunk)), cb()) });
  const app = await buildServer({
    workspace,
    bootstrapToken: BOOTSTRAP,
    limits: { api: { perMinute: 100_000 } },
    log: { level: 'debug', stream },
    plugins: { api: [streamRoutes({ bus, heartbeatMs, cutoffGraceMs: 30_000 })] },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const viewer = (await createToken({ scope: 'viewer', ttl: '1h' }, { workspace })).token;
  return { app, bus, base: `http://127.0.0.1:${port}/api/v1`, viewer, logs };
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const sequenced = (c: StreamClient) => c.events.filter((e) => e.seq > 0);
const tick = () => new Promise((r) => setImmediate(r));

/** Publish `agents` x `perAgent` agent events, round-robin, `batch` per macrotask (so sockets flush meanwhile). */
async function publishFleet(bus: EventBus, agents: number, perAgent: number, from = 0, batch = 250, pad = ''): Promise<void> {
  let k = 0;
  for (let n = from; n < from + perAgent; n++) {
    for (let a = 0; a < agents; a++) {
      bus.publish({ type: 'fleet.note', topic: 'agents', agent: `agent-${a}`, data: { n, sent: performance.now(), ...(pad ? { pad } : {}) } });
      if (++k % batch === 0) await tick();
    }
  }
}

/** Per agent, the `n`s a client got, in arrival order. */
function perAgent(events: StreamEvent[]): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const e of events) m.set(e.agent!, [...(m.get(e.agent!) ?? []), (e.data as { n: number }).n]);
  return m;
}
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('streams over real sockets (issue 10 §4)', () => {
  let m: Running;
  beforeAll(async () => void (m = await start()));
  afterAll(() => m.app.close());

  it('50 agents x 100 events to 20 subscribers (SSE and WebSocket, some per agent): none lost, per-agent order kept, no cross-contamination', async () => {
    const clients: { c: StreamClient; agent?: string }[] = [];
    for (let i = 0; i < 20; i++) {
      const connect = i % 2 ? wsClient : sseClient;
      // 0-7 everything, 8-13 one agent on /agents/stream, 14-19 one agent on /events
      const agent = i >= 8 ? `agent-${(i * 7) % 50}` : undefined;
      const url = i < 8 ? `${m.base}/events` : i < 14 ? `${m.base}/agents/stream?agent=${agent}` : `${m.base}/events?agent=${agent}`;
      clients.push({ c: connect(url, bearer(m.viewer)), ...(agent ? { agent } : {}) });
    }
    expect(await Promise.all(clients.map(({ c }) => c.status))).toEqual(clients.map(({ c }) => (c.kind === 'ws' ? 101 : 200)));
    await eventually(async () => (m.bus.stats().subscribers === 20 ? true : undefined), 10_000, 20);
    const before = m.bus.stats().lastSeq;

    await publishFleet(m.bus, 50, 100);

    for (const { c, agent } of clients) await eventually(async () => (sequenced(c).length === (agent ? 100 : 5000) ? true : undefined), 30_000, 20);
    for (const { c, agent } of clients) {
      const evs = sequenced(c);
      const seqs = evs.map((e) => e.seq);
      expect(new Set(seqs).size, `${c.kind} ${agent}: duplicates`).toBe(seqs.length);
      expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), `${c.kind}: seq order`).toBe(true);
      expect(seqs.every((s) => s > before)).toBe(true);
      const byAgent = perAgent(evs);
      if (agent) expect([...byAgent.keys()], `${c.kind} ${agent}: only its agent`).toEqual([agent]);
      else expect(byAgent.size).toBe(50);
      for (const ns of byAgent.values()) expect(ns).toEqual(range(0, 100));
    }
    for (const { c } of clients) c.close();
    await eventually(async () => (m.bus.stats().subscribers === 0 ? true : undefined), 10_000, 20);
  });

  for (const kind of ['sse', 'ws'] as const) {
    it(`a ${kind} subscriber that disconnects midway and resumes (${kind === 'sse' ? 'Last-Event-ID' : '?since='}) misses nothing`, async () => {
      const first = kind === 'sse' ? sseClient(`${m.base}/agents/stream`, bearer(m.viewer)) : wsClient(`${m.base}/agents/stream`, bearer(m.viewer));
      await first.status;
      await eventually(async () => (m.bus.stats().subscribers === 1 ? true : undefined), 10_000, 20);
      const from = m.bus.stats().lastSeq;
      await publishFleet(m.bus, 10, 20);
      await eventually(async () => (sequenced(first).length === 200 ? true : undefined), 10_000, 20);
      first.close();
      await eventually(async () => (m.bus.stats().subscribers === 0 ? true : undefined), 10_000, 20);
      // published while nobody listens
      await publishFleet(m.bus, 10, 30, 20);
      const last = first.lastSeq();
      const second =
        kind === 'sse'
          ? sseClient(`${m.base}/agents/stream`, { ...bearer(m.viewer), 'last-event-id': String(last) })
          : wsClient(`${m.base}/agents/stream?since=${last}`, bearer(m.viewer));
      await second.status;
      await publishFleet(m.bus, 10, 10, 50);
      await eventually(async () => (sequenced(second).length === 400 ? true : undefined), 10_000, 20);
      second.close();
      const all = [...sequenced(first), ...sequenced(second)];
      expect(all.map((e) => e.seq)).toEqual(range(from + 1, from + 601));
      for (const ns of perAgent(all).values()) expect(ns).toEqual(range(0, 60));
      expect(second.events.some((e) => e.type === 'stream.gap')).toBe(false);
    });
  }

  it('tasks/stream/{id} carries only that task; metrics/stream only snapshots', async () => {
    const task = sseClient(`${m.base}/tasks/stream/t-1`, bearer(m.viewer));
    const metrics = wsClient(`${m.base}/metrics/stream`, bearer(m.viewer));
    await Promise.all([task.status, metrics.status]);
    await eventually(async () => (m.bus.stats().subscribers === 2 ? true : undefined), 10_000, 20);
    for (const id of ['t-1', 't-2', 't-1']) m.bus.publish({ type: 'task.running', topic: 'tasks', task_id: id, agent: 'agent-1', data: {} });
    m.bus.publish({ type: 'fleet.note', topic: 'agents', agent: 'agent-1', data: {} });
    startMetricsProducer(m.bus, { intervalMs: 3_600_000 }).tick();
    await eventually(async () => (task.events.length === 2 && metrics.events.length === 1 ? true : undefined), 10_000, 20);
    expect(task.events.map((e) => e.task_id)).toEqual(['t-1', 't-1']);
    expect(metrics.events[0]).toMatchObject({ type: 'metrics.snapshot', topic: 'metrics', data: { streams: { subscribers: 2 } } });
    task.close();
    metrics.close();
  });

  it('refuses a missing or bad token (SSE 401, WebSocket 401 on upgrade); a viewer token is enough, by header or ?token=; the token never reaches a log line', async () => {
    const url = `${m.base}/events`;
    for (const headers of [{}, bearer('not-a-token'), bearer(`${m.viewer}x`)]) {
      const s = sseClient(url, headers);
      const w = wsClient(url, headers);
      expect([await s.status, await w.status]).toEqual([401, 401]);
    }
    expect(await sseClient(`${url}?token=bogus`).status).toBe(401);
    expect(await wsClient(`${url}?token=bogus`).status).toBe(401);
    const ok = [sseClient(url, bearer(m.viewer)), wsClient(url, bearer(m.viewer)), sseClient(`${url}?token=${m.viewer}`), wsClient(`${url}?agent=agent-1&token=${m.viewer}`)];
    expect(await Promise.all(ok.map((c) => c.status))).toEqual([200, 101, 200, 101]);
    // ?token= is for the stream routes only: an ordinary route still wants the header
    const plain = await fetch(`${m.base}/openapi.json?token=${m.viewer}`);
    expect(plain.status).toBe(401);
    // a bad filter or resume point is a plain 400 on both transports, before any upgrade
    expect(await sseClient(`${m.base}/agents/stream?agent=-bad-`, bearer(m.viewer)).status).toBe(400);
    expect(await wsClient(`${m.base}/agents/stream?agent=-bad-`, bearer(m.viewer)).status).toBe(400);
    expect(await sseClient(`${m.base}/events`, { ...bearer(m.viewer), 'last-event-id': 'abc' }).status).toBe(400);
    expect(await wsClient(`${m.base}/events?since=-1`, bearer(m.viewer)).status).toBe(400);
    for (const c of ok) c.close();
    await eventually(async () => (m.logs.some((l) => l.includes('token=[redacted]')) ? true : undefined), 5_000, 20);
    const secret = m.viewer.split('.')[2]!;
    expect(m.logs.filter((l) => l.includes(secret) || l.includes('bogus'))).toEqual([]);
  });
});

describe('slow consumers and shutdown (issue 10 §4)', () => {
  it('a stalled SSE and a stalled WebSocket subscriber are cut off (SSE stream.overflow, WebSocket 4008) while the bus stays within its budgets', async () => {
    const budget = 256 * 1024;
    const m = await start({ subscriberBufferBytes: budget, replayBytes: 8 * 1024 * 1024 });
    try {
      const stalledSse = sseClient(`${m.base}/events`, bearer(m.viewer));
      const stalledWs = wsClient(`${m.base}/events`, bearer(m.viewer));
      const healthy = wsClient(`${m.base}/events`, bearer(m.viewer));
      await Promise.all([stalledSse.status, stalledWs.status, healthy.status]);
      await eventually(async () => (m.bus.stats().subscribers === 3 ? true : undefined), 10_000, 20);
      stalledSse.pause();
      stalledWs.pause();
      const subs = m.bus.subscriptions();
      const pad = 'x'.repeat(4096);
      let peakTotal = 0;
      let published = 0;
      // publish until both stalled ones are cut off (bounded: 20,000 events of ~4 KiB)
      while (m.bus.stats().overflows < 2 && published < 20_000) {
        await publishFleet(m.bus, 10, 5, published, 25, pad);
        published += 50;
        peakTotal = Math.max(peakTotal, m.bus.stats().bufferedBytes);
      }
      const st = m.bus.stats();
      expect(st.overflows).toBe(2);
      expect(st.subscribers).toBe(1);
      expect(st.replayBytes).toBeLessThanOrEqual(8 * 1024 * 1024);
      const frame = 4096 + 512;
      for (const s of subs) expect(s.peakBufferedBytes).toBeLessThanOrEqual(budget + frame);
      expect(peakTotal).toBeLessThanOrEqual(3 * (budget + frame));

      stalledSse.resume();
      stalledWs.resume();
      expect(await stalledWs.ended).toBe(WS_CLOSE.OVERFLOW);
      expect(await stalledSse.ended).toBe(0);
      for (const c of [stalledSse, stalledWs]) {
        const last = c.events.at(-1)!;
        expect(last).toMatchObject({ seq: 0, type: 'stream.overflow', data: { limit_bytes: budget } });
        const seqs = sequenced(c).map((e) => e.seq);
        // what it got is a gap-free prefix, and resume_after names its end
        expect(seqs).toEqual(range(seqs[0]!, seqs[0]! + seqs.length));
        expect((last.data as { resume_after: number }).resume_after).toBe(seqs.at(-1));
      }
      await eventually(async () => (sequenced(healthy).length === published ? true : undefined), 30_000, 20);
      healthy.close();
    } finally {
      await m.app.close();
    }
  });

  it('resuming behind a backlog bigger than the budget (2,000 x 1 KiB, budget 64 KiB) delivers all of it, SSE and WebSocket, without a cut-off', async () => {
    const budget = 64 * 1024;
    const m = await start({ subscriberBufferBytes: budget });
    try {
      await publishFleet(m.bus, 20, 100, 0, 250, 'x'.repeat(1024));
      const sse = sseClient(`${m.base}/events`, { ...bearer(m.viewer), 'last-event-id': '0' });
      const ws = wsClient(`${m.base}/events?since=0`, bearer(m.viewer));
      await Promise.all([sse.status, ws.status]);
      const subs = m.bus.subscriptions();
      await publishFleet(m.bus, 20, 10, 100);
      for (const c of [sse, ws]) await eventually(async () => (sequenced(c).length === 2200 ? true : undefined), 30_000, 20);
      for (const c of [sse, ws]) expect(sequenced(c).map((e) => e.seq)).toEqual(range(1, 2201));
      expect(m.bus.overflows).toBe(0);
      for (const s of subs) expect(s.peakBufferedBytes).toBeLessThanOrEqual(budget);
      sse.close();
      ws.close();
    } finally {
      await m.app.close();
    }
  });

  it('an idle SSE stream gets heartbeat comments; closing the manager ends live streams (SSE stream.closing, WebSocket 1001)', async () => {
    const m = await start({}, 20);
    const sse = sseClient(`${m.base}/events`, bearer(m.viewer));
    const ws = wsClient(`${m.base}/events`, bearer(m.viewer));
    await Promise.all([sse.status, ws.status]);
    await eventually(async () => (sse.comments.filter((c) => c === 'heartbeat').length >= 2 ? true : undefined), 10_000, 10);
    await m.app.close();
    expect(await ws.ended).toBe(WS_CLOSE.GOING_AWAY);
    expect(await sse.ended).toBe(0);
    expect(sse.events.at(-1)).toMatchObject({ type: 'stream.closing' });
  });
});
