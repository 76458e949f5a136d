// The manager's API as the page uses it. The token lives in this module's memory only: never in
// localStorage, sessionStorage, a cookie or the page's URL. The one exception is the EventSource
// stream URL (`?token=`): browsers cannot set headers on EventSource; the manager redacts that
// query parameter from its logs, and the page never shows the URL. Plain streamed answers (an
// agent's logs) are read with fetch and the Authorization header, never with the token in a URL.

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
 * ({seq, type, ts, topic, agent?, task_id?, data}). EventSource reconnects by itself and resumes
 * with Last-Event-ID. Returns a function that closes the stream.
 */
export function followEvents(onEvent, onState) {
  const es = new EventSource(`/api/v1/events?token=${encodeURIComponent(token)}`);
  es.onopen = () => onState?.('live');
  es.onerror = () => onState?.(es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
  es.onmessage = (m) => {
    try {
      onEvent(JSON.parse(m.data));
    } catch {
      // a malformed frame is skipped; the next event brings the row up to date
    }
  };
  return () => es.close();
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
