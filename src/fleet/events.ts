import { isoNow, systemClock, type Clock } from '../clock.js';

/**
 * What the fleet does, as typed events (the CLI's progress output is one consumer; the manager
 * service's live streams are the next). The shape is stable and append-only: new optional fields
 * may be added, existing ones never change meaning. `seq` orders the events of one emitter (one
 * command or run) without relying on clocks; `at` comes from the injected clock.
 *
 * - kind `action`: one step of a plan (src/fleet/plan.ts) began (`phase: 'begin'`) or ended
 *   (`phase: 'end'`, with `outcome` and, when failed, `error`).
 * - kind `agent`: an agent reached its result for this command (`outcome`: started, recreated,
 *   restarted, unchanged, stopped, failed...).
 * - kind `note`: a one-line progress message (pull, bundle, build, listing changes); `phase:
 *   'notice'` ones are shown even in quiet output (e.g. the offline base image fallback).
 */
export interface FleetEvent {
  /** Schema version of this shape. */
  v: 1;
  /** 1, 2, 3... per emitter, in emission order. */
  seq: number;
  /** ISO-8601 time (UTC, ms) from the injected clock. */
  at: string;
  kind: 'action' | 'agent' | 'note';
  /** Agent slug (or swarm service name), when the event concerns one. */
  agent?: string;
  /** Replica index (0 = the primary container), for container actions. */
  replica?: number;
  /** The plan action kind (kind `action`). */
  action?: ActionKind;
  /** `begin` / `end` for actions; for notes the free phase name (pull, bundle, build, notice...). */
  phase: string;
  /** ok / failed for actions; the agent's outcome for kind `agent`. */
  outcome?: string;
  /** The AppError code and message of a failure. */
  error?: { code: string; message: string };
  /** Human text (a URL, a notice). Never a secret. */
  message?: string;
}

/** The action kinds of a plan, in the words of src/fleet/plan.ts. */
export type ActionKind =
  | 'build-image'
  | 'create'
  | 'recreate'
  | 'start'
  | 'keep'
  | 'stop'
  | 'remove'
  | 'scale'
  | 'wait-healthy'
  | 'update-record'
  | 'start-router'
  | 'reload-router'
  | 'remove-router'
  | 'blocked';

/** A FleetEvent before the emitter numbers and stamps it. */
export type FleetEventInput = Omit<FleetEvent, 'v' | 'seq' | 'at'>;

/** A sink that numbers and stamps events: `emit({ kind, phase, ... })`. */
export type Emit = (ev: FleetEventInput) => void;

/**
 * An emitter for `sink` (or a no-op without one): numbers events from 1 and stamps them with the
 * clock's time.
 */
export function eventEmitter(sink: ((ev: FleetEvent) => void) | undefined, clock: Clock = systemClock): Emit {
  let seq = 0;
  if (!sink) return () => undefined;
  return (ev) => sink({ v: 1, seq: ++seq, at: isoNow(clock), ...ev });
}
