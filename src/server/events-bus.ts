/**
 * The manager's event bus (issue 10 §4): every event the manager streams (fleet actions,
 * supervisor decisions, task steps, metrics snapshots) is published here once, numbered with a
 * global sequence number, kept in a bounded replay buffer, and handed to the subscribers whose
 * filter it matches. Transports (SSE, WebSocket: streams.ts) are sinks; the bus never blocks on
 * one: a sink whose unsent bytes exceed its budget is cut off (`overflow`) instead of growing
 * memory.
 *
 * Ordering: `publish` is synchronous and numbers events 1, 2, 3... in call order, and each
 * subscriber receives its events in that order (replay first, then live), so the order per agent
 * and per task is the publish order. Numbers restart at 1 with each bus (each manager start); a
 * client that resumes with a number this bus has not reached gets a `stream.gap` event with
 * reason `reset`.
 */
import { Type, type Static } from 'typebox';
import { isoNow, systemClock, type Clock } from '../clock.js';
import { AppError } from '../errors.js';
import type { FleetEvent } from '../fleet/events.js';
import type { SupervisorEvent } from '../supervisor/prober.js';
import type { TaskEvent } from '../tasks/dispatcher.js';

/** What a stream is about: agent status and fleet actions, one task's steps, metrics snapshots. */
export const STREAM_TOPICS = ['agents', 'tasks', 'metrics'] as const;
export type StreamTopic = (typeof STREAM_TOPICS)[number];

/**
 * The envelope of every streamed event (SSE `data:` and WebSocket text frames carry it as JSON):
 * - `seq`: the bus-wide sequence number (1, 2, 3...; SSE `id:`); 0 on control events
 *   (`stream.*`), which are not part of the sequence and never replayed;
 * - `type`: dotted, `<source>.<what>`: `fleet.action|agent|note` (FleetEvent kinds),
 *   `supervisor.<SupervisorEvent type>`, `task.<status or step>`, `metrics.snapshot`, and the
 *   control events `stream.gap` (what you missed fell out of the replay buffer, or the manager
 *   restarted: `data: {reason: 'evicted'|'reset', from, to}`), `stream.overflow` (this subscriber
 *   was too slow and is closed: `data: {limit_bytes, resume_after}`), `stream.closing` (the
 *   manager shuts down);
 * - `ts`: ISO-8601 (UTC, ms) when the bus accepted the event;
 * - `topic`: agents | tasks | metrics (control events: the subscriber's own topic or `agents`);
 * - `agent`: the agent slug, when the event concerns one; `task_id`: the task, for task events;
 * - `data`: the source's own record (a FleetEvent, a SupervisorEvent, a task view, a snapshot).
 */
export const StreamEventSchema = Type.Object(
  {
    seq: Type.Integer({ minimum: 0 }),
    type: Type.String({ pattern: '^[a-z][a-z0-9_]*(\\.[a-z0-9_]+)+$' }),
    ts: Type.String({ format: 'date-time' }),
    topic: Type.Enum([...STREAM_TOPICS]),
    agent: Type.Optional(Type.String()),
    task_id: Type.Optional(Type.String()),
    data: Type.Unknown(),
  },
  { additionalProperties: false, title: 'StreamEvent' },
);
export type StreamEvent = Static<typeof StreamEventSchema>;

/** What a publisher hands in: the bus adds `seq` and `ts`. */
export interface StreamEventInput {
  type: string;
  topic: StreamTopic;
  agent?: string | undefined;
  task_id?: string | undefined;
  data: unknown;
}

/** One event as stored and sent: the routing keys plus its JSON, serialised once for all subscribers. */
export interface BusEntry {
  seq: number;
  topic: StreamTopic;
  type: string;
  agent: string | undefined;
  taskId: string | undefined;
  /** The envelope as JSON (UTF-16 length ~ bytes for the budgets). */
  json: string;
}

/** Which events a subscriber gets; absent fields match everything. */
export interface StreamFilter {
  topic?: StreamTopic | undefined;
  /** Agent slug: only events about this agent (events without an agent are excluded). */
  agent?: string | undefined;
  /** Only this task's events. */
  taskId?: string | undefined;
}

/** Why the bus closes a subscriber: too slow for its budget, or the manager shuts down. */
export type CloseReason = 'overflow' | 'shutdown';

