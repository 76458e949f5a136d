/**
 * Agent connections (issue 10 §5): agents dial the manager at `GET /ws/agent` (WebSocket) and
 * keep the socket open; nothing dials the agent, so an agent on another host needs no inbound port.
 *
 * Protocol (JSON text frames):
 * 1. agent -> manager, first frame, exactly
 *    `{"type":"hello","agent_id","site","version","capabilities","auth_token"}` (agent_id: the
 *    agent's name or slug; auth_token: its per-agent token, src/fleet/agent-tokens.ts);
 * 2. manager -> agent: `{"type":"welcome","connection_id","heartbeat_interval_s"}`, or a close
 *    with 4401 (unknown agent or bad token), 4400 (malformed or unexpected HELLO), 4408 (no HELLO
 *    within `helloTimeoutMs`);
 * 3. agent -> manager every `heartbeat_interval_s`: `{"type":"heartbeat"}` and
 *    `{"type":"telemetry","telemetry":{...}}` (CPU %, memory bytes, event-loop lag ms, tool
 *    call counts); any frame counts as a sign of life. After `missedHeartbeats` (3) intervals
 *    without one the agent is offline and the socket is ended (4408);
 * 4. manager -> agent: `{"type":"command","command_id","verb","args"}`; agent -> manager:
 *    `{"type":"result","command_id","ok":true,"result"}` or `{..."ok":false,"error":{"code","message"}}`.
 * Every change of state is an event on the bus: `connection.online`, `connection.offline`,
 * `connection.telemetry` (topic agents, `agent` = slug).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { WebSocket } from 'ws';
import * as z from 'zod';
import { isoNow, type Clock } from '../clock.js';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { agentTokenMatches, revokeAgentToken, rotateAgentToken } from '../fleet/agent-tokens.js';
import type { FleetDeps } from '../fleet/context.js';
import { findRecord } from '../fleet/replicas.js';
import { logger } from '../log.js';
import type { AgentRecord } from '../registry/registry.js';
import type { StreamEventInput } from './events-bus.js';
import { ErrorBody, withErrors } from './schemas.js';

const log = logger('connections');

/** Close codes of `/ws/agent` (4000-4999 are the application's, RFC 6455 §7.4.2). */
export const AGENT_WS_CLOSE = { BAD_HELLO: 4400, UNAUTHORIZED: 4401, TIMEOUT: 4408, GOING_AWAY: 1001 } as const;

/** The HELLO, exactly the source documents' fields and no others. */
export const HelloSchema = z.strictObject({
  type: z.literal('hello'),
  agent_id: z.string().min(1).max(128),
  site: z.string().max(128),
  version: z.string().min(1).max(64),
  capabilities: z.array(z.string().min(1).max(64)).max(64),
  auth_token: z.string().min(1).max(256),
});
export type Hello = z.infer<typeof HelloSchema>;

/** What an agent sends after its welcome. */
const AgentFrameSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('heartbeat') }),
  z.object({ type: z.literal('telemetry'), telemetry: z.record(z.string(), z.unknown()) }),
  z.object({
    type: z.literal('result'),
    command_id: z.string().min(1).max(64),
    ok: z.boolean(),
    result: z.unknown().optional(),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
  }),
]);

/** A command's outcome as an agent reports it. */
export type AgentReply = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } };

/** One connection as the API shows it. Times are ISO-8601. */
export interface ConnectionView {
  connection_id: string;
  agent: string;
  site: string;
  version: string;
  capabilities: string[];
  state: 'online' | 'offline';
  connected_at: string;
  last_seen_at: string;
  /** Why it went offline (closed by the agent, missed heartbeats, replaced, manager shutdown). */
  offline_reason?: string | undefined;
  telemetry?: Record<string, unknown> | undefined;
}

interface Connection {
  view: ConnectionView;
  lastSeenMs: number;
  socket: WebSocket;
  pending: Map<string, (reply: AgentReply | undefined) => void>;
}

export interface AgentConnectionsOptions {
  /** Resolves an agent_id (name or slug) to its slug and stored token hash; undefined when unknown. */
  lookup: (agentId: string) => Promise<{ slug: string; agentToken?: { scheme: 'sha256'; hash: string; issuedAt: string } | undefined } | undefined>;
  publish: (ev: StreamEventInput) => void;
  clock: Clock;
  /** Seconds between heartbeats the welcome asks for (default 30). */
  heartbeatIntervalS?: number | undefined;
  /** Intervals without a frame before the agent is offline (default 3). */
  missedHeartbeats?: number | undefined;
  /** ms an opened socket has to send its HELLO (default 10,000). */
  helloTimeoutMs?: number | undefined;
}

