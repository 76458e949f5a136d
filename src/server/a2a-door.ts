/**
 * The manager as one A2A door (issue 12 §3): every agent's A2A 1.0 HTTP+JSON binding (A2A
 * specification sections 5.3, 11; the agent's own binding is src/runtime/a2a.ts) served by the
 * manager under `/a2a/{slug}`, each message's tool call routed through the gateway (healthy
 * replicas only, breakers, safe retries, the gateway's metrics and figures, as
 * `POST /api/v1/agents/{name}/execute`).
 *
 * Where tasks live: in the manager, not on a replica. The gateway's public API is one tool call
 * (`executeViaGateway`, the agent contract's POST /execute), so the manager runs the binding
 * itself (registerA2aRoutes, the same routes, task rules and errors as an agent) with the gateway
 * as the tool path, and keeps the tasks it made in one bounded store (A2aTaskStore, keyed by
 * slug). Get, list and cancel then never depend on the replica that ran a task still existing
 * (a scale-down, a rollout or a restart replaces replicas, and an agent's tasks die with its
 * process), and a list is one store rather than a merge of every replica's pages. Forwarding the
 * A2A routes to a replica instead would bypass the gateway's pools and breakers (it only speaks
 * /execute) and need the replica encoded in every task id. A cancel through the manager ends the
 * task and withdraws the gateway call; the agent sees its caller hang up and cancels the tool
 * (runtime/server.ts, TOOL_CANCELED), so the replica's worker is freed too. Costs: tasks sent to an
 * agent directly are not listed by the manager and the other way round; the store is in memory
 * (a manager restart forgets its tasks, as an agent restart forgets its own).
 *
 * Auth (the manager's tokens, auth.ts `protect`): `message:send` and `:cancel` need scope
 * operator, reads (`GET /tasks`, `GET /tasks/{id}`) viewer; every token of the workspace sees the
 * workspace's tasks (the manager's role-based model, as its tasks API; spec 13.1 leaves the model
 * to the implementer). The card `GET /a2a/{slug}/.well-known/agent-card.json` is public: A2A
 * clients discover the authentication scheme FROM the card before they hold credentials (spec 7.3,
 * 8.2), it holds no secret and is what the agent itself serves publicly, plus the manager's
 * bearer scheme (`securitySchemes`, `securityRequirements`, spec 4.4.1, 4.5.3).
 * Errors on the binding's routes are A2A status objects (google.rpc.Status with ErrorInfo
 * `reason` and `domain`): the manager's own (401 UNAUTHENTICATED with `WWW-Authenticate`, 403,
 * 429) with the project's code as reason and domain `nexus-delta.dev`; the gateway's
 * AGENT_UNAVAILABLE as 503 UNAVAILABLE with Retry-After.
 */
import { performance } from 'node:perf_hooks';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { AppError, type ErrorCode } from '../errors.js';
import type { AgentRecord } from '../registry/registry.js';
import { A2aError, A2aTaskStore, registerA2aRoutes, TaskFailure, type A2aOperation, type A2aTarget } from '../runtime/a2a.js';
import { buildA2aCard } from '../runtime/card.js';
import { ContractError, ERR, type ErrCode } from '../runtime/contract.js';
import { ToolResult } from '../runtime/invoke.js';
import type { ManagerContext } from './manager.js';
import { ErrorBody } from './schemas.js';

/** Where the manager serves an agent's A2A binding: `<base>/a2a/<slug>`. */
export const A2A_DOOR_PREFIX = '/a2a';
/** ErrorInfo domain of the manager's own errors (the agents use it too). */
const DOMAIN = 'nexus-delta.dev';
/** Card path under an interface URL (A2A spec 8.2). */
export const AGENT_CARD_PATH = '/.well-known/agent-card.json';

/** google.rpc status names by HTTP status (google/rpc/code.proto's HTTP mapping). */
const RPC_STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ABORTED',
  413: 'INVALID_ARGUMENT',
  415: 'INVALID_ARGUMENT',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

/** The manager's A2A URL for an agent: the card's interface URL (`<base>/a2a/<slug>`). */
export function managerA2aUrl(base: string, slug: string): string {
  return `${base}${A2A_DOOR_PREFIX}/${slug}`;
}