/** A transport endpoint (an SSE response, a WebSocket). */
export interface SubscriberSink {
  /** Write one entry (a control entry has seq 0). Must not throw. */
  send(entry: BusEntry): void;
  /** Bytes written to this sink and still held in the process (not yet handed to the kernel). */
  bufferedBytes(): number;
  /** End the transport for `reason`, telling the client in the transport's words (`final`: the control entry to send last). */
  close(reason: CloseReason, final: BusEntry): void;
}

export interface BusOptions {
  /** Replay buffer: at most this many events (default 10,000). */
  replayEvents?: number;
  /** Replay buffer: at most this many bytes of event JSON (default 16 MiB). */
  replayBytes?: number;
  /** Per live subscriber: unsent bytes held in the process before it is cut off (default 2 MiB); catching up, it holds at most min(64 KiB, half this). */
  subscriberBufferBytes?: number;
  /** Stamps `ts` (default: the system clock). */
  clock?: Clock;
}

const TYPE_RE = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$/;
const KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** A live subscription; `close()` unsubscribes (idempotent). */
export class Subscription {
  /** The most bytes this subscriber ever held unsent (for the bounded-memory checks). */
  peakBufferedBytes = 0;
  /** Seq of the last event handed to the sink (0: none yet). */
  lastSeq = 0;
  /** While catching up from the replay buffer: the next seq to look at; undefined once live. */
  cursor: number | undefined;
  closed = false;
  constructor(
    readonly filter: StreamFilter,
    private readonly sink: SubscriberSink,
    private readonly bus: EventBus,
  ) {}

  /** Bytes this subscriber holds unsent right now. */
  bufferedBytes(): number {
    return this.sink.bufferedBytes();
  }

  /** Hand `entry` to the sink; cut the subscriber off when it now holds more than `limit` bytes. */
  deliver(entry: BusEntry, limit: number): void {
    if (this.closed) return;
    try {
      this.sink.send(entry);
    } catch {
      // a broken transport is this subscriber's problem: drop it, the bus and the fleet go on
      this.close();
      return;
    }
    if (entry.seq) this.lastSeq = entry.seq;
    const held = this.sink.bufferedBytes();
    if (held > this.peakBufferedBytes) this.peakBufferedBytes = held;
    if (held > limit) this.end('overflow', { limit_bytes: limit, buffered_bytes: held, resume_after: this.lastSeq });
  }

  /** Close by the bus (overflow, shutdown): the sink tells the client, then the subscription is gone. */
  end(reason: CloseReason, data: Record<string, unknown>): void {
    if (this.closed) return;
    this.close();
    if (reason === 'overflow') this.bus.overflows++;
    const type = reason === 'overflow' ? 'stream.overflow' : 'stream.closing';
    this.sink.close(reason, controlEntry(type, this.filter.topic ?? 'agents', data, this.bus.clock));
  }

  /** Unsubscribe (the client went away). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.bus.remove(this);
  }
}

function matches(f: StreamFilter, e: BusEntry): boolean {
  return (!f.topic || f.topic === e.topic) && (!f.agent || f.agent === e.agent) && (!f.taskId || f.taskId === e.taskId);
}

function controlEntry(type: string, topic: StreamTopic, data: unknown, clock: Clock): BusEntry {
  const json = JSON.stringify({ seq: 0, type, ts: isoNow(clock), topic, data });
  return { seq: 0, topic, type, agent: undefined, taskId: undefined, json };
}

/** Counters for /metrics, the metrics stream and the bounded-memory tests. */
export interface BusStats {
  /** Last seq assigned (0: nothing published yet). */
  lastSeq: number;
  /** Oldest seq still in the replay buffer (lastSeq + 1 when empty). */
  firstSeq: number;
  replayEvents: number;
  replayBytes: number;
  subscribers: number;
  /** Sum of the subscribers' unsent bytes now. */
  bufferedBytes: number;
  /** Subscribers cut off for being too slow, since the bus started. */
  overflows: number;
}

/**
 * The bus. `publish` numbers, stores and fans out; `subscribe` replays what a client missed
 * (`since`: the last seq it saw) and then streams live. See the module comment for ordering.
 */
export class EventBus {
  readonly clock: Clock;
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  readonly subscriberBufferBytes: number;
  private readonly subs = new Set<Subscription>();
  /** Replay ring: entries[head..] are live, seqs contiguous. */
  private entries: BusEntry[] = [];
  private head = 0;
  private bytes = 0;
  private seq = 0;
  /** Subscribers cut off for being too slow, since the bus started. */
  overflows = 0;

