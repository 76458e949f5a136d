/**
 * Commands (issue 10 §6): a verb sent to chosen agents (`agent_targets`) or to every agent with a
 * capability, fanned out, each target's result collected.
 *
 * Delivery per target: over the agent's connection (`/ws/agent`, connections.ts) when it has one;
 * else, for `execute`, over HTTP through the gateway when a replica is in rotation; else the target
 * waits (in memory) for the agent to connect and is sent then, or ends `expired` when the
 * command's `ttl_s` passes first. A connection lost before the result came back puts the target
 * back to waiting.
 *
 * Durability: with a store (command-store.ts; the manager's is `.nexus/commands.db`) every
 * command, target change and result is written through, so a manager restart (SIGKILL included)
 * reloads the commands still open: their targets wait for the agents to reconnect, or end
 * `expired` at the original `expires_at`. A target that was `sent` when the manager died gets
 * sent again once its agent is back (at-least-once: the agent may see it twice; the first answer
 * died with the manager). Memory holds at most MAX_COMMANDS (the oldest finished ones dropped
 * first); the store keeps the newest STORED_FINISHED finished ones, readable by id.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { isoNow, type Clock } from '../clock.js';
import { AppError, messageOf } from '../errors.js';
import { findRecord } from '../fleet/replicas.js';
import type { AgentRecord } from '../registry/registry.js';
import type { AgentConnections, AgentReply } from './connections.js';
import type { StreamEventInput } from './events-bus.js';
import type { ExecuteRequest, ExecuteResult } from './gateway/gateway.js';
import type { CommandStore } from './command-store.js';
import { ErrorBody, withErrors } from './schemas.js';

export const COMMAND_VERBS = ['execute', 'get_system_info', 'get_telemetry'] as const;
export type CommandVerb = (typeof COMMAND_VERBS)[number];
const PRIORITIES = ['high', 'normal', 'low'] as const;
type Priority = (typeof PRIORITIES)[number];
/** Commands kept in memory at most; past it the oldest finished one is dropped. */
export const MAX_COMMANDS = 1000;
/** Finished commands the store keeps (the oldest beyond it are deleted). */
export const STORED_FINISHED = 10_000;
/** Default and largest time a command waits for offline targets, seconds. */
export const DEFAULT_TTL_S = 60;
export const MAX_TTL_S = 3600;

export type TargetStatus = 'waiting' | 'sent' | 'succeeded' | 'failed' | 'expired';
export type CommandStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'partial' | 'expired';

export interface CommandTarget {
  agent: string;
  status: TargetStatus;
  via?: 'connection' | 'gateway' | undefined;
  connection_id?: string | undefined;
  result?: unknown;
  error?: { code: string; message: string } | undefined;
  sent_at?: string | undefined;
  finished_at?: string | undefined;
}

export interface CommandView {
  command_id: string;
  verb: CommandVerb;
  priority: Priority;
  status: CommandStatus;
  capability?: string | undefined;
  created_at: string;
  expires_at: string;
  targets: CommandTarget[];
}

const TargetSchema = Type.Object(
  {
    agent: Type.String(),
    status: Type.Enum(['waiting', 'sent', 'succeeded', 'failed', 'expired']),
    via: Type.Optional(Type.Enum(['connection', 'gateway'])),
    connection_id: Type.Optional(Type.String()),
    result: Type.Optional(Type.Unknown()),
    error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false })),
    sent_at: Type.Optional(Type.String()),
    finished_at: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
const CommandSchema = Type.Object(
  {
    command_id: Type.String(),
    verb: Type.Enum([...COMMAND_VERBS]),
    priority: Type.Enum([...PRIORITIES]),
    status: Type.Enum(['pending', 'running', 'succeeded', 'failed', 'partial', 'expired']),
    capability: Type.Optional(Type.String()),
    created_at: Type.String(),
    expires_at: Type.String(),
    targets: Type.Array(TargetSchema),
  },
  { additionalProperties: false, title: 'Command' },
);
export const CommandBody = Type.Object(
  {
    verb: Type.Enum([...COMMAND_VERBS]),
    args: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'execute: {tool_name, parameters}; the other verbs take none' })),
    agent_targets: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 500, uniqueItems: true })),
    capability: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_]{0,39}$' })),
    priority: Type.Optional(Type.Enum([...PRIORITIES])),
    ttl_s: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TTL_S, description: `how long offline targets are waited for, seconds (default ${DEFAULT_TTL_S})` })),
  },
  { additionalProperties: false },
);
export type CommandRequest = Static<typeof CommandBody>;

