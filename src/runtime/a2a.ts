/**
 * The A2A 1.0 HTTP+JSON binding of an agent (A2A specification sections 3, 5.3, 5.4 and 11;
 * a2aproject/A2A specification/a2a.proto): what the agent card's supportedInterfaces declares.
 *
 * A message runs one tool through the same path as POST /execute (invokeTool): its data part is
 * `{tool_name, parameters}`, or, when exactly one tool takes text (card.ts textTool), a text part
 * fills that tool's text parameter. Each message makes a task, kept in memory (the most recently
 * updated MAX_TASKS, within MAX_TASK_JSON_CHARS); the tool's result is the task's artifact, a data part.
 *
 * Written on fastify rather than with @a2a-js/sdk's server: the SDK serves HTTP+JSON only as an
 * express router (its RestTransportHandler is not exported), its InMemoryTaskStore never forgets
 * a task, and its server code is about 370 KB more in every agent's bundle; our agents have one
 * synchronous kind of work and no streaming or push, so the binding is these few routes.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { textTool, type CardSource } from './card.js';
import type { AgentDefinition } from './define.js';
import { checkJsonCost, ContractError, type ErrCode } from './contract.js';
import type { InvokeTool } from './invoke.js';

/** Tasks kept in memory: the most recently updated ones; older ones answer TASK_NOT_FOUND. */
export const MAX_TASKS = 1000;
/**
 * ...and at most this much task JSON (characters, about bytes): 1,000 tasks of 1 MiB requests
 * would not fit the agent's 128 MiB. The newest task is kept whatever its size.
 */
export const MAX_TASK_JSON_CHARS = 8 * 1024 * 1024;
const A2A_CONTENT_TYPE = 'application/a2a+json';
const A2A_DOMAIN = 'a2a-protocol.org';
const AGENT_DOMAIN = 'nexus-delta.dev';
const ERROR_INFO = 'type.googleapis.com/google.rpc.ErrorInfo';
const PAGE_SIZE = { default: 50, min: 1, max: 100 };

type TaskState =
  | 'TASK_STATE_SUBMITTED'
  | 'TASK_STATE_WORKING'
  | 'TASK_STATE_COMPLETED'
  | 'TASK_STATE_FAILED'
  | 'TASK_STATE_CANCELED'
  | 'TASK_STATE_REJECTED';
const TERMINAL = new Set<TaskState>(['TASK_STATE_COMPLETED', 'TASK_STATE_FAILED', 'TASK_STATE_CANCELED', 'TASK_STATE_REJECTED']);
const STATES = new Set<string>([...TERMINAL, 'TASK_STATE_SUBMITTED', 'TASK_STATE_WORKING', 'TASK_STATE_INPUT_REQUIRED', 'TASK_STATE_AUTH_REQUIRED']);

type Part = { text?: string; data?: unknown; url?: string; raw?: string; mediaType?: string; [k: string]: unknown };
interface Message {
  messageId: string;
  role: 'ROLE_USER' | 'ROLE_AGENT';
  parts: Part[];
  contextId?: string;
  taskId?: string;
  [k: string]: unknown;
}
interface Task {
  id: string;
  contextId: string;
  status: { state: TaskState; timestamp: string; message?: Message };
  artifacts?: { artifactId: string; name: string; parts: Part[] }[];
  history: Message[];
  metadata: { tool_name?: string };
}

/**
 * An A2A error (section 3.3.2) as the HTTP+JSON binding sends it (section 11.6): a
 * google.rpc.Status body whose ErrorInfo detail carries `reason` and `domain`.
 */
export class A2aError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly status: string,
    readonly reason: string,
    message: string,
    readonly domain: string = A2A_DOMAIN,
    /** Seconds after which a retry may succeed: sent as Retry-After (spec 3.3.2, system errors). */
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
  body(): Record<string, unknown> {
    return {
      error: {
        code: this.httpStatus,
        status: this.status,
        message: this.message,
        details: [{ '@type': ERROR_INFO, reason: this.reason, domain: this.domain }],
      },
    };
  }
}

