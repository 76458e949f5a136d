import { request, type IncomingMessage } from 'node:http';
import { createParser } from 'eventsource-parser';
import WebSocket from 'ws';
import type { StreamEvent } from '../../src/server/events-bus.js';

/** A stream client in a test: what it received, and control over reading. */
export interface StreamClient {
  kind: 'sse' | 'ws';
  events: StreamEvent[];
  /** SSE comment lines received (heartbeats). */
  comments: string[];
  /** SSE: the HTTP status; WS: 101 when upgraded, else the refusal's status. */
  status: Promise<number>;
  /** Settles when the stream ended: WS close code, SSE 0 (the server ended it) or -1 (error). */
  ended: Promise<number>;
  /** Stop reading from the socket (the kernel buffers fill, then the server's). */
  pause(): void;
  resume(): void;
  close(): void;
  /** Seq of the last sequenced event received (0: none). */
  lastSeq(): number;
}

function lastSeqOf(events: StreamEvent[]): number {
  for (let i = events.length - 1; i >= 0; i--) if (events[i]!.seq) return events[i]!.seq;
  return 0;
}

/**
 * An SSE client over a raw HTTP request (an EventSource cannot pause reading): parses frames
 * with eventsource-parser and keeps the envelopes. `headers` go as they are (Authorization,
 * Last-Event-ID); `onEvent` sees each envelope as it arrives (the bench times delivery with it).
 */
export function sseClient(url: string, headers: Record<string, string> = {}, onEvent?: (e: StreamEvent) => void): StreamClient {
  const events: StreamEvent[] = [];
  const comments: string[] = [];
  const receive = (e: StreamEvent) => (events.push(e), onEvent?.(e));
  let res: IncomingMessage | undefined;
  let resolveStatus!: (n: number) => void;
  let resolveEnded!: (n: number) => void;
  const status = new Promise<number>((r) => (resolveStatus = r));
  const ended = new Promise<number>((r) => (resolveEnded = r));
  const parser = createParser({ onEvent: (e) => receive(JSON.parse(e.data) as StreamEvent), onComment: (c) => comments.push(c.trim()) });
  const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (r) => {
    res = r;
    resolveStatus(r.statusCode ?? 0);
    r.setEncoding('utf8');
    r.on('data', (chunk: string) => parser.feed(chunk));
    r.on('end', () => resolveEnded(0));
    r.on('error', () => resolveEnded(-1));
    r.on('close', () => resolveEnded(r.complete ? 0 : -1));
  });
  req.on('error', () => {
    resolveStatus(-1);
    resolveEnded(-1);
  });
  req.end();
  return {
    kind: 'sse',
    events,
    comments,
    status,
    ended,
    pause: () => res?.socket.pause(),
    resume: () => res?.socket.resume(),
    close: () => req.destroy(),
    lastSeq: () => lastSeqOf(events),
  };
}

/** A WebSocket client (ws): one envelope per text frame; `onEvent` sees each as it arrives. */
export function wsClient(url: string, headers: Record<string, string> = {}, onEvent?: (e: StreamEvent) => void): StreamClient {
  const events: StreamEvent[] = [];
  const receive = (e: StreamEvent) => (events.push(e), onEvent?.(e));
  const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers });
  let resolveStatus!: (n: number) => void;
  const status = new Promise<number>((r) => (resolveStatus = r));
  const ended = new Promise<number>((resolve) => {
    ws.on('open', () => resolveStatus(101));
    ws.on('unexpected-response', (_req, res) => {
      resolveStatus(res.statusCode ?? 0);
      resolve(-1);
      res.resume();
    });
    ws.on('message', (data) => receive(JSON.parse(String(data)) as StreamEvent));
    ws.on('close', (code) => resolve(code));
    ws.on('error', () => {
      resolveStatus(-1);
      resolve(-1);
    });
  });
  return {
    kind: 'ws',
    events,
    comments: [],
    status,
    ended,
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    close: () => ws.terminate(),
    lastSeq: () => lastSeqOf(events),
  };
}