export interface CommandCenterDeps {
  connections: AgentConnections;
  /** Current records (the manager's snapshot). */
  records: () => Promise<readonly AgentRecord[]>;
  /** The gateway's execute, for `execute` to an agent without a connection; throws when no replica is in rotation. */
  execute: (agent: string, req: ExecuteRequest) => Promise<ExecuteResult>;
  publish: (ev: StreamEventInput) => void;
  clock: Clock;
  /** Where commands are written through (see the module docstring); none: memory only. */
  store?: CommandStore | undefined;
  /** Told when a store write fails (the command goes on in memory). */
  onStoreError?: ((err: unknown) => void) | undefined;
}

interface Entry {
  view: CommandView;
  args: Record<string, unknown>;
  seq: number;
  timer: NodeJS.Timeout;
}

const RANK: Record<Priority, number> = { high: 0, normal: 1, low: 2 };

/**
 * The commands of one manager, in memory. `submit` validates and resolves the targets (nothing is
 * sent when that fails), then delivers to each as the module docstring says.
 */
export class CommandCenter {
  private readonly commands = new Map<string, Entry>();
  private seq = 0;
  private readonly unlisten: () => void;

  constructor(private readonly deps: CommandCenterDeps) {
    this.unlisten = deps.connections.onOnline((slug) => this.flush(slug));
    if (deps.store) this.restore(deps.store);
  }

  /**
   * Reload the open commands of a previous run: `sent` targets go back to `waiting` (their answer
   * was lost with the old manager), expiry timers are re-armed for what is left of each command's
   * ttl (an overdue one expires now). `start()` then delivers the waiting targets.
   */
  private restore(store: CommandStore): void {
    this.seq = store.maxSeq();
    const now = this.deps.clock.now();
    for (const c of store.loadOpen()) {
      const entry: Entry = { view: c.view, args: c.args, seq: c.seq, timer: setTimeout(() => this.expire(entry), Math.max(0, Date.parse(c.view.expires_at) - now)) };
      entry.timer.unref();
      for (const t of c.view.targets) {
        if (t.status !== 'sent') continue;
        t.status = 'waiting';
        t.via = undefined;
        t.connection_id = undefined;
        t.sent_at = undefined;
        this.save(entry, t);
      }
      this.commands.set(c.view.command_id, entry);
      this.refresh(entry);
    }
  }

  /**
   * Deliver the targets restored from the store (high priority first, then oldest first): over a
   * connection when their agent is back, through the gateway for `execute`, else they keep
   * waiting. Call once the gateway is built (createManager does).
   */
  start(): void {
    for (const e of [...this.commands.values()].sort((a, b) => RANK[a.view.priority] - RANK[b.view.priority] || a.seq - b.seq)) {
      for (const t of e.view.targets) void this.deliver(e, t);
    }
  }

  /** Write a target (and the command's status) through to the store; a failed write is reported, not thrown. */
  private save(entry: Entry, t?: CommandTarget): void {
    const store = this.deps.store;
    if (!store) return;
    try {
      if (t) store.saveTarget(entry.view.command_id, t);
      store.saveStatus(entry.view.command_id, entry.view.status);
    } catch (err) {
      this.deps.onStoreError?.(err);
    }
  }

