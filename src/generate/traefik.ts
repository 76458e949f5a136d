import { checkTarget, traefikString } from './escape.js';
import { AGENT_PORT, type AgentTarget, type ProductionOptions } from './model.js';

/** The Traefik rule routing an agent's path prefix, its argument backtick-quoted (traefikString). */
export function traefikRule(a: AgentTarget): string {
  return `PathPrefix(${traefikString(`${a.path}/`, `agent '${a.slug}' path`)})`;
}

/**
 * Traefik v3 dynamic configuration (file provider): per agent a router on PathPrefix
 * /agents/<slug>/, a strip-prefix middleware, and a load-balanced service with an active health
 * check on /health (unhealthy replicas leave the pool). Pure; serialise as YAML.
 * @throws AppError USAGE for a target whose slug/path cannot be expressed (checkTarget, traefikString).
 */
export function traefikDynamicConfig(agents: readonly AgentTarget[], o: ProductionOptions): Record<string, unknown> {
  const routers: Record<string, unknown> = {};
  const middlewares: Record<string, unknown> = {
    'nexus-body-limit': { buffering: { maxRequestBodyBytes: o.bodyLimitBytes } },
  };
  const services: Record<string, unknown> = {};
  for (const a of agents) {
    checkTarget('the Traefik configuration', a);
    const id = `nexus-${a.slug}`;
    routers[id] = { rule: traefikRule(a), entryPoints: ['web'], service: id, middlewares: [`${id}-strip`, 'nexus-body-limit'] };
    middlewares[`${id}-strip`] = { stripPrefix: { prefixes: [a.path] } };
    services[id] = {
      loadBalancer: {
        servers: [{ url: `http://${a.slug}:${AGENT_PORT}` }],
        healthCheck: { path: '/health', interval: '10s', timeout: '3s' },
        passHostHeader: true,
      },
    };
  }
  return { http: { routers, middlewares, services } };
}