// section 5.4: A2A error -> HTTP status, with the google.rpc status name
const taskNotFound = (id: string) => new A2aError(404, 'NOT_FOUND', 'TASK_NOT_FOUND', `task '${id}' does not exist or is no longer kept`);
const unsupported = (what: string) => new A2aError(400, 'FAILED_PRECONDITION', 'UNSUPPORTED_OPERATION', what);
const pushUnsupported = () =>
  new A2aError(400, 'FAILED_PRECONDITION', 'PUSH_NOTIFICATION_NOT_SUPPORTED', 'this agent does not support push notifications');
const invalid = (message: string) => new A2aError(400, 'INVALID_ARGUMENT', 'INVALID_PARAMS', message);

/** "1.0" and "1.0.x" are 1.0 (section 3.6: patch versions do not count); absent or empty is 0.3. */
function checkVersion(req: FastifyRequest): void {
  const header = req.headers['a2a-version'];
  const query = (req.query as Record<string, unknown> | undefined)?.['A2A-Version'];
  const asked = (typeof header === 'string' && header.trim()) || (typeof query === 'string' && query.trim()) || '0.3';
  if (!/^1\.0(\.\d+)?$/.test(asked)) {
    throw new A2aError(
      400,
      'FAILED_PRECONDITION',
      'VERSION_NOT_SUPPORTED',
      `A2A version '${asked}' is not supported; this agent serves 1.0 (send the header A2A-Version: 1.0)`,
    );
  }
}

/** A message from the agent about a task (a status message), with the given parts. */
function agentMessage(task: Pick<Task, 'id' | 'contextId'>, parts: Part[]): Message {
  return { messageId: randomUUID(), role: 'ROLE_AGENT', parts, taskId: task.id, contextId: task.contextId };
}

interface StoredTask {
  task: Task;
  /** The target the task belongs to (A2aTarget.key): other targets never see it. */
  key: string;
  seq: number;
  size: number;
  cancel?: AbortController | undefined;
}

/**
 * Bounded task store: a Map in least-recently-updated-first order, so eviction is O(1). Holds at
 * most `maxTasks` tasks and `maxChars` characters of task JSON (the newest task is kept whatever
 * its size); older ones answer TASK_NOT_FOUND. One per agent; the manager keeps one for the fleet.
 */
export class A2aTaskStore {
  private readonly tasks = new Map<string, StoredTask>();
  private seq = 0;
  private chars = 0;
  constructor(
    private readonly maxTasks: number = MAX_TASKS,
    private readonly maxChars: number = MAX_TASK_JSON_CHARS,
  ) {}

  /** Tasks kept now. */
  get size(): number {
    return this.tasks.size;
  }
  /** The task `id` of target `key`, if kept (another target's task is not found). */
  get(id: string, key: string): StoredTask | undefined {
    const e = this.tasks.get(id);
    return e && e.key === key ? e : undefined;
  }
  /** Insert (`isNew`) or update; the task moves to the newest end. Updates of evicted tasks are dropped. */
  put(task: Task, key: string, cancel?: AbortController, isNew = false): void {
    const prev = this.tasks.get(task.id);
    if (!prev && !isNew) return;
    if (prev) this.chars -= prev.size;
    this.tasks.delete(task.id);
    const size = JSON.stringify(task).length;
    this.chars += size;
    this.tasks.set(task.id, { task, key, seq: ++this.seq, size, cancel: cancel ?? prev?.cancel });
    while (this.tasks.size > this.maxTasks || (this.chars > this.maxChars && this.tasks.size > 1)) {
      const [oldest, entry] = this.tasks.entries().next().value!;
      this.chars -= entry.size;
      this.tasks.delete(oldest);
    }
  }
  /** Forget a task (its request failed before the caller learnt its id). */
  delete(id: string): void {
    const e = this.tasks.get(id);
    if (!e) return;
    this.chars -= e.size;
    this.tasks.delete(id);
  }
  /** Target `key`'s tasks, newest first. */
  *newestFirst(key: string) {
    const all = [...this.tasks.values()];
    for (let i = all.length - 1; i >= 0; i--) if (all[i]!.key === key) yield all[i]!;
  }
  /** Abort every call still running (the owner is closing); their tasks end as they do on cancel. */
  abortAll(reason?: unknown): void {
    for (const e of this.tasks.values()) if (!TERMINAL.has(e.task.status.state)) e.cancel?.abort(reason);
  }
}