  /**
   * Accept a command and start delivering it.
   * @throws AppError BAD_REQUEST (neither or both of agent_targets and capability; execute without
   *   args.tool_name; arguments to a verb that takes none), AGENT_NOT_FOUND (a target is not an
   *   agent, or no agent has the capability).
   */
  async submit(req: CommandRequest): Promise<CommandView> {
    if ((req.agent_targets === undefined) === (req.capability === undefined)) {
      throw new AppError('BAD_REQUEST', 'give exactly one of agent_targets and capability', { hint: 'e.g. {"verb":"get_telemetry","agent_targets":["data-agent"]} or {"verb":"get_telemetry","capability":"data"}' });
    }
    const args = req.args ?? {};
    if (req.verb === 'execute') {
      if (typeof args.tool_name !== 'string' || !args.tool_name) throw new AppError('BAD_REQUEST', 'execute needs args.tool_name (a string)', { hint: 'e.g. {"verb":"execute","args":{"tool_name":"process_data","parameters":{"data":[1,2]}}, ...}' });
      if (args.parameters !== undefined && (typeof args.parameters !== 'object' || args.parameters === null || Array.isArray(args.parameters))) throw new AppError('BAD_REQUEST', 'args.parameters must be an object');
      const extra = Object.keys(args).filter((k) => k !== 'tool_name' && k !== 'parameters');
      if (extra.length) throw new AppError('BAD_REQUEST', `execute takes args tool_name and parameters only, not ${extra.join(', ')}`);
    } else if (Object.keys(args).length) {
      throw new AppError('BAD_REQUEST', `${req.verb} takes no args`);
    }
    const records = await this.deps.records();
    let slugs: string[];
    if (req.agent_targets) {
      slugs = req.agent_targets.map((name) => {
        const rec = findRecord(records, name);
        if (!rec) throw new AppError('AGENT_NOT_FOUND', `no agent '${name}'`, { hint: 'list agents with GET /api/v1/agents; nothing was sent' });
        return rec.slug;
      });
      slugs = [...new Set(slugs)];
    } else {
      const cap = req.capability!;
      slugs = [...new Set([...records.filter((r) => r.capabilities.includes(cap)).map((r) => r.slug), ...this.deps.connections.withCapability(cap)])].sort();
      if (!slugs.length) throw new AppError('AGENT_NOT_FOUND', `no agent has capability '${cap}'`, { hint: 'see the capabilities in GET /api/v1/agents; nothing was sent' });
    }
    const now = this.deps.clock.now();
    const ttlS = req.ttl_s ?? DEFAULT_TTL_S;
    const view: CommandView = {
      command_id: randomUUID(),
      verb: req.verb,
      priority: req.priority ?? 'normal',
      status: 'pending',
      ...(req.capability ? { capability: req.capability } : {}),
      created_at: new Date(now).toISOString(),
      expires_at: new Date(now + ttlS * 1000).toISOString(),
      targets: slugs.map((agent) => ({ agent, status: 'waiting' })),
    };
    const seq = ++this.seq;
    // written before anything is sent: a 202 means the command survives a manager restart
    this.deps.store?.insert({ view, args, seq });
    const entry: Entry = { view, args, seq, timer: setTimeout(() => this.expire(entry), ttlS * 1000) };
    entry.timer.unref();
    this.commands.set(view.command_id, entry);
    this.prune();
    this.publish(entry, 'command.accepted');
    for (const t of view.targets) void this.deliver(entry, t);
    return structuredClone(view);
  }

  /** A command's current view (from memory, else the store). @throws AppError COMMAND_NOT_FOUND. */
  get(id: string): CommandView {
    const e = this.commands.get(id);
    if (e) return structuredClone(e.view);
    const stored = this.deps.store?.get(id);
    if (stored) return stored.view;
    throw new AppError('COMMAND_NOT_FOUND', `no command '${id}'`, { hint: this.deps.store ? `the newest ${STORED_FINISHED} finished commands are kept` : 'commands are kept in memory: a manager restart forgets them' });
  }

  /** Stop the expiry timers (the app closes). Targets still waiting stay `waiting`. */
  close(): void {
    this.unlisten();
    for (const e of this.commands.values()) clearTimeout(e.timer);
  }

  private async deliver(entry: Entry, t: CommandTarget): Promise<void> {
    if (t.status !== 'waiting') return;
    const conn = this.deps.connections.connectionOf(t.agent);
    if (conn) {
      t.status = 'sent';
      t.via = 'connection';
      t.connection_id = conn.id;
      t.sent_at = isoNow(this.deps.clock);
      this.refresh(entry, t);
      let reply: AgentReply | undefined;
      try {
        reply = await this.deps.connections.request(t.agent, `${entry.view.command_id}:${t.agent}`, entry.view.verb, entry.args);
      } catch {
        reply = undefined;
      }
      if (t.status !== 'sent') return; // expired meanwhile
      if (!reply) {
        // the connection ended first: wait for the next one (or the expiry)
        t.status = 'waiting';
        this.refresh(entry, t);
        return;
      }
      return this.finish(entry, t, reply.ok ? { ok: true, result: reply.result } : { ok: false, error: reply.error });
    }
    if (entry.view.verb !== 'execute') return; // system info and telemetry come from a connection only
    t.status = 'sent';
    t.via = 'gateway';
    t.sent_at = isoNow(this.deps.clock);
    this.refresh(entry, t);
    try {
      const r = await this.deps.execute(t.agent, { tool_name: entry.args.tool_name as string, parameters: (entry.args.parameters as Record<string, unknown> | undefined) ?? {} });
      if (t.status !== 'sent') return;
      const body = r.body as { result?: unknown; error?: { code?: string; message?: string } } | undefined;
      if (r.status >= 200 && r.status < 300) this.finish(entry, t, { ok: true, result: body?.result ?? null });
      else this.finish(entry, t, { ok: false, error: { code: body?.error?.code ?? `HTTP_${r.status}`, message: body?.error?.message ?? `the agent answered ${r.status}` } });
    } catch (err) {
      if (t.status !== 'sent') return;
      if (err instanceof AppError && err.code === 'AGENT_UNAVAILABLE') {
        // no replica reachable over HTTP: wait for the agent's connection
        t.status = 'waiting';
        t.via = undefined;
        t.sent_at = undefined;
        this.refresh(entry, t);
        return;
      }
      this.finish(entry, t, { ok: false, error: { code: err instanceof AppError ? err.code : 'AGENT_CALL_FAILED', message: messageOf(err) } });
    }
  }