/**
 * The live connections of the manager, in memory, by connection id: an agent may hold several
 * (one per replica; a reconnect before the old socket timed out), commands go to its newest. Also
 * the last known view of each agent that was connected (state offline). `request` sends a command
 * over an agent's socket and resolves with its result frame.
 */
export class AgentConnections {
  /** Open connections by connection id, oldest first. */
  private readonly live = new Map<string, Connection>();
  private readonly last = new Map<string, ConnectionView>();
  private readonly listeners = new Set<(slug: string) => void>();
  private readonly timer: NodeJS.Timeout;
  readonly heartbeatIntervalS: number;
  private readonly missed: number;
  readonly helloTimeoutMs: number;

  constructor(private readonly opts: AgentConnectionsOptions) {
    this.heartbeatIntervalS = opts.heartbeatIntervalS ?? 30;
    this.missed = opts.missedHeartbeats ?? 3;
    this.helloTimeoutMs = opts.helloTimeoutMs ?? 10_000;
    // checks liveness a few times per interval, so "offline" comes at most a third of an interval late
    this.timer = setInterval(() => this.sweep(), Math.max(50, (this.heartbeatIntervalS * 1000) / 3));
    this.timer.unref();
  }

  /** The newest open connection of `slug`. */
  private newest(slug: string): Connection | undefined {
    let found: Connection | undefined;
    for (const c of this.live.values()) if (c.view.agent === slug) found = c;
    return found;
  }

  /** The newest open connection of `slug`, if any. */
  connectionOf(slug: string): { id: string; capabilities: readonly string[] } | undefined {
    const c = this.newest(slug);
    return c ? { id: c.view.connection_id, capabilities: c.view.capabilities } : undefined;
  }

  /** How many connections are open now. */
  get size(): number {
    return this.live.size;
  }

  /** Slugs of the agents connected now whose HELLO declared `capability`. */
  withCapability(capability: string): string[] {
    return [...new Set([...this.live.values()].filter((c) => c.view.capabilities.includes(capability)).map((c) => c.view.agent))];
  }

  /** The open connections, and the last view of each agent that has none open (offline), by agent slug. */
  list(): ConnectionView[] {
    const open = [...this.live.values()].map((c) => c.view);
    const online = new Set(open.map((v) => v.agent));
    const gone = [...this.last.values()].filter((v) => !online.has(v.agent));
    return [...open, ...gone].map((v) => ({ ...v })).sort((a, b) => a.agent.localeCompare(b.agent));
  }

  /** The connection view of one agent (live or last known), or undefined if it never connected. */
  view(slug: string): ConnectionView | undefined {
    const v = this.last.get(slug);
    return v ? { ...v } : undefined;
  }