/**
 * A tool call's failure that is not the agent contract's (ContractError), as a task ends with it:
 * e.g. the manager's AGENT_CALL_FAILED or AGENT_TIMEOUT. The task is FAILED with `{code, message}`
 * in its status message (REJECTED when `code` is TOOL_NOT_FOUND or INVALID_PARAMETERS).
 */
export class TaskFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** historyLength semantics (section 3.2.4): unset = all, 0 = none, n = the last n. */
function view(task: Task, opts: { historyLength?: number; artifacts?: boolean }): Task {
  const out: Task = { ...task };
  if (opts.historyLength !== undefined) out.history = opts.historyLength === 0 ? [] : task.history.slice(-opts.historyLength);
  if (opts.artifacts === false) delete out.artifacts;
  return out;
}

function intParam(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw invalid(`${name} must be an integer from ${min} to ${max}`);
  return n;
}

/** The tool call a message asks for: its `{tool_name, parameters}` data part, else its text. */
function callOf(message: Message, text: ReturnType<typeof textTool>): { tool: string; params: unknown } {
  for (const p of message.parts) {
    const d = p.data as { tool_name?: unknown; parameters?: unknown } | undefined;
    if (d && typeof d === 'object' && !Array.isArray(d) && 'tool_name' in d) {
      if (typeof d.tool_name !== 'string' || !d.tool_name) throw invalid('message.parts[].data.tool_name must be a non-empty string');
      if (d.parameters !== undefined && (typeof d.parameters !== 'object' || d.parameters === null || Array.isArray(d.parameters))) {
        throw invalid('message.parts[].data.parameters must be an object');
      }
      return { tool: d.tool_name, params: d.parameters ?? {} };
    }
  }
  const texts = message.parts.filter((p) => typeof p.text === 'string').map((p) => p.text!);
  if (texts.length > 0 && text) return { tool: text.tool, params: { [text.parameter]: texts.join('\n') } };
  if (message.parts.some((p) => 'url' in p || 'raw' in p) || (texts.length > 0 && !text)) {
    throw new A2aError(
      400,
      'INVALID_ARGUMENT',
      'CONTENT_TYPE_NOT_SUPPORTED',
      text
        ? 'this agent takes a data part {tool_name, parameters} or a text part; files are not supported'
        : 'this agent takes a data part {"tool_name": ..., "parameters": {...}}; text and files are not supported',
    );
  }
  throw invalid('message.parts must hold a data part {"tool_name": ..., "parameters": {...}}');
}

/** The checked SendMessageRequest.message (a2a.proto Message: messageId, role, parts required). */
function messageOf(body: unknown): Message {
  const m = (body as { message?: unknown } | null)?.message as Partial<Message> | undefined;
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw invalid('message is required');
  if (typeof m.messageId !== 'string' || !m.messageId) throw invalid('message.messageId is required');
  if (m.role !== 'ROLE_USER') throw invalid("message.role must be 'ROLE_USER'");
  if (!Array.isArray(m.parts) || m.parts.length === 0) throw invalid('message.parts must hold at least one part');
  if (m.parts.some((p) => !p || typeof p !== 'object' || Array.isArray(p))) throw invalid('message.parts[] must be objects');
  if (m.contextId !== undefined && typeof m.contextId !== 'string') throw invalid('message.contextId must be a string');
  return m as Message;
}

export interface A2aOptions {
  agent: AgentDefinition;
  invokeTool: InvokeTool;
}

/** What a request's messages run on. */
export interface A2aTarget {
  /** Tasks are kept per key: a request sees only its target's tasks ('' on an agent; the agent's slug on the manager). */
  key: string;
  /** The tools, for the text-part rule (card.ts textTool); an agent's definitions or a record's tools. */
  tools: CardSource['tools'];
  /**
   * Runs one tool call: resolves with its result, or throws ContractError / TaskFailure (the
   * task fails with that code) or A2aError (nothing ran: the request answers that error and the
   * task is forgotten; with returnImmediately the task fails with its reason as code).
   */
  invokeTool: InvokeTool;
}

/** The binding's operations, for per-route options (e.g. the manager's scopes). */
export type A2aOperation = 'send' | 'get' | 'list' | 'cancel' | 'unsupported';

