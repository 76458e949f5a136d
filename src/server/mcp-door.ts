/**
 * The manager as one MCP door (issue 12 §3): `/mcp` on `agent serve` serves every healthy agent's
 * tools in ONE MCP server (streamable HTTP, @modelcontextprotocol/sdk), each named
 * `<slug>__<tool>`, and routes `tools/call` through the gateway (unhealthy replicas skipped,
 * breakers, retries), as the Docker MCP Gateway does for its servers but health-aware.
 *
 * Stateful sessions (the transport's session mode, `Mcp-Session-Id`): the tool list follows the
 * fleet, and a session's client is told so with `notifications/tools/list_changed` on its GET
 * stream. Sessions are bounded (`maxSessions`, then 503 MCP_SESSIONS_FULL) and expire after
 * `idleMs` without a request (a session holding its GET stream open is not idle).
 *
 * Auth (the API's, src/server/auth.ts `protect`, by route): every request needs a manager token;
 * a viewer token may initialize, list and listen; `tools/call` needs operator (403 FORBIDDEN
 * before the SDK sees the message). A session belongs to the token that opened it: another token
 * gets 404 MCP_SESSION_NOT_FOUND. Origin is validated as on the agents (runtime/mcp.ts).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ErrorCode, isInitializeRequest, ListToolsRequestSchema, McpError, type CallToolResult, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { AppError, messageOf } from '../errors.js';
import type { AgentRecord } from '../registry/registry.js';
import { originAllowed } from '../runtime/mcp.js';
import { structuredResult } from '../runtime/mcp-server.js';
import type { ManagerContext } from './manager.js';
import { withErrors } from './schemas.js';
import { scopeAllows } from './tokens.js';

/** Separates an agent's slug from its tool's name in a door tool name (slugs never hold `_`). */
export const TOOL_SEPARATOR = '__';

/** One tool of the door: the MCP tool plus where it goes. */
export interface DoorTool {
  slug: string;
  tool: string;
  mcp: Tool;
}

/**
 * The door's tool list: the recorded tools (`record.tools`, written at start) of every agent in
 * `healthy` (slugs with a replica in rotation), named `<slug>__<tool>`, sorted by name, each
 * described as `[<agent name>] <description>` with the recorded JSON Schema as `inputSchema`. Pure.
 */
export function doorTools(records: readonly Pick<AgentRecord, 'slug' | 'name' | 'tools'>[], healthy: ReadonlySet<string>): DoorTool[] {
  const out: DoorTool[] = [];
  for (const rec of records) {
    if (!healthy.has(rec.slug)) continue;
    for (const t of rec.tools ?? []) {
      out.push({
        slug: rec.slug,
        tool: t.name,
        mcp: { name: `${rec.slug}${TOOL_SEPARATOR}${t.name}`, description: `[${rec.name}] ${t.description}`, inputSchema: t.parameters as Tool['inputSchema'] },
      });
    }
  }
  return out.sort((a, b) => (a.mcp.name < b.mcp.name ? -1 : a.mcp.name > b.mcp.name ? 1 : 0));
}

/** `<slug>__<tool>` split at the first separator; undefined when there is none. Pure. */
export function splitToolName(name: string): { slug: string; tool: string } | undefined {
  const i = name.indexOf(TOOL_SEPARATOR);
  if (i <= 0 || i + TOOL_SEPARATOR.length >= name.length) return undefined;
  return { slug: name.slice(0, i), tool: name.slice(i + TOOL_SEPARATOR.length) };
}

/**
 * A gateway answer as an MCP tool result: 200 `{result}` as a JSON text block plus structured
 * content; any other status (the agent's 400 invalid parameters, 404, 500 tool error, 504 tool
 * timeout) as a tool error (`isError`, text `CODE: message`). Pure.
 */
export function toolResult(status: number, body: unknown): CallToolResult {
  if (status === 200 && body !== null && typeof body === 'object' && 'result' in body) {
    const result = (body as { result: unknown }).result;
    return { content: [{ type: 'text', text: JSON.stringify(result) }], structuredContent: structuredResult(result) };
  }
  const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof err?.code === 'string' ? err.code : `HTTP_${status}`;
  const message = typeof err?.message === 'string' ? err.message : typeof body === 'string' ? body.slice(0, 500) : 'the agent answered an error';
  return { isError: true, content: [{ type: 'text', text: `${code}: ${message}` }] };
}

export interface McpDoorOptions {
  /** Open sessions at most (default 100); one more initialize is 503 MCP_SESSIONS_FULL. */
  maxSessions?: number | undefined;
  /** A session with no request and no open GET stream for this long is closed, ms (default 600 000). */
  idleMs?: number | undefined;
  /** How often the tool list is recomputed while sessions are open, ms (default 5000, the supervisor's probe interval): catches health changes that publish no event. */
  pollMs?: number | undefined;
}

