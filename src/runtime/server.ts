import { hostname } from 'node:os';
import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify';
import { Ajv, type ValidateFunction, type ErrorObject } from 'ajv';
import { Counter, Histogram, Registry as MetricsRegistry, collectDefaultMetrics, Gauge } from 'prom-client';
import { buildA2aCard } from './card.js';
import { ToolInputError, type AgentDefinition, type ToolDefinition } from './define.js';

/** Default request body limit: 1 MiB. */
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;
const DEFAULT_TOOL_TIMEOUT_MS = 30_000;

export interface ServerOptions {
  /** Maximum request body in bytes (413 above it). Default 1 MiB. */
  bodyLimitBytes?: number;
  /** Public URL for the A2A card; default: derived from the request's Host header. */
  publicUrl?: string | undefined;
  /** fastify logger setting: false, or a pino options object. */
  logger?: boolean | Record<string, unknown>;
  /** Collect Node process metrics (CPU, memory, event loop) for /metrics. Default true. */
  processMetrics?: boolean;
}

/** Error codes of the agent contract, with their HTTP status. */
const ERR = {
  TOOL_NOT_FOUND: 404,
  NOT_FOUND: 404,
  INVALID_PARAMETERS: 400,
  INVALID_REQUEST: 400,
  INVALID_JSON: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  PAYLOAD_TOO_LARGE: 413,
  TOOL_ERROR: 500,
  TOOL_TIMEOUT: 504,
  INTERNAL: 500,
  SHUTTING_DOWN: 503,
} as const;
type ErrCode = keyof typeof ERR;

class ContractError extends Error {
  constructor(
    readonly code: ErrCode,
    message: string,
  ) {
    super(message);
  }
}

