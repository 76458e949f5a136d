// What every view shares: the htm binding, error text, the one-word state of an agent, formats.
import { h } from 'preact';
import htm from 'htm';
import { ApiError } from './api.js';

export const html = htm.bind(h);

/** An error as one line: `CODE: message (hint)` for the manager's errors. */
export const errorText = (e) => (e instanceof ApiError ? `${e.code}: ${e.message}${e.hint ? ` (${e.hint})` : ''}` : String(e?.message ?? e));
/** Bytes as MiB with one decimal, or – when unknown. */
export const mib = (bytes) => (bytes ? (bytes / 1048576).toFixed(1) : '–');
export const pct = (x) => (x === undefined ? '–' : x.toFixed(1));
/** An ISO time as the local time of day (HH:MM:SS), or the date too when not today. */
export function when(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso ?? '–';
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

/** An agent's state in one word: stopped (no running container), healthy or unhealthy. */
export function stateOf(a) {
  if (a.container !== 'running') return 'stopped';
  return a.health === 'healthy' ? 'healthy' : 'unhealthy';
}

/** A stream event as one human line: `fleet.agent start: started`, `supervisor.restarted: 3 failed checks`... */
export function eventLine(ev) {
  const d = ev.data ?? {};
  if (ev.type.startsWith('fleet.')) {
    const what = d.kind === 'action' ? `${d.action ?? ''}${d.replica ? ` #${d.replica}` : ''} ${d.phase}` : d.phase;
    return `${ev.type} ${what}${d.outcome ? `: ${d.outcome}` : ''}${d.error ? ` (${d.error.message})` : d.message ? ` (${d.message})` : ''}`;
  }
  if (ev.type.startsWith('supervisor.')) return `${ev.type}${d.reason ? `: ${d.reason}` : ''}`;
  if (ev.type.startsWith('task.')) return `${ev.type} ${ev.task_id ?? ''}${d.agent ? ` on ${d.agent}` : ''}${d.error ? `: ${d.error}` : ''}`;
  return ev.type;
}
