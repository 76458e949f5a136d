/**
 * The agent's side of `/ws/agent` (issue 10 §5; the manager's side is src/server/connections.ts):
 * dial the manager, send the HELLO, heartbeat and telemetry on the interval the welcome gives,
 * answer commands through invokeTool, and reconnect with exponential backoff and jitter when the
 * socket drops (a manager restart). Outbound only: the agent needs no inbound port for this.
 *
 * The `ws` package is imported on the first connect (a dynamic import: in the base image's bundle
 * it is evaluated only then), so an agent without NEXUS_MANAGER_URL loads none of it.
 */
import { cpus, hostname, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { WebSocket as WsSocket } from 'ws';
import { ContractError } from './contract.js';
import type { InvokeTool } from './invoke.js';

/** Close codes after which retrying cannot help (bad token, malformed HELLO): the link stops. */
const FATAL_CLOSE = new Set([4400, 4401]);

export interface ManagerLinkOptions {
  /** The manager's base URL (http(s):// or ws(s)://); `/ws/agent` is appended unless the path already ends with it. */
  url: string;
  /** The per-agent token (NEXUS_AGENT_TOKEN). Never logged. */
  token: string;
  agentId: string;
  site: string;
  version: string;
  capabilities: string[];
  invokeTool: InvokeTool;
  /** Tool names, for get_system_info. */
  tools: string[];
  /** Tool call counts by tool and outcome, for telemetry (default: none). */
  toolCalls?: () => Promise<Record<string, Record<string, number>>>;
  /** First reconnect delay, ms (default 1000); doubles per failed attempt up to `maxReconnectDelayMs`. */
  reconnectIntervalMs?: number;
  /** Longest reconnect delay, ms (default 30,000). */
  maxReconnectDelayMs?: number;
  /** Attempts in a row before giving up; 0 (default) retries forever. */
  maxReconnectAttempts?: number;
  /** Seconds between telemetry frames (default: the welcome's heartbeat interval). */
  telemetryIntervalS?: number | undefined;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

/** A running link; `close()` ends it and stops reconnecting. */
export interface ManagerLink {
  /** The current connection id (after a welcome), else undefined. */
  readonly connectionId: string | undefined;
  /** Connections made so far (1 after the first welcome, 2 after a reconnect, ...). */
  readonly connects: number;
  /** Settles when the link stops for good: closed, a fatal close code, or out of attempts. */
  readonly stopped: Promise<{ reason: string; code?: number | undefined }>;
  close(): Promise<void>;
}

/** The WebSocket URL of `/ws/agent` under a manager base URL. @throws Error for a URL that is not http(s)/ws(s). */
export function agentSocketUrl(base: string): string {
  const u = new URL(base);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  else if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error('NEXUS_MANAGER_URL must be an http(s) or ws(s) URL');
  if (!u.pathname.endsWith('/ws/agent')) u.pathname = `${u.pathname.replace(/\/+$/, '')}/ws/agent`;
  return u.toString();
}

/**
 * Delay before reconnect attempt `attempt` (0-based), ms: exponential (base * 2^attempt, capped at
 * `max`) with "equal jitter" (half fixed, half random; AWS Architecture Blog, "Exponential Backoff
 * and Jitter"), so 100 agents dropped at once do not return in one burst. Pure given `random`.
 */
export function reconnectDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const d = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(d / 2 + random() * (d / 2));
}

let lastLagMs = 0;
/** Event-loop lag, ms: how late a setImmediate scheduled now runs (measured on demand, no timer). */
function sampleLag(): void {
  const t = performance.now();
  setImmediate(() => void (lastLagMs = performance.now() - t));
}

const startedAt = Date.now();

/**
 * Dial the manager and keep the link up (see the module docstring). Returns at once; the first
 * connect happens in the background.
 */
export function connectToManager(opts: ManagerLinkOptions): ManagerLink {
  const url = agentSocketUrl(opts.url);
  const base = opts.reconnectIntervalMs ?? 1000;
  const maxDelay = opts.maxReconnectDelayMs ?? 30_000;
  const maxAttempts = opts.maxReconnectAttempts ?? 0;
  let socket: WsSocket | undefined;
  let closed = false;
  let attempt = 0;
  let connects = 0;
  let connectionId: string | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let stop!: (r: { reason: string; code?: number | undefined }) => void;
  const stopped = new Promise<{ reason: string; code?: number | undefined }>((r) => (stop = r));
  let cpuPrev = process.cpuUsage();
  let wallPrev = performance.now();

  async function telemetry(): Promise<Record<string, unknown>> {
    const cpu = process.cpuUsage(cpuPrev);
    const wall = performance.now() - wallPrev;
    cpuPrev = process.cpuUsage();
    wallPrev = performance.now();
    const mem = process.memoryUsage();
    sampleLag();
    return {
      cpu_percent: wall > 0 ? Math.round(((cpu.user + cpu.system) / 1000 / wall) * 10000) / 100 : 0,
      memory_rss_bytes: mem.rss,
      memory_heap_used_bytes: mem.heapUsed,
      event_loop_lag_ms: Math.round(lastLagMs * 100) / 100,
      tool_calls: (await opts.toolCalls?.().catch(() => ({}))) ?? {},
      uptime_s: Math.round((Date.now() - startedAt) / 1000),
    };
  }

  function systemInfo(): Record<string, unknown> {
    return {
      agent: opts.agentId,
      version: opts.version,
      site: opts.site,
      hostname: hostname(),
      platform: process.platform,
      arch: process.arch,
      node: process.version,
      pid: process.pid,
      cpus: cpus().length,
      total_memory_bytes: totalmem(),
      uptime_s: Math.round((Date.now() - startedAt) / 1000),
      tools: opts.tools,
      capabilities: opts.capabilities,
    };
  }

  async function answer(ws: WsSocket, msg: { command_id: string; verb: string; args?: Record<string, unknown> }): Promise<void> {
    const id = JSON.stringify(String(msg.command_id));
    let frame: string;
    try {
      if (msg.verb === 'execute') {
        const args = msg.args ?? {};
        const r = await opts.invokeTool(String(args.tool_name), args.parameters ?? {});
        // the result is JSON text already: no parse and second serialisation
        frame = `{"type":"result","command_id":${id},"ok":true,"result":${r.json}}`;
      } else if (msg.verb === 'get_system_info') {
        frame = JSON.stringify({ type: 'result', command_id: msg.command_id, ok: true, result: systemInfo() });
      } else if (msg.verb === 'get_telemetry') {
        frame = JSON.stringify({ type: 'result', command_id: msg.command_id, ok: true, result: await telemetry() });
      } else {
        frame = JSON.stringify({ type: 'result', command_id: msg.command_id, ok: false, error: { code: 'UNKNOWN_VERB', message: `this agent does not know the verb '${String(msg.verb)}'` } });
      }
    } catch (err) {
      const error = err instanceof ContractError ? { code: err.code, message: err.message } : { code: 'TOOL_ERROR', message: 'the command failed' };
      frame = JSON.stringify({ type: 'result', command_id: msg.command_id, ok: false, error });
    }
    if (ws.readyState === ws.OPEN) ws.send(frame);
  }

  function schedule(reason: string, code?: number): void {
    if (closed) return;
    if (code !== undefined && FATAL_CLOSE.has(code)) {
      opts.log?.warn({ code, reason }, 'the manager refused this agent; not reconnecting');
      closed = true;
      return stop({ reason, code });
    }
    if (maxAttempts > 0 && attempt >= maxAttempts) {
      opts.log?.warn({ attempts: attempt }, 'gave up reconnecting to the manager');
      closed = true;
      return stop({ reason: `gave up after ${attempt} attempts`, code });
    }
    const delay = reconnectDelay(attempt++, base, maxDelay);
    retryTimer = setTimeout(() => void dial(), delay);
  }

  async function dial(): Promise<void> {
    if (closed) return;
    const { WebSocket } = await import('ws');
    const ws = new WebSocket(url, { handshakeTimeout: 10_000, maxPayload: 4 * 1024 * 1024 });
    socket = ws;
    let beat: NodeJS.Timeout | undefined;
    let tele: NodeJS.Timeout | undefined;
    let lastClose: { code: number; reason: string } | undefined;
    ws.on('open', () => {
      ws.send(JSON.stringify({ type: 'hello', agent_id: opts.agentId, site: opts.site, version: opts.version, capabilities: opts.capabilities, auth_token: opts.token }));
    });
    ws.on('message', (data) => {
      let msg: { type?: string; [k: string]: unknown };
      try {
        msg = JSON.parse(data.toString());
      } catch {
        return;
      }
      if (msg.type === 'welcome') {
        attempt = 0;
        connects++;
        connectionId = String(msg.connection_id);
        const hb = Math.max(1, Number(msg.heartbeat_interval_s) || 30) * 1000;
        const te = (opts.telemetryIntervalS ? opts.telemetryIntervalS * 1000 : hb);
        beat = setInterval(() => ws.readyState === ws.OPEN && ws.send('{"type":"heartbeat"}'), hb);
        tele = setInterval(() => void telemetry().then((t) => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ type: 'telemetry', telemetry: t }))), te);
        opts.log?.info({ connection: connectionId }, 'connected to the manager');
      } else if (msg.type === 'command' && typeof msg.command_id === 'string') {
        void answer(ws, msg as { command_id: string; verb: string; args?: Record<string, unknown> });
      }
    });
    ws.on('close', (code, reason) => (lastClose = { code, reason: reason.toString() }));
    ws.on('error', () => undefined);
    await new Promise<void>((r) => ws.once('close', () => r()));
    clearInterval(beat);
    clearInterval(tele);
    connectionId = undefined;
    if (socket === ws) socket = undefined;
    schedule(lastClose?.reason || 'connection lost', lastClose?.code);
  }

  void dial();
  return {
    get connectionId() {
      return connectionId;
    },
    get connects() {
      return connects;
    },
    stopped,
    async close() {
      if (!closed) {
        closed = true;
        stop({ reason: 'closed' });
      }
      clearTimeout(retryTimer);
      const s = socket;
      if (s && s.readyState !== s.CLOSED) {
        const gone = new Promise<void>((r) => s.once('close', () => r()));
        s.close(1000, 'agent stopping');
        await gone;
      }
    },
  };
}
