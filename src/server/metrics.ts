import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import { withErrors } from './schemas.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The manager's Prometheus registry: domain plugins (gateway, supervisor) add their own metrics to it. */
    metrics: Registry;
  }
}

/** Label of a request's route: the route pattern (`/api/v1/tokens/:jti`), never the raw URL, so cardinality stays bounded. */
const routeLabel = (url: string | undefined): string => url ?? '(unmatched)';

/**
 * Count and time every request on the root instance (call before any route is registered):
 * `nexus_manager_http_requests_total{method,route,status}` and
 * `nexus_manager_http_request_duration_seconds{method,route,status}` (seconds), plus the process
 * defaults (`nexus_manager_process_*`, `nexus_manager_nodejs_*`). One registry per app, so two
 * servers in one process do not share counters; decorated as `app.metrics`.
 */
export function instrument(app: FastifyInstance): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'nexus_manager_' });
  const labelNames = ['method', 'route', 'status'] as const;
  const requests = new Counter({ name: 'nexus_manager_http_requests_total', help: 'HTTP requests answered, by route pattern and status', labelNames, registers: [registry] });
  const duration = new Histogram({
    name: 'nexus_manager_http_request_duration_seconds',
    help: 'HTTP request duration in seconds, by route pattern and status',
    labelNames,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  app.decorate('metrics', registry);
  app.addHook('onResponse', async (req, reply) => {
    const labels = { method: req.method, route: routeLabel(req.routeOptions.url), status: String(reply.statusCode) };
    requests.inc(labels);
    duration.observe(labels, reply.elapsedTime / 1000);
  });
  app.addHook('onClose', async () => registry.clear());
  return registry;
}

/** `GET /metrics` in the Prometheus text format (viewer scope: register inside a protected instance). */
export async function metricsRoute(app: FastifyInstance): Promise<void> {
  app.get(
    '/metrics',
    {
      config: { scope: 'viewer' },
      schema: { summary: 'Prometheus metrics (text exposition format)', tags: ['system'], produces: ['text/plain'], response: withErrors({ 200: Type.String() }) },
    },
    async (_req, reply) => reply.type(app.metrics.contentType).send(await app.metrics.metrics()),
  );
}
