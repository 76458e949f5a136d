import { EventEmitter } from 'node:events';
import type { FleetEvent } from '../fleet/events.js';

/** What the manager's event bus carries: the fleet's typed events for now (supervisor and task events join later, each with its own `kind`). */
export type ManagerEvent = FleetEvent;

/** One event on the bus with the bus's own sequence number (1, 2, 3... for the manager's life). */
export interface BusEntry<E = ManagerEvent> {
  id: number;
  event: E;
}

/**
 * The manager's event bus, for the streams that come later (SSE/WS `/events`, `/agents/stream`):
 * an EventEmitter (`'event'`, one BusEntry per call) plus a bounded ring buffer of the last
 * `capacity` entries (default 1000), so a client that reconnects with Last-Event-ID gets what it
 * missed while it is still buffered. Listeners run synchronously in publish order; a listener that
 * throws breaks nothing: its error is swallowed (a broken stream must not stop the fleet).
 */
export class EventBus<E = ManagerEvent> {
  private readonly emitter = new EventEmitter();
  private readonly ring: (BusEntry<E> | undefined)[];
  private next = 1;

  /** @param capacity entries kept for replay (at least 1). */
  constructor(readonly capacity = 1000) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`event bus capacity must be a whole number >= 1, got ${capacity}`);
    this.ring = new Array<BusEntry<E> | undefined>(capacity);
    // streams subscribe one listener per client: no arbitrary cap
    this.emitter.setMaxListeners(0);
  }

  /** Number the event, keep it in the ring, and hand it to every subscriber. Returns its entry. */
  publish(event: E): BusEntry<E> {
    const entry = { id: this.next++, event };
    this.ring[(entry.id - 1) % this.capacity] = entry;
    for (const l of this.emitter.listeners('event')) {
      try {
        (l as (e: BusEntry<E>) => void)(entry);
      } catch {
        // a subscriber's failure is its own (a closed stream); the bus and the fleet go on
      }
    }
    return entry;
  }

  /** Call `fn` for every entry published from now on; returns the unsubscribe function. */
  subscribe(fn: (entry: BusEntry<E>) => void): () => void {
    this.emitter.on('event', fn);
    return () => this.emitter.off('event', fn);
  }

  /** Buffered entries with id > `afterId` (default: all buffered), oldest first. */
  recent(afterId = 0): BusEntry<E>[] {
    const out: BusEntry<E>[] = [];
    const first = Math.max(afterId + 1, this.next - this.capacity, 1);
    for (let id = first; id < this.next; id++) out.push(this.ring[(id - 1) % this.capacity]!);
    return out;
  }

  /** The id the next event will get minus one: the newest id published (0 before any). */
  get lastId(): number {
    return this.next - 1;
  }

  /** Drop every subscriber (the manager is closing). */
  close(): void {
    this.emitter.removeAllListeners();
  }
}
