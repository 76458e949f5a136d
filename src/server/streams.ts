/**
 * Live streams (issue 10 §4): the event bus (events-bus.ts) over Server-Sent Events and
 * WebSocket, on the same four routes of the protected `/api/v1` scope (viewer scope):
 *
 *   GET /agents/stream[?agent=]   agent status and fleet actions (one agent with `?agent=`)
 *   GET /tasks/stream/{id}        one task's steps
 *   GET /metrics/stream           periodic metrics snapshots
 *   GET /events[?agent=]          everything
 *
 * A plain GET answers `text/event-stream` (SSE, WHATWG HTML §9.2): `id:` is the event's seq,
 * `data:` its envelope (StreamEventSchema) as JSON, a comment line every `heartbeatMs`; a client
 * resumes with `Last-Event-ID` (or `?since=`). A WebSocket upgrade of the same URL gets one text
 * frame per envelope and resumes with `?since=`. Both take the token as `Authorization: Bearer`
 * or, where the client cannot set headers (browsers), `?token=` (never logged: app.ts). A
 * subscriber that holds more unsent bytes than the bus's budget is cut off: SSE sends a final
 * `stream.overflow` event and ends, WebSocket closes with 4008; either may resume with the last
 * seq it saw.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import '@fastify/websocket';
import type { WebSocket } from 'ws';
import { Type } from 'typebox';
import { AppError } from '../errors.js';
import { isAgentName, slugify } from '../names.js';
import type { BusEntry, CloseReason, EventBus, StreamFilter, SubscriberSink } from './events-bus.js';
import { ErrorBody, withErrors } from './schemas.js';

/** WebSocket close codes of the streams (4000-4999: application codes, RFC 6455 §7.4.2). */
export const WS_CLOSE = {
  /** The subscriber was too slow: its unsent bytes exceeded the budget. */
  OVERFLOW: 4008,
  /** The manager is shutting down (RFC 6455 "going away"). */
  GOING_AWAY: 1001,
} as const;

export interface StreamRoutesDeps {
  bus: EventBus;
  /** ms between SSE heartbeat comments and WebSocket pings (default 15,000). */
  heartbeatMs?: number;
  /** ms a cut-off subscriber gets to read its final bytes before its socket is destroyed (default 10,000). */
  cutoffGraceMs?: number;
}

const Query = Type.Object({
  agent: Type.Optional(Type.String({ maxLength: 100, description: 'only events about this agent (name or slug)' })),
  since: Type.Optional(Type.Integer({ minimum: 0, description: 'resume after this seq (WebSocket; SSE prefers Last-Event-ID)' })),
  token: Type.Optional(Type.String({ maxLength: 4096, description: 'bearer token, for clients that cannot send headers' })),
});
const TaskParams = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' }) });
const Headers = Type.Object({ 'last-event-id': Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })) });

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  // nginx would otherwise buffer the stream
  'x-accel-buffering': 'no',
};

function sseFrame(entry: BusEntry): string {
  return entry.seq ? `id: ${entry.seq}\ndata: ${entry.json}\n\n` : `data: ${entry.json}\n\n`;
}

/** SSE sink over a hijacked response; `ended` lets the route stop its heartbeat. */
function sseSink(res: ServerResponse, graceMs: number): SubscriberSink {
  return {
    send: (entry) => void res.write(sseFrame(entry)),
    bufferedBytes: () => res.writableLength,
    close: (_reason: CloseReason, final: BusEntry) => {
      res.end(sseFrame(final));
      setTimeout(() => res.destroy(), graceMs).unref();
    },
  };
}

function wsSink(socket: WebSocket, graceMs: number): SubscriberSink {
  return {
    send: (entry) => socket.send(entry.json),
    bufferedBytes: () => socket.bufferedAmount,
    close: (reason: CloseReason, final: BusEntry) => {
      if (socket.readyState !== socket.OPEN) return;
      socket.send(final.json);
      if (reason === 'overflow') socket.close(WS_CLOSE.OVERFLOW, 'subscriber too slow: send buffer exceeded');
      else socket.close(WS_CLOSE.GOING_AWAY, 'manager shutting down');
      setTimeout(() => socket.terminate(), graceMs).unref();
    },
  };
}

