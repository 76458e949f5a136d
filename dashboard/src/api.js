// The manager's API as the page uses it. The token lives in this module's memory only: never in
// localStorage, sessionStorage, a cookie or any URL. Streams (the event stream, an agent's logs)
// are read with fetch and the Authorization header, not EventSource (which cannot send headers and
// would need the token in its URL); eventsource-parser reads the SSE frames.

import { createParser } from 'eventsource-parser';

let token = '';

/** Keep the token for later calls (memory only). */
export function setToken(t) {
  token = t;
}

export function hasToken() {
  return token !== '';
}

/** An API failure: `status` (HTTP), `code` and `message` from the manager's error body. */
export class ApiError extends Error {
  constructor(status, code, message, hint) {
    super(message);
    this.status = status;
    this.code = code;
    this.hint = hint;
  }
}

/**
 * Call `/api/v1<path>` with the bearer token. Resolves to the parsed JSON body of a 2xx answer.
 * @throws ApiError with the manager's code and message (or NETWORK when it cannot be reached).
 */
export async function api(method, path, body) {
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'NETWORK', 'the manager cannot be reached');
  }
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = {};
  }
  if (!res.ok) {
    const e = json.error ?? {};
    throw new ApiError(res.status, e.code ?? `HTTP_${res.status}`, e.message ?? `the manager answered ${res.status}`, e.hint);
  }
  return json;
}

/**
 * Follow the manager's event stream (SSE, `/api/v1/events`: agent status and fleet actions,
 * supervisor decisions, task steps and the periodic `metrics.snapshot`, on one connection so a
 * page holds few of the browser's six per host): `onEvent(envelope)` for every event
 * ({seq, type, ts, topic, agent?, task_id?, data}); `onState('live'|'reconnecting'|'closed')`.
 * Read with fetch and the bearer header; reconnects as EventSource does (WHATWG HTML §9.2: after
 * the stream's `retry:` delay, 2 s from the manager, with jitter here) and resumes with
 * `Last-Event-ID`; a 401/403 ends it ('closed'). Returns a function that closes the stream.
 */
export function followEvents(onEvent, onState) {
  const stop = new AbortController();
  let lastId = '';
  let retryMs = 2000;
  const parser = createParser({
    onEvent: (m) => {
      if (m.id) lastId = m.id;
      try {
        onEvent(JSON.parse(m.data));
      } catch {
        // a malformed frame is skipped; the next event brings the row up to date
      }
    },
    onRetry: (ms) => (retryMs = ms),
  });
  void (async () => {
    while (!stop.signal.aborted) {
      try {
        const headers = { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) };
        const res = await fetch('/api/v1/events', { headers, cache: 'no-store', signal: stop.signal });
        if (res.status === 401 || res.status === 403) {
          onState?.('closed');
          return;
        }
        if (res.ok && res.body) {
          onState?.('live');
          parser.reset();
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            parser.feed(value);
          }
        }
      } catch {
        // network error or cut stream: reconnect below, unless closed
      }
      if (stop.signal.aborted) return;
      onState?.('reconnecting');
      await new Promise((r) => setTimeout(r, retryMs * (0.75 + Math.random() * 0.5)));
    }
  })();
  return () => stop.abort();
}

/**
 * Read a streamed text answer of `/api/v1<path>` (e.g. `/agents/x/logs?follow=true`) with the
 * bearer header: `onText(chunk)` for each decoded piece as it arrives. Resolves when the manager
 * ends the stream (or `signal` aborts: then quietly).
 * @throws ApiError for an error answer (the manager's code and message) or NETWORK.
 */
export async function streamText(path, onText, signal) {
  let res;
  try {
    res = await fetch(`/api/v1${path}`, { headers: { authorization: `Bearer ${token}` }, cache: 'no-store', signal });
  } catch {
    if (signal?.aborted) return;
    throw new ApiError(0, 'NETWORK', 'the manager cannot be reached');
  }
  if (!res.ok) {
    let e = {};
    try {
      e = (await res.json()).error ?? {};
    } catch {
      // not the error shape
    }
    throw new ApiError(res.status, e.code ?? `HTTP_${res.status}`, e.message ?? `the manager answered ${res.status}`, e.hint);
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      onText(decoder.decode(value, { stream: true }));
    }
  } catch {
    if (!signal?.aborted) throw new ApiError(0, 'NETWORK', 'the stream was cut');
  }
}

/** What each scope may do (the manager's rule: viewer < operator < admin). */
const RANK = { viewer: 0, operator: 1, admin: 2 };
export function allows(have, need) {
  return (RANK[have] ?? -1) >= RANK[need];
}
