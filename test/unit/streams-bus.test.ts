import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/wait.js';
import { ManualClock } from '../../src/clock.js';
import { EventBus, fleetStreamEvent, startMetricsProducer, supervisorStreamEvent, type BusEntry, type CloseReason, type StreamEvent, type SubscriberSink } from '../../src/server/events-bus.js';

/** A sink that keeps what it got; `held` plays the transport's unsent bytes. */
function memorySink() {
  const got: StreamEvent[] = [];
  const closes: { reason: CloseReason; final: StreamEvent }[] = [];
  let held = 0;
  const sink: SubscriberSink & { got: StreamEvent[]; closes: typeof closes; hold: (n: number) => void } = {
    got,
    closes,
    hold: (n) => void (held = n),
    send: (e: BusEntry) => void got.push(JSON.parse(e.json) as StreamEvent),
    bufferedBytes: () => held,
    close: (reason, final) => void closes.push({ reason, final: JSON.parse(final.json) as StreamEvent }),
  };
  return sink;
}

const agentEvent = (agent: string, n: number) => ({ type: 'fleet.note', topic: 'agents' as const, agent, data: { n } });

describe('event bus (issue 10 §4)', () => {
  it('numbers events 1, 2, 3... and stamps them with the clock', () => {
    const bus = new EventBus({ clock: new ManualClock(Date.UTC(2025, 0, 1)) });
    const a = bus.publish(agentEvent('a', 0));
    const b = bus.publish({ type: 'task.queued', topic: 'tasks', task_id: 't1', data: {} });
    expect([a.seq, b.seq]).toEqual([1, 2]);
    expect(a.ts).toBe('2025-01-01T00:00:00.000Z');
    expect(b).toMatchObject({ topic: 'tasks', task_id: 't1', type: 'task.queued' });
    expect(bus.stats()).toMatchObject({ lastSeq: 2, firstSeq: 1, replayEvents: 2 });
  });

  it('delivers by topic, agent and task; a subscriber to one agent never sees another', () => {
    const bus = new EventBus();
    const all = memorySink();
    const agentA = memorySink();
    const task1 = memorySink();
    const metrics = memorySink();
    bus.subscribe({}, all);
    bus.subscribe({ topic: 'agents', agent: 'a' }, agentA);
    bus.subscribe({ topic: 'tasks', taskId: 't1' }, task1);
    bus.subscribe({ topic: 'metrics' }, metrics);
    bus.publish(agentEvent('a', 1));
    bus.publish(agentEvent('b', 1));
    bus.publish({ type: 'task.running', topic: 'tasks', task_id: 't1', agent: 'a', data: {} });
    bus.publish({ type: 'task.running', topic: 'tasks', task_id: 't2', agent: 'a', data: {} });
    startMetricsProducer(bus, { intervalMs: 3_600_000, snapshot: () => ({ x: 1 }) }).tick();
    expect(all.got.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(agentA.got.map((e) => [e.seq, e.agent])).toEqual([[1, 'a']]);
    expect(task1.got.map((e) => [e.seq, e.task_id])).toEqual([[3, 't1']]);
    expect(metrics.got.map((e) => [e.type, e.data])).toEqual([['metrics.snapshot', { x: 1 }]]);
  });

  it('replays what a client missed after `since`, then continues live, in one order', () => {
    const bus = new EventBus();
    for (let n = 0; n < 10; n++) bus.publish(agentEvent(n % 2 ? 'a' : 'b', n));
    const s = memorySink();
    bus.subscribe({ agent: 'a' }, s, 4);
    bus.publish(agentEvent('a', 10));
    expect(s.got.map((e) => e.seq)).toEqual([6, 8, 10, 11]);
    const none = memorySink();
    bus.subscribe({}, none, 11);
    expect(none.got).toEqual([]);
  });

  it('sends a stream.gap first when what was missed fell out of the buffer, or when since is from another bus', () => {
    const bus = new EventBus({ replayEvents: 5 });
    for (let n = 0; n < 12; n++) bus.publish(agentEvent('a', n));
    expect(bus.stats()).toMatchObject({ firstSeq: 8, lastSeq: 12, replayEvents: 5 });
    const late = memorySink();
    bus.subscribe({}, late, 3);
    expect(late.got[0]).toMatchObject({ seq: 0, type: 'stream.gap', data: { reason: 'evicted', from: 4, to: 7 } });
    expect(late.got.slice(1).map((e) => e.seq)).toEqual([8, 9, 10, 11, 12]);
    const exact = memorySink();
    bus.subscribe({}, exact, 7);
    expect(exact.got.map((e) => e.seq)).toEqual([8, 9, 10, 11, 12]);
    const future = memorySink();
    bus.subscribe({}, future, 99);
    expect(future.got).toHaveLength(1);
    expect(future.got[0]).toMatchObject({ type: 'stream.gap', data: { reason: 'reset', last_seq: 12 } });
  });

  it('a resuming subscriber catches up only as fast as its sink drains, is not cut off meanwhile, then goes live', async () => {
    const bus = new EventBus({ subscriberBufferBytes: 1000 });
    for (let n = 0; n < 10; n++) bus.publish(agentEvent('a', n));
    const s = memorySink();
    s.hold(10_000);
    const sub = bus.subscribe({}, s, 0);
    bus.publish(agentEvent('a', 10));
    expect(s.got).toEqual([]);
    expect(sub.closed).toBe(false);
    s.hold(0);
    await eventually(async () => (s.got.length === 11 ? true : undefined), 5_000, 5);
    bus.publish(agentEvent('a', 11));
    expect(s.got.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(sub.cursor).toBeUndefined();
    expect(bus.overflows).toBe(0);
  });

  it('events evicted before a catching-up cursor reached them are reported as a gap', async () => {
    const bus = new EventBus({ replayEvents: 5 });
    for (let n = 0; n < 5; n++) bus.publish(agentEvent('a', n));
    const s = memorySink();
    s.hold(Number.MAX_SAFE_INTEGER);
    bus.subscribe({}, s, 0);
    for (let n = 5; n < 10; n++) bus.publish(agentEvent('a', n));
    s.hold(0);
    await eventually(async () => (s.got.length === 6 ? true : undefined), 5_000, 5);
    expect(s.got[0]).toMatchObject({ type: 'stream.gap', data: { reason: 'evicted', from: 1, to: 5 } });
    expect(s.got.slice(1).map((e) => e.seq)).toEqual([6, 7, 8, 9, 10]);
  });

  it('bounds the replay buffer by bytes too', () => {
    const bus = new EventBus({ replayBytes: 10_000 });
    for (let n = 0; n < 100; n++) bus.publish({ ...agentEvent('a', n), data: { pad: 'x'.repeat(900) } });
    const st = bus.stats();
    expect(st.replayBytes).toBeLessThanOrEqual(10_000);
    expect(st.replayEvents).toBeLessThan(12);
    expect(st.firstSeq + st.replayEvents - 1).toBe(100);
  });

  it('cuts off a subscriber holding more unsent bytes than its budget, and stops sending to it', () => {
    const bus = new EventBus({ subscriberBufferBytes: 1000 });
    const slow = memorySink();
    const fast = memorySink();
    const sub = bus.subscribe({}, slow);
    bus.subscribe({}, fast);
    bus.publish(agentEvent('a', 1));
    slow.hold(1001);
    bus.publish(agentEvent('a', 2));
    bus.publish(agentEvent('a', 3));
    expect(sub.closed).toBe(true);
    expect(slow.got.map((e) => e.seq)).toEqual([1, 2]);
    expect(slow.closes).toHaveLength(1);
    expect(slow.closes[0]).toMatchObject({ reason: 'overflow', final: { type: 'stream.overflow', data: { limit_bytes: 1000, resume_after: 2 } } });
    expect(fast.got.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(bus.stats()).toMatchObject({ subscribers: 1, overflows: 1 });
  });

  it('drops a subscriber whose transport throws; the others and the publisher go on', () => {
    const bus = new EventBus();
    const ok = memorySink();
    const broken = bus.subscribe({}, { ...memorySink(), send: () => { throw new Error('write after end'); } });
    bus.subscribe({}, ok);
    expect(() => bus.publish(agentEvent('a', 1))).not.toThrow();
    bus.publish(agentEvent('a', 2));
    expect(broken.closed).toBe(true);
    expect(ok.got.map((e) => e.seq)).toEqual([1, 2]);
    expect(bus.recent(1).map((e) => e.seq)).toEqual([2]);
    expect(bus.lastSeq).toBe(2);
  });

  it('closeAll tells every subscriber the manager is closing', () => {
    const bus = new EventBus();
    const s = memorySink();
    bus.subscribe({ topic: 'metrics' }, s);
    bus.closeAll();
    expect(s.closes.map((c) => [c.reason, c.final.type])).toEqual([['shutdown', 'stream.closing']]);
    expect(bus.stats().subscribers).toBe(0);
  });

  it('refuses malformed events without storing them', () => {
    const bus = new EventBus();
    const bad = [
      { type: 'Nope', topic: 'agents', data: {} },
      { type: 'stream.gap', topic: 'agents', data: {} },
      { type: 'fleet.note', topic: 'nowhere', data: {} },
      { type: 'fleet.note', topic: 'agents', agent: 'a b\n', data: {} },
      { type: 'task.queued', topic: 'tasks', data: {} },
    ];
    for (const b of bad) expect(() => bus.publish(b as never), JSON.stringify(b)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    expect(bus.stats().lastSeq).toBe(0);
    expect(() => new EventBus({ replayEvents: 0 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  it('maps fleet and supervisor events to the agents topic', () => {
    expect(fleetStreamEvent({ v: 1, seq: 1, at: 'x', kind: 'action', agent: 'a', phase: 'begin' })).toMatchObject({ type: 'fleet.action', topic: 'agents', agent: 'a' });
    expect(supervisorStreamEvent({ type: 'replica_out', agent: 'a', replica: 'r', at: 1, reason: 'x' })).toMatchObject({ type: 'supervisor.replica_out', topic: 'agents', agent: 'a' });
  });
});