  constructor(opts: BusOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.maxEvents = positive(opts.replayEvents ?? 10_000, 'replayEvents');
    this.maxBytes = positive(opts.replayBytes ?? 16 * 1024 * 1024, 'replayBytes');
    this.subscriberBufferBytes = positive(opts.subscriberBufferBytes ?? 2 * 1024 * 1024, 'subscriberBufferBytes');
  }

  /**
   * Number, stamp, store and deliver one event; returns the stored envelope.
   * @throws AppError BAD_REQUEST when `type`, `topic`, `agent` or `task_id` is malformed (a
   *   publisher bug: nothing is stored or sent).
   */
  publish(input: StreamEventInput): StreamEvent {
    checkInput(input);
    const ev: StreamEvent = {
      seq: ++this.seq,
      type: input.type,
      ts: isoNow(this.clock),
      topic: input.topic,
      ...(input.agent !== undefined ? { agent: input.agent } : {}),
      ...(input.task_id !== undefined ? { task_id: input.task_id } : {}),
      data: input.data,
    };
    const entry: BusEntry = { seq: ev.seq, topic: ev.topic, type: ev.type, agent: ev.agent, taskId: ev.task_id, json: JSON.stringify(ev) };
    this.store(entry);
    // a subscriber still catching up gets this event from the replay buffer, in its turn
    for (const sub of this.subs) if (sub.cursor === undefined && matches(sub.filter, entry)) sub.deliver(entry, this.subscriberBufferBytes);
    return ev;
  }

  /**
   * Subscribe `sink` to the events matching `filter`. With `since` (the last seq the client
   * saw), the subscriber first catches up from the replay buffer: a cursor walks the retained
   * events after `since`, writing while the sink holds less than `catchUpLowWaterBytes` and
   * waiting (polling every few ms) while it holds more, so a long catch-up never holds more than
   * that in memory and is never cut off; once the cursor reaches the newest event the subscriber
   * is live and gets new events as they are published (then the byte budget applies). When
   * events after `since` were evicted before the cursor got to them (or `since` is beyond this
   * bus's last seq: the manager restarted), a `stream.gap` control entry says which. Catch-up and
   * live delivery are one ordered sequence.
   */
  subscribe(filter: StreamFilter, sink: SubscriberSink, since?: number): Subscription {
    const sub = new Subscription(filter, sink, this);
    this.subs.add(sub);
    if (since !== undefined && since > this.seq) {
      sub.deliver(controlEntry('stream.gap', filter.topic ?? 'agents', { reason: 'reset', from: since + 1, to: null, last_seq: this.seq }, this.clock), Infinity);
    } else if (since !== undefined && since < this.seq) {
      sub.cursor = since + 1;
      this.catchUp(sub);
    }
    return sub;
  }

  /** Walk `sub`'s cursor over the replay buffer (see subscribe); reschedules itself until live. */
  private catchUp(sub: Subscription): void {
    const lowWater = Math.min(64 * 1024, this.subscriberBufferBytes / 2);
    for (let scanned = 0; !sub.closed && sub.cursor !== undefined; scanned++) {
      if (sub.cursor > this.seq) {
        sub.cursor = undefined;
        return;
      }
      const first = this.firstSeq();
      if (sub.cursor < first) {
        sub.deliver(controlEntry('stream.gap', sub.filter.topic ?? 'agents', { reason: 'evicted', from: sub.cursor, to: first - 1 }, this.clock), Infinity);
        sub.cursor = first;
        continue;
      }
      const full = sub.bufferedBytes() >= lowWater;
      // yield now and then even when the sink is empty: a filtered subscriber may scan many events
      if (full || scanned >= 2000) {
        setTimeout(() => this.catchUp(sub), full ? 5 : 0).unref();
        return;
      }
      const e = this.entries[this.head + sub.cursor - first]!;
      sub.cursor++;
      if (matches(sub.filter, e)) sub.deliver(e, Infinity);
    }
  }

  /** Close every subscriber (the manager shuts down): SSE gets `stream.closing`, WebSocket 1001. */
  closeAll(): void {
    for (const sub of [...this.subs]) sub.end('shutdown', { last_seq: this.seq });
  }

  /** @internal used by Subscription. */
  remove(sub: Subscription): void {
    this.subs.delete(sub);
  }

  /** The newest seq published (0 before any). */
  get lastSeq(): number {
    return this.seq;
  }