/** The agent filter of `?agent=`: a name or slug, as a slug. @throws AppError BAD_REQUEST. */
function agentFilter(agent: string | undefined): string | undefined {
  if (agent === undefined) return undefined;
  if (!isAgentName(agent)) throw new AppError('BAD_REQUEST', `agent '${agent}' is not an agent name or slug`, { hint: 'pass ?agent=<name or slug>, e.g. ?agent=data-agent' });
  return slugify(agent);
}

type StreamRequest = FastifyRequest<{ Querystring: { agent?: string; since?: number; token?: string }; Params: { id?: string }; Headers: { 'last-event-id'?: string } }>;

/**
 * The stream routes, a plugin for `buildServer({ plugins: { api: [...] } })`. Closing the app
 * closes every subscriber (SSE `stream.closing`, WebSocket 1001) so the server can stop.
 */
export function streamRoutes(deps: StreamRoutesDeps) {
  const { bus } = deps;
  const heartbeatMs = deps.heartbeatMs ?? 15_000;
  const graceMs = deps.cutoffGraceMs ?? 10_000;

  function sse(req: StreamRequest, reply: FastifyReply, filter: StreamFilter): void {
    const header = req.headers['last-event-id'];
    const since = header !== undefined ? Number(header) : req.query.since;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, SSE_HEADERS);
    res.write(`retry: 2000\n\n`);
    const sub = bus.subscribe(filter, sseSink(res, graceMs), since);
    const beat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);
    beat.unref();
    res.on('close', () => {
      clearInterval(beat);
      sub.close();
    });
  }

  function ws(socket: WebSocket, req: StreamRequest, filter: StreamFilter): void {
    const sub = bus.subscribe(filter, wsSink(socket, graceMs), req.query.since);
    let alive = true;
    socket.on('pong', () => void (alive = true));
    const beat = setInterval(() => {
      if (!alive) return socket.terminate();
      alive = false;
      socket.ping();
    }, heartbeatMs);
    beat.unref();
    socket.on('close', () => {
      clearInterval(beat);
      sub.close();
    });
  }

  return async function streams(app: FastifyInstance): Promise<void> {
    app.addHook('preClose', async () => bus.closeAll());
    const filters = new WeakMap<FastifyRequest, StreamFilter>();
    const route = (url: string, summary: string, filterOf: (req: StreamRequest) => StreamFilter, params?: typeof TaskParams) =>
      app.route({
        method: 'GET',
        url,
        exposeHeadRoute: false,
        config: { scope: 'viewer', queryToken: true },
        schema: {
          summary,
          description: 'Server-Sent Events (text/event-stream; id = seq; resume with Last-Event-ID) or, on a WebSocket upgrade, one JSON text frame per event (resume with ?since=). Events follow the StreamEvent envelope.',
          tags: ['streams'],
          querystring: Query,
          headers: Headers,
          ...(params ? { params } : {}),
          produces: ['text/event-stream'],
          response: withErrors({ 200: Type.String({ description: 'text/event-stream of StreamEvent envelopes' }), 404: ErrorBody }),
        },
        // the filter is checked before any upgrade, so a bad ?agent= is a plain 400 on both transports
        preHandler: async (req) => void filters.set(req, filterOf(req as StreamRequest)),
        handler: async (req, reply) => sse(req as StreamRequest, reply, filters.get(req)!),
        wsHandler: (socket, req) => ws(socket, req as StreamRequest, filters.get(req)!),
      });
    route('/agents/stream', 'Agent status and fleet actions, live', (req) => ({ topic: 'agents', agent: agentFilter(req.query.agent) }));
    route('/tasks/stream/:id', "One task's steps, live", (req) => ({ topic: 'tasks', taskId: req.params.id }), TaskParams);
    route('/metrics/stream', 'Metrics snapshots, live', () => ({ topic: 'metrics' }));
    route('/events', 'Every event, live', (req) => ({ agent: agentFilter(req.query.agent) }));
  };
}