/**
 * An agent's A2A 1.0 card as the manager serves it: buildA2aCard over the record's tools with the
 * manager's URL as the interface, plus the manager's bearer scheme (A2A spec 4.4.1 AgentCard
 * `securitySchemes` / `securityRequirements`, 4.5.3 HTTPAuthSecurityScheme, ProtoJSON shapes as
 * in the spec's sample card 8.5). Pure.
 */
export function managerA2aCard(record: Pick<AgentRecord, 'name' | 'description' | 'version' | 'capabilities' | 'tools' | 'slug'>, base: string): Record<string, unknown> {
  return {
    ...buildA2aCard({ ...record, tools: record.tools ?? [] }, managerA2aUrl(base, record.slug)),
    securitySchemes: {
      bearer: {
        httpAuthSecurityScheme: {
          scheme: 'Bearer',
          bearerFormat: 'JWT',
          description: 'a Nexus Delta manager token (`agent token create`): scope viewer reads tasks, operator sends messages and cancels',
        },
      },
    },
    securityRequirements: [{ schemes: { bearer: { list: [] } } }],
  };
}

/**
 * The gateway's answer for one tool call as the binding's task outcome: 200 `{result}` is the
 * result; the agent's error answer (`{error: {code, message}}`) a ContractError when its code is
 * the contract's (so TOOL_NOT_FOUND and INVALID_PARAMETERS reject the task), else a TaskFailure.
 * Pure.
 * @throws ContractError, TaskFailure (never returns for a non-200 status).
 */
export function toolOutcome(status: number, body: unknown): ToolResult {
  if (status === 200 && body !== null && typeof body === 'object' && 'result' in body) {
    return new ToolResult(JSON.stringify((body as { result: unknown }).result ?? null));
  }
  const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof err?.code === 'string' ? err.code : `HTTP_${status}`;
  const message = typeof err?.message === 'string' ? err.message : typeof body === 'string' ? body.slice(0, 500) : 'the agent answered an error';
  if (Object.hasOwn(ERR, code)) throw new ContractError(code as ErrCode, message);
  throw new TaskFailure(code, message);
}

/**
 * A gateway AppError as the binding sees it: AGENT_UNAVAILABLE (nothing ran) is the A2A error 503
 * UNAVAILABLE with its Retry-After, AGENT_NOT_FOUND 404; AGENT_CALL_FAILED and AGENT_TIMEOUT (the
 * call may have reached the tool) fail the task with that code. Pure.
 */
export function gatewayFailure(err: AppError): A2aError | TaskFailure {
  if (err.code === 'AGENT_UNAVAILABLE') return new A2aError(503, 'UNAVAILABLE', err.code, err.message, DOMAIN, err.retryAfterS);
  if (err.code === 'AGENT_NOT_FOUND') return new A2aError(404, 'NOT_FOUND', err.code, err.message, DOMAIN);
  return new TaskFailure(err.code, err.message);
}

/** Any manager AppError (auth, scope, rate limit) as an A2A status object, reason = its code. Pure. */
export function appErrorToA2a(err: AppError): A2aError {
  return new A2aError(err.httpStatus, RPC_STATUS[err.httpStatus] ?? 'UNKNOWN', err.code, err.message, DOMAIN, err.retryAfterS);
}

export interface A2aDoorOptions {
  /** Tasks the door keeps, all agents together (default 5,000); older ones answer TASK_NOT_FOUND. */
  maxTasks?: number | undefined;
  /** ...and at most this much task JSON, characters (default 32 MiB worth: 32 * 2^20). */
  maxTaskChars?: number | undefined;
}

/** The door's state: its task store. One per manager; `close()` withdraws the calls in flight. */
export class A2aDoor {
  readonly store: A2aTaskStore;

  constructor(
    private readonly ctx: ManagerContext,
    opts: A2aDoorOptions = {},
  ) {
    this.store = new A2aTaskStore(opts.maxTasks ?? 5000, opts.maxTaskChars ?? 32 * 2 ** 20);
  }

  /**
   * The binding's target for `slug`: the recorded agent (its tools for text parts) and the gateway
   * as its tool path. @throws A2aError 404 AGENT_NOT_FOUND when no agent has that slug.
   */
  async target(slug: string): Promise<A2aTarget> {
    const rec = (await this.ctx.snapshot.get()).records.find((r) => r.slug === slug);
    if (!rec) throw new A2aError(404, 'NOT_FOUND', 'AGENT_NOT_FOUND', `no agent '${slug}'`, DOMAIN);
    return { key: rec.slug, tools: rec.tools ?? [], invokeTool: (tool, params, o) => this.call(rec.slug, tool, params, o?.signal) };
  }