  /** The retained events with seq > `since` (default: all retained), oldest first (for tests and diagnostics). */
  recent(since = 0): StreamEvent[] {
    const first = this.firstSeq();
    const out: StreamEvent[] = [];
    for (let i = this.head + Math.max(0, since + 1 - first); i < this.entries.length; i++) out.push(JSON.parse(this.entries[i]!.json) as StreamEvent);
    return out;
  }

  /** The live subscriptions (for tests and metrics). */
  subscriptions(): Subscription[] {
    return [...this.subs];
  }

  stats(): BusStats {
    let buffered = 0;
    for (const s of this.subs) buffered += s.bufferedBytes();
    return {
      lastSeq: this.seq,
      firstSeq: this.firstSeq(),
      replayEvents: this.entries.length - this.head,
      replayBytes: this.bytes,
      subscribers: this.subs.size,
      bufferedBytes: buffered,
      overflows: this.overflows,
    };
  }

  private firstSeq(): number {
    return this.entries.length > this.head ? this.entries[this.head]!.seq : this.seq + 1;
  }

  private store(entry: BusEntry): void {
    this.entries.push(entry);
    this.bytes += entry.json.length;
    while (this.entries.length - this.head > this.maxEvents || (this.bytes > this.maxBytes && this.entries.length - this.head > 1)) {
      this.bytes -= this.entries[this.head]!.json.length;
      this.entries[this.head++] = undefined as unknown as BusEntry;
    }
    // compact the ring now and then, so evicted slots do not pile up
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

function positive(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new AppError('CONFIG_INVALID', `event bus ${what} must be a positive integer, got ${n}`);
  return n;
}

function checkInput(input: StreamEventInput): void {
  const bad = (what: string) => new AppError('BAD_REQUEST', `cannot publish event: ${what}`, { hint: 'a bug in the publisher: please report it' });
  if (typeof input.type !== 'string' || !TYPE_RE.test(input.type) || input.type.startsWith('stream.')) throw bad(`type '${String(input.type)}' is not <source>.<what> (stream.* is reserved)`);
  if (!STREAM_TOPICS.includes(input.topic)) throw bad(`topic '${String(input.topic)}' is not one of ${STREAM_TOPICS.join(', ')}`);
  if (input.agent !== undefined && !KEY_RE.test(input.agent)) throw bad(`agent '${String(input.agent)}' is malformed`);
  if (input.task_id !== undefined && !KEY_RE.test(input.task_id)) throw bad(`task_id '${String(input.task_id)}' is malformed`);
  if (input.topic === 'tasks' && input.task_id === undefined) throw bad('a tasks event needs a task_id');
}

/** A fleet action/agent/note event as a stream event (topic agents, type `fleet.<kind>`). */
export function fleetStreamEvent(ev: FleetEvent): StreamEventInput {
  return { type: `fleet.${ev.kind}`, topic: 'agents', agent: ev.agent, data: ev };
}

/** A supervisor decision as a stream event (topic agents, type `supervisor.<type>`). */
export function supervisorStreamEvent(ev: SupervisorEvent): StreamEventInput {
  return { type: `supervisor.${ev.type}`, topic: 'agents', agent: ev.agent, data: ev };
}

/** A task's state change as a stream event (topic tasks, type `task.<status>`, the agent that runs it). */
export function taskStreamEvent(ev: TaskEvent): StreamEventInput {
  return { type: `task.${ev.status}`, topic: 'tasks', task_id: ev.task_id, agent: ev.agent, data: ev };
}

/**
 * Publish a `metrics.snapshot` every `intervalMs` (default 5000 ms) with what `snapshot()`
 * returns (default: process memory in bytes and the bus's own stats). Returns `stop()`; the timer
 * never keeps the process alive. A snapshot that throws is skipped.
 */
export function startMetricsProducer(bus: EventBus, opts: { intervalMs?: number; snapshot?: () => unknown } = {}): { stop: () => void; tick: () => void } {
  const snapshot =
    opts.snapshot ??
    (() => {
      const m = process.memoryUsage();
      return { process: { rss_bytes: m.rss, heap_used_bytes: m.heapUsed }, streams: bus.stats() };
    });
  const tick = () => {
    let data: unknown;
    try {
      data = snapshot();
    } catch {
      return;
    }
    bus.publish({ type: 'metrics.snapshot', topic: 'metrics', data });
  };
  const timer = setInterval(tick, positive(opts.intervalMs ?? 5000, 'metrics intervalMs'));
  timer.unref();
  return { stop: () => clearInterval(timer), tick };
}
