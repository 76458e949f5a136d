import { hostname } from 'node:os';
import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify';
import { Registry as MetricsRegistry, collectDefaultMetrics, Gauge } from 'prom-client';
import { buildA2aCard } from './card.js';
import { ContractError, ERR, MAX_JSON_DEPTH, nestsDeeperThan, type ErrCode } from './contract.js';
import type { AgentDefinition } from './define.js';
import { createToolInvoker, type ToolInvoker, type ToolRunnerOptions } from './invoke.js';

/** Default request body limit: 1 MiB. */
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;
/** Default limit of a tool's result: 4 MiB of JSON. */
export const DEFAULT_RESULT_LIMIT_BYTES = 4 * 1024 * 1024;
/**
 * Sampling interval of the event-loop delay histogram (ms). prom-client's default, 10 ms, woke an
 * idle agent 100 times a second (0.49% of a core); once a second costs about nothing.
 */
const EVENT_LOOP_SAMPLE_MS = 1000;

export interface ServerOptions {
  /** Maximum request body in bytes (413 above it). Default 1 MiB. */
  bodyLimitBytes?: number;
  /** Public URL for the A2A card; default: derived from the request's Host header. */
  publicUrl?: string | undefined;
  /** fastify logger setting: false, or a pino options object. */
  logger?: boolean | Record<string, unknown>;
  /** Collect Node process metrics (CPU, memory, event loop) for /metrics. Default true. */
  processMetrics?: boolean;
  /**
   * Where tool handlers run (see ToolRunnerOptions): give `modulePath` (runAgent does) to run them
   * in worker threads that can be stopped. Default: this thread, results up to 4 MiB.
   */
  tools?: Partial<ToolRunnerOptions>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The one path to run a tool call (/execute, and any other endpoint that calls tools). */
    invokeTool: ToolInvoker['invokeTool'];
  }
}

/**
 * Build (never listen) the agent's HTTP server implementing the agent contract (DESIGN.md):
 * GET /health, GET /tools, POST /execute, GET /metrics, GET /.well-known/agent-card.json.
 * Errors share one shape: `{"error": {"code", "message"}}`.
 * @throws Error when a tool's parameter schema does not compile.
 */
export async function buildServer(agent: AgentDefinition, opts: ServerOptions = {}): Promise<FastifyInstance> {
  const startedAt = Date.now();
  const metrics = new MetricsRegistry();
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: metrics, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
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
  const invoker = createToolInvoker(agent, { maxResultBytes: DEFAULT_RESULT_LIMIT_BYTES, ...opts.tools }, metrics, app.log);
  app.decorate('invokeTool', invoker.invokeTool);
  app.addHook('onClose', () => invoker.close());
  // every JSON body, whatever the route: V8 parses deep nesting fine, but what walks it next
  // (validation, copies to a worker, serialisers) recurses and overflowed the stack (500)
  app.addHook('preValidation', async (req) => {
    if (req.body !== null && typeof req.body === 'object' && nestsDeeperThan(req.body, MAX_JSON_DEPTH)) {
      throw new ContractError('INVALID_REQUEST', `body nests deeper than ${MAX_JSON_DEPTH} levels`);
    }
  });

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
    async (req, reply) => {
      const { tool_name: name, parameters = {} } = req.body;
      // drop the request's hold on the parsed body: a 1 MiB body can be 18 MB of objects
      (req as { body: unknown }).body = undefined;
      const { json } = await invoker.invokeTool(name, parameters);
      // the result is JSON text already (bounded in size): no second serialisation here
      return reply.type('application/json; charset=utf-8').send(`{"result":${json}}`);
    },
  );

  return app;
}