export interface A2aRoutesOptions {
  /** The request's target; may throw an A2aError (the manager: NOT_FOUND for an unknown agent). */
  target: (req: FastifyRequest) => A2aTarget | Promise<A2aTarget>;
  /** Where tasks are kept (default: a new A2aTaskStore, MAX_TASKS and MAX_TASK_JSON_CHARS). */
  store?: A2aTaskStore | undefined;
  /** Route options merged into each route (the manager: `config.scope` and `schema.response`). */
  routeOptions?: ((op: A2aOperation) => Record<string, unknown>) | undefined;
  /**
   * An error the binding does not know (e.g. the manager's AppError from its auth hooks) as an
   * A2aError, setting any header it needs on `reply`; undefined: the binding's own mapping.
   */
  mapError?: ((err: unknown, reply: FastifyReply) => A2aError | undefined) | undefined;
}

/**
 * Register the A2A HTTP+JSON routes on `app` (in their own plugin scope, with A2A error bodies):
 * POST /message:send, GET /tasks/{id}, GET /tasks, POST /tasks/{id}:cancel; and, answered with
 * the spec's errors, POST /message:stream, /tasks/{id}:subscribe (UNSUPPORTED_OPERATION),
 * /tasks/{id}/pushNotificationConfigs[/{configId}] (PUSH_NOTIFICATION_NOT_SUPPORTED) and
 * GET /extendedAgentCard (UNSUPPORTED_OPERATION). Every route requires A2A-Version 1.0 (header or
 * query parameter). A tool's unknown name or invalid parameters make a REJECTED task, its
 * failure or timeout a FAILED one; the status message then holds `{error: {code, message}}`.
 */
export function registerA2a(app: FastifyInstance, opts: A2aOptions): void {
  const target: A2aTarget = { key: '', tools: opts.agent.tools, invokeTool: opts.invokeTool };
  registerA2aRoutes(app, { target: () => target });
}

/** Task state and status message of a failed call (REJECTED for the caller's mistakes). */
function failureOf(err: unknown): { code: string; message: string } {
  if (err instanceof ContractError || err instanceof TaskFailure) return { code: err.code, message: err.message };
  if (err instanceof A2aError) return { code: err.reason, message: err.message };
  return { code: 'INTERNAL' satisfies ErrCode, message: 'internal error' };
}

/**
 * The binding's routes over any targets (registerA2a: the agent itself; the manager: each agent
 * under `/a2a/{slug}`, src/server/a2a-door.ts). Same routes, errors and task rules as registerA2a.
 */