  /** One tool call through the gateway, counted in the gateway's figures like the execute route. */
  private async call(slug: string, tool: string, params: unknown, signal: AbortSignal | undefined): Promise<ToolResult> {
    const started = performance.now();
    let answered = false;
    try {
      const r = await this.ctx.gateway.executeViaGateway(slug, { tool_name: tool, parameters: params as Record<string, unknown> }, signal ? { signal } : {});
      answered = true;
      return toolOutcome(r.status, r.body);
    } catch (err) {
      throw err instanceof AppError ? gatewayFailure(err) : err;
    } finally {
      this.ctx.figures.record(slug, performance.now() - started, answered, this.ctx.clock.now());
    }
  }

  /** Withdraw every call in flight (the manager is closing); their tasks end canceled. */
  close(): void {
    this.store.abortAll(new Error('manager closing'));
  }
}

/** Any body: the binding writes its own A2A shapes (the project's response-schema rule still holds). */
const ANY_RESPONSE = { '2xx': {}, '4xx': {}, '5xx': {} };

/** Scope per operation: sending and canceling act (operator), reads read (viewer). */
function routeOptions(op: A2aOperation): Record<string, unknown> {
  return {
    config: { scope: op === 'send' || op === 'cancel' ? 'operator' : 'viewer', limit: 'gateway' },
    schema: { hide: true, response: ANY_RESPONSE },
  };
}

/**
 * The door's binding routes, for the manager's protected root scope (buildServer
 * `plugins.protectedRoot`), under `/a2a/{slug}`: POST message:send, GET tasks/{id}, GET tasks,
 * POST tasks/{id}:cancel, and the unsupported streaming, push and extended-card operations
 * answered with the spec's errors (registerA2aRoutes). The gateway's rate-limit budget.
 */
export function a2aDoorPlugin(door: A2aDoor) {
  return async function a2aDoor(app: FastifyInstance): Promise<void> {
    app.addHook('preClose', async () => door.close());
    await app.register(
      async (scope) => {
        registerA2aRoutes(scope, {
          store: door.store,
          target: (req) => door.target((req.params as { slug: string }).slug),
          routeOptions,
          mapError: (err, reply) => {
            if (!(err instanceof AppError)) return undefined;
            if (err.httpStatus === 401) reply.header('www-authenticate', 'Bearer realm="nexus-manager"');
            return appErrorToA2a(err);
          },
        });
      },
      { prefix: `${A2A_DOOR_PREFIX}/:slug` },
    );
  };
}

/**
 * `GET /a2a/{slug}/.well-known/agent-card.json` (public, see the module docstring; 100 requests
 * per minute per client address): the agent's card with the manager's interface URL and bearer
 * scheme (managerA2aCard), the base URL being the request's (protocol and Host as the client
 * reached it). Cache-Control max-age 60 s (spec 8.6.1). 404 AGENT_NOT_FOUND in the project's
 * error shape (not an A2A operation: the agents' own card route answers that way too).
 */
export function a2aCardPlugin(ctx: ManagerContext) {
  return async function a2aCard(app: FastifyInstance): Promise<void> {
    app.get(
      `${A2A_DOOR_PREFIX}/:slug${AGENT_CARD_PATH}`,
      {
        config: { rateLimit: { max: 100, timeWindow: 60_000 } },
        schema: {
          summary: "An agent's A2A card with the manager's URL and bearer scheme (public)",
          tags: ['agents'],
          params: Type.Object({ slug: Type.String({ maxLength: 100 }) }),
          response: { 200: Type.Record(Type.String(), Type.Unknown()), 404: ErrorBody, 429: ErrorBody },
        },
      },
      async (req: FastifyRequest, reply: FastifyReply) => {
        const { slug } = req.params as { slug: string };
        const rec = (await ctx.snapshot.get()).records.find((r) => r.slug === slug);
        if (!rec) throw new AppError('AGENT_NOT_FOUND' satisfies ErrorCode, `no agent '${slug}'`, { hint: 'GET /.well-known/agents.json lists them' });
        reply.header('cache-control', 'max-age=60');
        return managerA2aCard(rec, `${req.protocol}://${req.host}`);
      },
    );
  };
}