interface Session {
  id: string;
  server: Server;
  transport: StreamableHTTPServerTransport;
  /** Token id that opened it. */
  jti: string;
  lastSeen: number;
  /** GET streams open now. */
  streams: number;
}

/** Whether a parsed JSON-RPC body (one message or a batch) holds a `tools/call` request. */
function callsTool(body: unknown): boolean {
  const msgs = Array.isArray(body) ? body : [body];
  return msgs.some((m) => m !== null && typeof m === 'object' && (m as { method?: unknown }).method === 'tools/call');
}

/**
 * The door's state: sessions, the current tool list and its fingerprint. One per manager
 * (mcpDoorPlugin builds it); `close()` ends every session (the manager's preClose).
 */
export class McpDoor {
  private readonly sessions = new Map<string, Session>();
  private readonly maxSessions: number;
  private readonly idleMs: number;
  private fingerprint: string | undefined;
  private readonly unsubscribe: () => void;
  private readonly timer: NodeJS.Timeout;
  private pending: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly ctx: ManagerContext,
    opts: McpDoorOptions = {},
  ) {
    this.maxSessions = opts.maxSessions ?? 100;
    this.idleMs = opts.idleMs ?? 600_000;
    // agent events on the bus (start, stop, remove, scale, health...): recompute soon, once per burst
    const sub = ctx.events.subscribe(
      { topic: 'agents' },
      {
        send: (entry) => {
          if (entry.seq === 0 || this.pending) return;
          this.pending = setTimeout(() => {
            this.pending = undefined;
            ctx.snapshot.invalidate();
            void this.tools().catch(() => undefined);
          }, 50);
        },
        bufferedBytes: () => 0,
        close: () => undefined,
      },
    );
    this.unsubscribe = () => sub.close();
    this.timer = setInterval(() => {
      this.sweep();
      if (this.sessions.size) void this.tools().catch(() => undefined);
    }, opts.pollMs ?? 5000);
    this.timer.unref();
  }

  /** Open sessions now. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * The current tool list (doorTools over the snapshot and the rotation). When it differs from
   * the last one computed, every session gets `notifications/tools/list_changed`.
   */
  async tools(): Promise<DoorTool[]> {
    const { records } = await this.ctx.snapshot.get();
    const healthy = new Set<string>();
    await Promise.all(
      records.map(async (r) => {
        if ((await this.ctx.rotation.rotation(r.slug)).some((v) => v.inRotation && v.url)) healthy.add(r.slug);
      }),
    );
    const list = doorTools(records, healthy);
    const fp = JSON.stringify(list.map((t) => t.mcp));
    if (this.fingerprint !== undefined && fp !== this.fingerprint) {
      for (const s of this.sessions.values()) void s.server.sendToolListChanged().catch(() => undefined);
    }
    this.fingerprint = fp;
    return list;
  }

  /** Close sessions idle for `idleMs` (no request, no open GET stream). Returns how many. */
  sweep(): number {
    const now = this.ctx.clock.now();
    let n = 0;
    for (const s of [...this.sessions.values()]) {
      if (s.streams === 0 && now - s.lastSeen >= this.idleMs) {
        n++;
        this.drop(s);
      }
    }
    return n;
  }

  /** End every session and stop listening (idempotent). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    clearInterval(this.timer);
    if (this.pending) clearTimeout(this.pending);
    await Promise.all([...this.sessions.values()].map(async (s) => this.drop(s)));
  }

  private drop(s: Session): void {
    this.sessions.delete(s.id);
    void s.transport.close().catch(() => undefined);
    void s.server.close().catch(() => undefined);
  }

  /** Answer one /mcp request (POST, GET or DELETE) after auth: routes it to its session or opens one. */
  async handle(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> {
    const principal = req.principal!;
    if (req.method === 'POST' && callsTool(req.body) && !scopeAllows(principal.scope, 'operator')) {
      throw new AppError('FORBIDDEN', 'tools/call needs scope operator', { hint: 'ask an admin for an operator token (`agent token create --scope operator`)' });
    }
    const sid = req.headers['mcp-session-id'];
    let session: Session | undefined;
    if (typeof sid === 'string') {
      session = this.sessions.get(sid);
      if (!session || session.jti !== principal.jti) throw new AppError('MCP_SESSION_NOT_FOUND', 'no such MCP session (expired or closed)', { hint: 'initialize a new session' });
    } else if (req.method === 'POST' && isInitializeRequest(req.body)) {
      if (this.closed) throw new AppError('AGENT_UNAVAILABLE', 'the manager is closing', { retryAfterS: 5 });
      if (this.sessions.size >= this.maxSessions) {
        throw new AppError('MCP_SESSIONS_FULL', `${this.maxSessions} MCP sessions are open, the most the manager keeps`, { hint: 'close idle sessions (DELETE /mcp) or retry later', retryAfterS: 30 });
      }
      session = this.open(principal.jti);
    } else {
      throw new AppError('BAD_REQUEST', 'no Mcp-Session-Id: only an initialize request may open a session', { hint: 'send initialize first, then pass its Mcp-Session-Id header' });
    }
    session.lastSeen = this.ctx.clock.now();
    const s = session;
    if (req.method === 'GET') {
      s.streams++;
      reply.raw.once('close', () => {
        s.streams--;
        s.lastSeen = this.ctx.clock.now();
      });
    }
    reply.hijack();
    await s.transport.handleRequest(req.raw, reply.raw, req.body);
  }

  private open(jti: string): Session {
    const server = new Server({ name: 'nexus-manager', version: '1.0.0' }, { capabilities: { tools: { listChanged: true } } });
    const session: Session = { id: '', server, transport: undefined as never, jti, lastSeen: this.ctx.clock.now(), streams: 0 };
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: true,
      onsessioninitialized: (id) => {
        session.id = id;
        this.sessions.set(id, session);
      },
      onsessionclosed: (id) => void this.sessions.delete(id),
    });
    transport.onclose = () => void (session.id && this.sessions.delete(session.id));
    session.transport = transport;
    server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: (await this.tools()).map((t) => t.mcp) }));
    server.setRequestHandler(CallToolRequestSchema, async (r, extra) => this.call(r.params.name, r.params.arguments ?? {}, extra.signal));
    void server.connect(transport);
    return session;
  }

  /**
   * One tools/call through the gateway. An unknown name (no such agent or no such recorded tool)
   * is the JSON-RPC error -32602, as on an agent; the agent's error answers and the gateway's
   * AGENT_UNAVAILABLE / AGENT_CALL_FAILED / AGENT_TIMEOUT are tool errors (isError).
   */
  private async call(name: string, args: Record<string, unknown>, signal: AbortSignal): Promise<CallToolResult> {
    const parts = splitToolName(name);
    const rec = parts && (await this.ctx.snapshot.get()).records.find((r) => r.slug === parts.slug);
    if (!parts || !rec?.tools?.some((t) => t.name === parts.tool)) throw new McpError(ErrorCode.InvalidParams, `Tool ${name} not found`);
    try {
      const r = await this.ctx.gateway.executeViaGateway(parts.slug, { tool_name: parts.tool, parameters: args }, { signal });
      return toolResult(r.status, r.body);
    } catch (err) {
      if (err instanceof AppError) return { isError: true, content: [{ type: 'text', text: `${err.code}: ${err.message}` }] };
      throw new McpError(ErrorCode.InternalError, messageOf(err));
    }
  }
}