  /** An agent came online: send it its waiting targets, high priority first, then oldest first. */
  private flush(slug: string): void {
    const waiting = [...this.commands.values()]
      .filter((e) => e.view.targets.some((t) => t.agent === slug && t.status === 'waiting'))
      .sort((a, b) => RANK[a.view.priority] - RANK[b.view.priority] || a.seq - b.seq);
    for (const e of waiting) for (const t of e.view.targets) if (t.agent === slug) void this.deliver(e, t);
  }

  private finish(entry: Entry, t: CommandTarget, r: { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } }): void {
    t.status = r.ok ? 'succeeded' : 'failed';
    if (r.ok) t.result = r.result;
    else t.error = r.error;
    t.finished_at = isoNow(this.deps.clock);
    this.refresh(entry, t);
  }

  private expire(entry: Entry): void {
    for (const t of entry.view.targets) {
      if (t.status !== 'waiting' && t.status !== 'sent') continue;
      const what = t.status === 'sent' ? 'did not answer' : 'was not connected';
      t.status = 'expired';
      t.error = { code: 'COMMAND_EXPIRED', message: `agent ${t.agent} ${what} before the command expired (${entry.view.expires_at})` };
      t.finished_at = isoNow(this.deps.clock);
      this.save(entry, t);
    }
    this.refresh(entry);
  }

  /** Recompute the command's status from its targets (write `t`, the target that changed, and the status through); publish when it ends. */
  private refresh(entry: Entry, t?: CommandTarget): void {
    const before = entry.view.status;
    const ts = entry.view.targets.map((t) => t.status);
    const open = ts.some((s) => s === 'waiting' || s === 'sent');
    let status: CommandStatus;
    if (open) status = ts.some((s) => s !== 'waiting') ? 'running' : 'pending';
    else if (ts.every((s) => s === 'succeeded')) status = 'succeeded';
    else if (ts.every((s) => s === 'expired')) status = 'expired';
    else if (ts.every((s) => s === 'failed' || s === 'expired')) status = 'failed';
    else status = 'partial';
    entry.view.status = status;
    if (t || status !== before) this.save(entry, t);
    if (!open) clearTimeout(entry.timer);
    if (status !== before && !open) this.publish(entry, `command.${status}`);
  }

  private publish(entry: Entry, type: string): void {
    const v = entry.view;
    this.deps.publish({ type, topic: 'agents', data: { command_id: v.command_id, verb: v.verb, status: v.status, targets: v.targets.map((t) => ({ agent: t.agent, status: t.status })) } });
  }

  private prune(): void {
    if (this.deps.store && this.seq % 100 === 0) {
      try {
        this.deps.store.prune(STORED_FINISHED);
      } catch (err) {
        this.deps.onStoreError?.(err);
      }
    }
    if (this.commands.size <= MAX_COMMANDS) return;
    for (const [id, e] of this.commands) {
      if (this.commands.size <= MAX_COMMANDS) break;
      const finished = !e.view.targets.some((t) => t.status === 'waiting' || t.status === 'sent');
      if (finished) this.commands.delete(id);
    }
  }
}

/**
 * `POST /api/v1/commands` (operator) -> 202 the command (targets `waiting`/`sent`); `GET
 * /api/v1/commands/{id}` (viewer) -> its current view. An api plugin.
 */
export function commandRoutes(center: CommandCenter) {
  return async function commands(app: FastifyInstance): Promise<void> {
    const api = app.withTypeProvider<TypeBoxTypeProvider>();
    app.addHook('onClose', async () => center.close());
    api.post(
      '/commands',
      {
        config: { scope: 'operator' },
        schema: { summary: 'Send a command to chosen agents or to a capability; results are collected per target', tags: ['commands'], body: CommandBody, response: withErrors({ 202: CommandSchema, 404: ErrorBody }) },
      },
      async (req, reply) => reply.code(202).send(await center.submit(req.body)),
    );
    api.get(
      '/commands/:id',
      {
        config: { scope: 'viewer' },
        schema: { summary: "A command and each target's result", tags: ['commands'], params: Type.Object({ id: Type.String({ format: 'uuid' }) }), response: withErrors({ 200: CommandSchema, 404: ErrorBody }) },
      },
      async (req) => center.get(req.params.id),
    );
  };
}