  /** Call `fn(slug)` whenever an agent comes online (commands waiting for it). Returns an unsubscribe. */
  onOnline(fn: (slug: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Send `{type:'command', command_id, verb, args}` over `slug`'s socket and wait for its result
   * frame. Resolves undefined when the connection ends first (the caller waits for the next one).
   * @throws Error when the agent is not connected.
   */
  request(slug: string, commandId: string, verb: string, args: unknown): Promise<AgentReply | undefined> {
    const c = this.newest(slug);
    if (!c) throw new Error(`agent ${slug} is not connected`);
    return new Promise((resolve) => {
      c.pending.set(commandId, (r) => resolve(r));
      try {
        c.socket.send(JSON.stringify({ type: 'command', command_id: commandId, verb, args }));
      } catch {
        c.pending.delete(commandId);
        resolve(undefined);
      }
    });
  }

  /** End every connection of `slug` (its token was rotated or revoked): 4401. */
  disconnect(slug: string, reason: string): void {
    for (const c of this.live.values()) if (c.view.agent === slug) c.socket.close(AGENT_WS_CLOSE.UNAUTHORIZED, reason);
  }

  /** Stop the liveness timer (sockets are closed by the websocket plugin on app close). */
  close(): void {
    clearInterval(this.timer);
  }

  /** Serve one `/ws/agent` socket: HELLO, welcome, then frames until it closes. */
  accept(socket: WebSocket): void {
    let conn: Connection | undefined;
    let helloSeen = false;
    const helloTimer = setTimeout(() => socket.close(AGENT_WS_CLOSE.TIMEOUT, 'no HELLO in time'), this.helloTimeoutMs);
    helloTimer.unref();
    socket.on('close', () => {
      clearTimeout(helloTimer);
      if (conn) this.goOffline(conn, 'closed');
    });
    socket.on('error', () => undefined);
    socket.on('message', (data, isBinary) => {
      let msg: unknown;
      try {
        msg = isBinary ? undefined : JSON.parse(data.toString());
      } catch {
        msg = undefined;
      }
      if (!helloSeen) {
        helloSeen = true;
        clearTimeout(helloTimer);
        const hello = HelloSchema.safeParse(msg);
        if (!hello.success) {
          const issue = hello.error.issues[0];
          return socket.close(AGENT_WS_CLOSE.BAD_HELLO, `malformed HELLO: ${issue ? `${issue.path.join('.') || 'frame'} ${issue.message}` : 'not JSON'}`.slice(0, 120));
        }
        void this.welcome(socket, hello.data).then((c) => (conn = c));
        return;
      }
      if (!conn) return;
      conn.lastSeenMs = this.opts.clock.now();
      conn.view.last_seen_at = isoNow(this.opts.clock);
      const frame = AgentFrameSchema.safeParse(msg);
      if (!frame.success) return log.debug({ agent: conn.view.agent }, 'ignored an unknown frame');
      const f = frame.data;
      if (f.type === 'telemetry') {
        conn.view.telemetry = f.telemetry;
        this.opts.publish({ type: 'connection.telemetry', topic: 'agents', agent: conn.view.agent, data: { connection_id: conn.view.connection_id, telemetry: f.telemetry } });
      } else if (f.type === 'result') {
        const done = conn.pending.get(f.command_id);
        conn.pending.delete(f.command_id);
        done?.(f.ok ? { ok: true, result: f.result ?? null } : { ok: false, error: f.error ?? { code: 'TOOL_ERROR', message: 'the agent reported a failure' } });
      }
    });
  }

  private async welcome(socket: WebSocket, hello: Hello): Promise<Connection | undefined> {
    const rec = await this.opts.lookup(hello.agent_id).catch(() => undefined);
    if (!rec || !agentTokenMatches(rec.agentToken, hello.auth_token)) {
      // one message for both: an unknown agent and a wrong token look the same to a prober
      socket.close(AGENT_WS_CLOSE.UNAUTHORIZED, 'unknown agent or bad token');
      return undefined;
    }
    if (socket.readyState !== socket.OPEN) return undefined;
    const now = isoNow(this.opts.clock);
    const conn: Connection = {
      view: { connection_id: randomUUID(), agent: rec.slug, site: hello.site, version: hello.version, capabilities: hello.capabilities, state: 'online', connected_at: now, last_seen_at: now },
      lastSeenMs: this.opts.clock.now(),
      socket,
      pending: new Map(),
    };
    this.live.set(conn.view.connection_id, conn);
    this.last.set(rec.slug, conn.view);
    socket.send(JSON.stringify({ type: 'welcome', connection_id: conn.view.connection_id, heartbeat_interval_s: this.heartbeatIntervalS }));
    log.debug({ agent: rec.slug, connection: conn.view.connection_id }, 'agent connected');
    this.opts.publish({ type: 'connection.online', topic: 'agents', agent: rec.slug, data: this.publicView(conn.view) });
    for (const fn of this.listeners) fn(rec.slug);
    return conn;
  }

  private goOffline(conn: Connection, reason: string): void {
    if (conn.view.state === 'offline') return;
    conn.view.state = 'offline';
    conn.view.offline_reason = reason;
    this.live.delete(conn.view.connection_id);
    // the agent's last view stays the newest of its connections still open, if any
    const other = this.newest(conn.view.agent);
    if (other) this.last.set(conn.view.agent, other.view);
    for (const done of conn.pending.values()) done(undefined);
    conn.pending.clear();
    this.opts.publish({ type: 'connection.offline', topic: 'agents', agent: conn.view.agent, data: this.publicView(conn.view) });
  }

  private sweep(): void {
    const limit = this.missed * this.heartbeatIntervalS * 1000;
    const now = this.opts.clock.now();
    for (const c of [...this.live.values()]) {
      if (now - c.lastSeenMs <= limit) continue;
      this.goOffline(c, `missed ${this.missed} heartbeats`);
      c.socket.close(AGENT_WS_CLOSE.TIMEOUT, `no heartbeat for ${this.missed} intervals`);
      setTimeout(() => c.socket.terminate(), 1000).unref();
    }
  }

  private publicView(v: ConnectionView): Omit<ConnectionView, 'telemetry'> {
    const { telemetry: _t, ...rest } = v;
    return rest;
  }
}

const ConnectionViewSchema = Type.Object(
  {
    connection_id: Type.String(),
    agent: Type.String(),
    site: Type.String(),
    version: Type.String(),
    capabilities: Type.Array(Type.String()),
    state: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
    connected_at: Type.String(),
    last_seen_at: Type.String(),
    offline_reason: Type.Optional(Type.String()),
    telemetry: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);
export { ConnectionViewSchema };

/**
 * The `/ws/agent` route, a root plugin (agents hold no manager JWT: the HELLO's per-agent token
 * is their authentication). @fastify/websocket is registered once in app.ts; this only declares
 * the route. A plain GET (no upgrade) answers 426.
 */
export function agentSocketRoute(conns: AgentConnections) {
  return async function agentSocket(app: FastifyInstance): Promise<void> {
    app.addHook('onClose', async () => conns.close());
    app.route({
      method: 'GET',
      url: '/ws/agent',
      exposeHeadRoute: false,
      schema: {
        summary: 'Agents connect here (WebSocket): HELLO with the per-agent token, then heartbeats, telemetry and commands',
        tags: ['connections'],
        hide: true,
        response: withErrors({ 426: Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }) }) }),
      },
      handler: async (_req, reply) => reply.code(426).header('upgrade', 'websocket').send({ error: { code: 'BAD_REQUEST', message: '/ws/agent is a WebSocket endpoint: connect with an Upgrade request' } }),
      wsHandler: (socket) => conns.accept(socket),
    });
  };
}