export function registerA2aRoutes(app: FastifyInstance, opts: A2aRoutesOptions): void {
  const store = opts.store ?? new A2aTaskStore();
  const texts = new WeakMap<CardSource['tools'], ReturnType<typeof textTool> | null>();
  const textOf = (tools: CardSource['tools']) => {
    let t = texts.get(tools);
    if (t === undefined) texts.set(tools, (t = textTool(tools) ?? null));
    return t ?? undefined;
  };
  const routeOpts = (op: A2aOperation) => opts.routeOptions?.(op) ?? {};

  /**
   * Run the call and settle the task. An A2aError (nothing ran) is rethrown when the caller waits
   * (`rethrow`): the request answers it and the task is forgotten.
   */
  async function run(task: Task, target: A2aTarget, tool: string, params: unknown, cancel: AbortController, rethrow: boolean): Promise<Task> {
    const update = (changes: Partial<Task>): Task => {
      const current = store.get(task.id, target.key)?.task ?? task;
      // a task canceled meanwhile keeps its terminal state
      if (TERMINAL.has(current.status.state)) return current;
      const next = { ...current, ...changes };
      store.put(next, target.key);
      return next;
    };
    try {
      const result = (await target.invokeTool(tool, params, { signal: cancel.signal })).value();
      return update({
        status: { state: 'TASK_STATE_COMPLETED', timestamp: new Date().toISOString() },
        artifacts: [{ artifactId: randomUUID(), name: tool, parts: [{ data: result, mediaType: 'application/json' }] }],
      });
    } catch (err) {
      if (rethrow && err instanceof A2aError && !TERMINAL.has(store.get(task.id, target.key)?.task.status.state ?? 'TASK_STATE_WORKING')) {
        store.delete(task.id);
        throw err;
      }
      const { code, message } = failureOf(err);
      const state: TaskState = code === 'TOOL_NOT_FOUND' || code === 'INVALID_PARAMETERS' ? 'TASK_STATE_REJECTED' : 'TASK_STATE_FAILED';
      return update({
        status: {
          state,
          timestamp: new Date().toISOString(),
          message: agentMessage(task, [{ text: `${code}: ${message}` }, { data: { error: { code, message } }, mediaType: 'application/json' }]),
        },
      });
    }
  }

  const send = (reply: FastifyReply, body: unknown) => reply.type(A2A_CONTENT_TYPE).send(body);

  app.register(async (scope) => {
    // section 11.1: application/a2a+json SHOULD be used for requests; application/json also works.
    // A body may be empty (the SDK's client POSTs :cancel with a JSON content type and no body).
    const json = scope.getDefaultJsonParser('error', 'ignore');
    scope.removeContentTypeParser('application/json');
    // the body's cost is bounded before it is parsed, as on every route (server.ts)
    scope.addContentTypeParser(['application/json', A2A_CONTENT_TYPE], { parseAs: 'string' }, (req, body, done) => {
      if (body === '') return done(null, undefined);
      try {
        checkJsonCost(body as string);
      } catch (err) {
        return done(err as ContractError, undefined);
      }
      json(req, body as string, done);
    });
    scope.addHook('onRequest', async (req) => checkVersion(req));
    scope.setErrorHandler((err: FastifyError | A2aError, req, reply) => {
      let e: A2aError;
      const mapped = err instanceof A2aError ? undefined : opts.mapError?.(err, reply);
      if (err instanceof A2aError) e = err;
      else if (mapped) e = mapped;
      else if (err.statusCode === 413) e = new A2aError(413, 'INVALID_ARGUMENT', 'PAYLOAD_TOO_LARGE', err.message, AGENT_DOMAIN);
      else if (err.statusCode === 415) e = new A2aError(400, 'INVALID_ARGUMENT', 'CONTENT_TYPE_NOT_SUPPORTED', `${err.message}; send application/a2a+json`);
      else if (err.statusCode && err.statusCode < 500) e = invalid(err.message);
      else {
        req.log.error({ err }, 'unhandled error');
        e = new A2aError(500, 'INTERNAL', 'INTERNAL', 'internal error', AGENT_DOMAIN);
      }
      if (e.retryAfterS !== undefined) reply.header('retry-after', String(Math.max(1, Math.ceil(e.retryAfterS))));
      return send(reply.code(e.httpStatus), e.body());
    });

    scope.post('/message::send', routeOpts('send'), async (req, reply) => {
      const message = messageOf(req.body);
      const config = ((req.body as { configuration?: unknown }).configuration ?? {}) as { returnImmediately?: unknown; historyLength?: unknown };
      const historyLength = intParam(config.historyLength, 'configuration.historyLength', 0, 2 ** 31 - 1);
      const target = await opts.target(req);
      if (message.taskId) {
        // one message per task: every task ends with its tool call, so none takes a follow-up
        const prev = store.get(message.taskId, target.key);
        if (!prev) throw taskNotFound(message.taskId);
        throw unsupported(`task '${message.taskId}' is ${prev.task.status.state}; send a new message without taskId`);
      }
      const { tool, params } = callOf(message, textOf(target.tools));
      const id = randomUUID();
      const contextId = message.contextId || randomUUID();
      const task: Task = {
        id,
        contextId,
        status: { state: 'TASK_STATE_WORKING', timestamp: new Date().toISOString() },
        history: [{ ...message, taskId: id, contextId }],
        metadata: { tool_name: tool },
      };
      const cancel = new AbortController();
      store.put(task, target.key, cancel, true);
      const immediate = config.returnImmediately === true;
      const done = run(task, target, tool, params, cancel, !immediate);
      const answer = immediate ? task : await done;
      return send(reply, { task: view(answer, { historyLength }) });
    });

    scope.get<{ Params: { id: string }; Querystring: Record<string, string> }>('/tasks/:id', routeOpts('get'), async (req, reply) => {
      if (req.params.id.endsWith(':subscribe')) throw unsupported('this agent does not support streaming (SubscribeToTask)');
      const { key } = await opts.target(req);
      const entry = store.get(req.params.id, key);
      if (!entry) throw taskNotFound(req.params.id);
      const historyLength = intParam(req.query.historyLength, 'historyLength', 0, 2 ** 31 - 1);
      return send(reply, view(entry.task, { historyLength }));
    });

    scope.post<{ Params: { id: string } }>('/tasks/:id', routeOpts('cancel'), async (req, reply) => {
      const [id, verb] = splitVerb(req.params.id);
      if (verb === 'subscribe') throw unsupported('this agent does not support streaming (SubscribeToTask)');
      if (verb !== 'cancel') return reply.callNotFound();
      const { key } = await opts.target(req);
      const entry = store.get(id, key);
      if (!entry) throw taskNotFound(id);
      if (TERMINAL.has(entry.task.status.state)) {
        throw new A2aError(400, 'FAILED_PRECONDITION', 'TASK_NOT_CANCELABLE', `task '${id}' is ${entry.task.status.state} and cannot be canceled`);
      }
      const canceled: Task = { ...entry.task, status: { state: 'TASK_STATE_CANCELED', timestamp: new Date().toISOString() } };
      store.put(canceled, key);
      entry.cancel?.abort();
      return send(reply, canceled);
    });

    scope.get<{ Querystring: Record<string, string> }>('/tasks', routeOpts('list'), async (req, reply) => {
      const q = req.query;
      const pageSize = intParam(q.pageSize, 'pageSize', PAGE_SIZE.min, PAGE_SIZE.max) ?? PAGE_SIZE.default;
      const historyLength = intParam(q.historyLength, 'historyLength', 0, 2 ** 31 - 1);
      if (q.status && !STATES.has(q.status)) throw invalid(`status must be one of ${[...STATES].join(', ')}`);
      const after = q.statusTimestampAfter ? Date.parse(q.statusTimestampAfter) : undefined;
      if (after !== undefined && Number.isNaN(after)) throw invalid('statusTimestampAfter must be an ISO 8601 timestamp');
      if (q.includeArtifacts && q.includeArtifacts !== 'true' && q.includeArtifacts !== 'false') throw invalid('includeArtifacts must be true or false');
      // the page token is the update sequence of the last task returned: later updates cannot shift pages
      let before = Infinity;
      if (q.pageToken) {
        before = Number(Buffer.from(q.pageToken, 'base64url').toString('utf8'));
        if (!Number.isSafeInteger(before) || before <= 0) throw invalid('pageToken is not one this agent gave');
      }
      const { key } = await opts.target(req);
      const matching = [...store.newestFirst(key)].filter(
        ({ task }) =>
          (!q.contextId || task.contextId === q.contextId) &&
          (!q.status || task.status.state === q.status) &&
          (after === undefined || Date.parse(task.status.timestamp) >= after),
      );
      const rest = matching.filter((e) => e.seq < before);
      const page = rest.slice(0, pageSize);
      const more = rest.length > page.length;
      return send(reply, {
        tasks: page.map((e) => view(e.task, { historyLength, artifacts: q.includeArtifacts === 'true' })),
        nextPageToken: more ? Buffer.from(String(page.at(-1)!.seq)).toString('base64url') : '',
        pageSize,
        totalSize: matching.length,
      });
    });

    scope.post('/message::stream', routeOpts('unsupported'), async () => {
      throw unsupported('this agent does not support streaming (SendStreamingMessage); use POST /message:send');
    });
    scope.get('/extendedAgentCard', routeOpts('unsupported'), async () => {
      throw unsupported('this agent has no extended agent card');
    });
    for (const path of ['/tasks/:id/pushNotificationConfigs', '/tasks/:id/pushNotificationConfigs/:configId']) {
      scope.route({ ...routeOpts('unsupported'), method: ['GET', 'POST', 'DELETE'], url: path, handler: async () => Promise.reject(pushUnsupported()) });
    }
  });
}

/** "abc:cancel" -> ["abc", "cancel"]; "abc" -> ["abc", undefined]. */
function splitVerb(segment: string): [string, string | undefined] {
  const i = segment.lastIndexOf(':');
  return i < 0 ? [segment, undefined] : [segment.slice(0, i), segment.slice(i + 1)];
}