/** "parameters.data must be array" from Ajv's first error. */
function describeAjvError(e: ErrorObject): string {
  const path = e.instancePath ? 'parameters' + e.instancePath.replace(/\//g, '.') : 'parameters';
  if (e.keyword === 'required') return `${path}.${(e.params as { missingProperty: string }).missingProperty} is required`;
  if (e.keyword === 'additionalProperties') {
    return `${path}.${(e.params as { additionalProperty: string }).additionalProperty} is not allowed`;
  }
  return `${path} ${e.message ?? 'is invalid'}`;
}

/**
 * Build (never listen) the agent's HTTP server implementing the agent contract (DESIGN.md):
 * GET /health, GET /tools, POST /execute, GET /metrics, GET /.well-known/agent-card.json.
 * Errors share one shape: `{"error": {"code", "message"}}`.
 * @throws Error when a tool's parameter schema does not compile.
 */
export async function buildServer(agent: AgentDefinition, opts: ServerOptions = {}): Promise<FastifyInstance> {
  const startedAt = Date.now();
  const ajv = new Ajv({ allErrors: false, strict: false, useDefaults: true, coerceTypes: false });
  const tools = new Map<string, { def: ToolDefinition; validate: ValidateFunction }>();
  for (const def of agent.tools) tools.set(def.name, { def, validate: ajv.compile(def.parameters) });

  const metrics = new MetricsRegistry();
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: metrics });
  const calls = new Counter({
    name: 'nexus_agent_tool_calls_total',
    help: 'Tool calls by tool and outcome (ok, invalid, error, timeout).',
    labelNames: ['tool', 'outcome'],
    registers: [metrics],
  });
  const duration = new Histogram({
    name: 'nexus_agent_tool_duration_seconds',
    help: 'Tool call duration in seconds.',
    labelNames: ['tool'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [metrics],
  });
  new Gauge({
    name: 'nexus_agent_uptime_seconds',
    help: 'Seconds since the agent started.',
    registers: [metrics],
    collect() {
      this.set((Date.now() - startedAt) / 1000);
    },
  });

  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    return503OnClosing: true,
    // request logs, minus the probes Docker and Prometheus make every few seconds
    logController: new LogController({ disableRequestLogging: (req) => req.url === '/health' || req.url === '/metrics' }),
  });
  // JSON only: anything else is 415, not a string body that fails later with a vague 400
  app.removeContentTypeParser('text/plain');
  const shutdown = new AbortController();
  app.addHook('onClose', async () => shutdown.abort());

  app.setErrorHandler((err: FastifyError | ContractError, req, reply) => {
    if (err instanceof ContractError) {
      return reply.code(ERR[err.code]).send({ error: { code: err.code, message: err.message } });
    }
    const status = err.statusCode ?? 500;
    let code: ErrCode = 'INTERNAL';
    let message = err.message;
    if (err.validation) {
      code = 'INVALID_REQUEST';
      message = `body${err.validation[0]?.instancePath.replace(/\//g, '.') ?? ''} ${err.validation[0]?.message ?? 'is invalid'}`;
    } else if (status === 413) code = 'PAYLOAD_TOO_LARGE';
    else if (status === 415) code = 'UNSUPPORTED_MEDIA_TYPE';
    else if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) code = 'INVALID_JSON';
    else if (status >= 400 && status < 500) code = 'INVALID_REQUEST';
    if (status >= 500) {
      req.log.error({ err }, 'unhandled error');
      message = 'internal error';
    }
    return reply.code(status >= 400 ? status : 500).send({ error: { code, message } });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` } });
  });

  const instance = hostname();
  app.get('/health', async () => ({
    status: 'healthy',
    agent: agent.name,
    version: agent.version,
    uptime_s: Math.round((Date.now() - startedAt) / 1000),
    // which replica answered (the container's hostname): shows load balancing behind a router
    instance,
  }));

  app.get('/tools', async () => ({
    tools: agent.tools.map((t) => ({ name: t.name, description: t.description, parameters: t.parameters })),
  }));

  app.get('/.well-known/agent-card.json', async (req) => {
    const url = opts.publicUrl ?? `${req.protocol}://${req.host}`;
    return buildA2aCard(agent, url);
  });

  app.get('/metrics', async (_req, reply) => {
    reply.type(metrics.contentType);
    return metrics.metrics();
  });

  app.post<{ Body: { tool_name: string; parameters?: Record<string, unknown> } }>(
    '/execute',
    {
      schema: {
        body: {
          type: 'object',
          required: ['tool_name'],
          properties: { tool_name: { type: 'string', minLength: 1 }, parameters: { type: 'object' } },
        },
      },
    },
    async (req) => {
      const { tool_name: name } = req.body;
      const tool = tools.get(name);
      if (!tool) {
        calls.inc({ tool: 'unknown', outcome: 'invalid' });
        throw new ContractError('TOOL_NOT_FOUND', `unknown tool '${name}'; this agent has: ${[...tools.keys()].join(', ')}`);
      }
      const params = structuredClone(req.body.parameters ?? {});
      if (!tool.validate(params)) {
        calls.inc({ tool: name, outcome: 'invalid' });
        throw new ContractError('INVALID_PARAMETERS', describeAjvError(tool.validate.errors![0]!));
      }
      const timeoutMs = tool.def.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
      const signal = AbortSignal.any([shutdown.signal, AbortSignal.timeout(timeoutMs)]);
      const end = duration.startTimer({ tool: name });
      try {
        const result = await Promise.race([
          Promise.resolve().then(() => tool.def.handler(params, { signal })),
          new Promise<never>((_, reject) =>
            signal.addEventListener('abort', () => reject(new ContractError('TOOL_TIMEOUT', `tool '${name}' took longer than ${timeoutMs} ms`)), {
              once: true,
            }),
          ),
        ]);
        calls.inc({ tool: name, outcome: 'ok' });
        return { result: result ?? null };
      } catch (err) {
        if (err instanceof ContractError) {
          calls.inc({ tool: name, outcome: 'timeout' });
          throw err;
        }
        if (err instanceof ToolInputError) {
          calls.inc({ tool: name, outcome: 'invalid' });
          throw new ContractError('INVALID_PARAMETERS', err.message);
        }
        calls.inc({ tool: name, outcome: 'error' });
        req.log.warn({ tool: name, err }, 'tool failed');
        throw new ContractError('TOOL_ERROR', err instanceof Error ? err.message : String(err));
      } finally {
        end();
      }
    },
  );

  return app;
}