/** Origin check of the door: the agents' rule (no Origin, or a loopback one); the manager has no public URL of its own. */
async function checkOrigin(req: FastifyRequest): Promise<void> {
  if (!originAllowed(req.headers.origin))
    throw new AppError('FORBIDDEN', `Origin ${req.headers.origin} may not use this MCP server`, { hint: 'MCP clients send no Origin; browsers only from loopback pages' });
}

/**
 * The door's routes, for the manager's protected root scope (buildServer `plugins.protectedRoot`):
 * `POST /mcp` (JSON-RPC messages; JSON answers), `GET /mcp` (the session's notification stream,
 * SSE), `DELETE /mcp` (end the session). Scope viewer on the route (operator checked per message
 * for tools/call), the gateway's rate-limit budget. The door closes in the app's preClose, so open
 * GET streams do not hold the manager's shutdown.
 */
export function mcpDoorPlugin(door: McpDoor) {
  return async function mcpDoor(app: FastifyInstance): Promise<void> {
    app.addHook('preClose', async () => door.close());
    const route = {
      config: { scope: 'viewer' as const, limit: 'gateway' as const },
      onRequest: checkOrigin,
      schema: { hide: true, response: withErrors({ 200: Type.Unknown(), 404: Type.Unknown(), 503: Type.Unknown() }) },
    };
    const handler = (req: FastifyRequest, reply: FastifyReply) => door.handle(req, reply);
    app.post('/mcp', route, handler);
    app.get('/mcp', route, handler);
    app.delete('/mcp', route, handler);
  };
}