/** The lookup of AgentConnectionsOptions over the fleet's records (name or slug). */
export function recordLookup(records: () => Promise<readonly AgentRecord[]>): AgentConnectionsOptions['lookup'] {
  return async (agentId) => {
    const rec = findRecord(await records(), agentId);
    return rec ? { slug: rec.slug, agentToken: rec.agentToken } : undefined;
  };
}

/**
 * `GET /api/v1/connections` (viewer): every agent's connection (live, or the last one, offline);
 * `POST /api/v1/agents/{name}/token` (admin): rotate the agent's connection token (the new one
 * once, in the response; its open connection is closed 4401); `DELETE /api/v1/agents/{name}/token`
 * (admin): revoke it. An api plugin.
 */
export function connectionRoutes(conns: AgentConnections, deps: { fleet: () => Pick<FleetDeps, 'config' | 'registry' | 'clock'>; invalidate: () => void }) {
  return async function connections(app: FastifyInstance): Promise<void> {
    const api = app.withTypeProvider<TypeBoxTypeProvider>();
    const NameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 128 }) });
    api.get(
      '/connections',
      { config: { scope: 'viewer' }, schema: { summary: "Agents' connections to /ws/agent (live and last known)", tags: ['connections'], response: withErrors({ 200: Type.Object({ connections: Type.Array(ConnectionViewSchema) }, { additionalProperties: false }) }) } },
      async () => ({ connections: conns.list() }),
    );
    api.post(
      '/agents/:name/token',
      {
        config: { scope: 'admin' },
        schema: {
          summary: "Rotate an agent's connection token (shown once)",
          tags: ['connections'],
          params: NameParams,
          response: withErrors({ 200: Type.Object({ agent: Type.String(), token: Type.String(), issuedAt: Type.String() }, { additionalProperties: false }), 404: ErrorBody }),
        },
      },
      async (req) => {
        const r = await rotateAgentToken(deps.fleet(), { name: req.params.name });
        deps.invalidate();
        conns.disconnect(r.agent, 'connection token rotated');
        return r;
      },
    );
    api.delete(
      '/agents/:name/token',
      {
        config: { scope: 'admin' },
        schema: { summary: "Revoke an agent's connection token", tags: ['connections'], params: NameParams, response: withErrors({ 200: Type.Object({ agent: Type.String(), revoked: Type.Boolean() }, { additionalProperties: false }), 404: ErrorBody }) },
      },
      async (req) => {
        const r = await revokeAgentToken(deps.fleet(), { name: req.params.name });
        deps.invalidate();
        conns.disconnect(r.agent, 'connection token revoked');
        return r;
      },
    );
  };
}
