import { hostname } from 'node:os';
import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify';
import { Registry as MetricsRegistry, collectDefaultMetrics, Gauge } from 'prom-client';
import { registerA2a } from './a2a.js';
import { buildA2aCard } from './card.js';
import { checkJsonCost, ContractError, ERR, type ErrCode } from './contract.js';
import type { AgentDefinition } from './define.js';
import { createToolInvoker, type InvokeTool, type ToolRunnerOptions } from './invoke.js';
import { registerMcp } from './mcp.js';

/** Default request body limit: 1 MiB. */
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;

/** Names of prom-client's event-loop delay metrics read from a sampling histogram (see processMetrics). */
const SAMPLED_LOOP_METRICS = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map((s) => `nodejs_eventloop_lag_${s}_seconds`);

/**
 * Node process metrics (CPU, memory, heap, GC, handles) on `metrics`, with no timer of their own:
 * prom-client's event-loop delay histogram samples on a timer (every 10 ms by default, 0.49% of a
 * core per idle agent, issue 14 §3). Its period is set to the largest a timer takes (24.8 days)
 * and its metrics removed; `nodejs_eventloop_lag_seconds`, measured when /metrics is scraped
 * (one setImmediate), stays.
 */
function processMetrics(metrics: MetricsRegistry): void {
  collectDefaultMetrics({ register: metrics, eventLoopMonitoringPrecision: 2 ** 31 - 1 });
  for (const name of SAMPLED_LOOP_METRICS) metrics.removeSingleMetric(name);
}

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
  /** Handed the server's invokeTool and metrics registry once built (runAgent: the manager link answers commands through them). */
  onInvoker?: (invokeTool: InvokeTool, metrics: MetricsRegistry) => void;
}

/**
 * Build (never listen) the agent's HTTP server implementing the agent contract (DESIGN.md):
 * GET /health, GET /tools, POST /execute, GET /metrics, GET /.well-known/agent-card.json; and the
 * same tools over A2A 1.0 HTTP+JSON (a2a.ts) and MCP streamable HTTP at /mcp (mcp.ts), every
 * call through one invokeTool (invoke.ts).
 * Errors share one shape: `{"error": {"code", "message"}}`.
 * @throws Error when a tool's parameter schema does not compile.
 */
export async function buildServer(agent: AgentDefinition, opts: ServerOptions = {}): Promise<FastifyInstance> {
  const startedAt = Date.now();
  const metrics = new MetricsRegistry();
  if (opts.processMetrics ?? true) processMetrics(metrics);
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
  // and: its cost is bounded before it is parsed (depth, number of objects and arrays)
  const json = app.getDefaultJsonParser('error', 'ignore');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    try {
      checkJsonCost(body as string);
    } catch (err) {
      return done(err as ContractError, undefined);
    }
    json(req, body as string, done);
  });
  const shutdown = new AbortController();
  app.addHook('onClose', async () => shutdown.abort());
  const invokeTool = createToolInvoker(agent, { ...opts.tools, metrics, shutdown: shutdown.signal, log: app.log });
  opts.onInvoker?.(invokeTool, metrics);

  app.setErrorHandler((err: FastifyError | ContractError, req, reply) => {
    if (err instanceof ContractError) {
      if (err.code === 'AGENT_BUSY') reply.header('retry-after', '1');
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
      // drop the request's hold on the parsed body while the call waits for its worker
      (req as { body: unknown }).body = undefined;
      // a caller that closes its connection before the answer withdraws the call (nginx's 499): the
      // tool's signal aborts and its worker is freed (a gateway call canceled or past its budget)
      const caller = new AbortController();
      const onClose = () => void (reply.raw.writableFinished || caller.abort());
      reply.raw.once('close', onClose);
      let result;
      try {
        result = await invokeTool(name, parameters, { signal: caller.signal });
      } finally {
        reply.raw.off('close', onClose);
      }
      // the result is JSON text already (bounded in size): no parse and second serialisation here
      return reply.type('application/json; charset=utf-8').send(`{"result":${result.json}}`);
    },
  );

  // the same tools over A2A (HTTP+JSON 1.0, what the card declares) and MCP (streamable HTTP)
  registerA2a(app, { agent, invokeTool });
  registerMcp(app, { agent, invokeTool, publicUrl: opts.publicUrl });

  return app;
}
