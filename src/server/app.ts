import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyServerOptions } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import websocket from '@fastify/websocket';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { DestinationStream } from 'pino';
import type { Clock } from '../clock.js';
import { createLimiters, DEFAULT_LIMITS, protect, tokenRoutes, type AuthContext, type RateLimits } from './auth.js';
import { installErrorHandler } from './error-handler.js';
import { instrument, metricsRoute } from './metrics.js';
import { healthRoute, openapiRoute } from './system.js';
import { TokenVerifier } from './tokens.js';

/** A domain plugin of the manager (agents, gateway, tasks, streams, dashboard, ...). */
export type ManagerPlugin = FastifyPluginAsync;

export interface ServerDeps {
  /** The workspace: the token key and lists live in `<workspace>/.nexus/`. */
  workspace: string;
  /** NEXUS_MANAGER_TOKEN (the bootstrap admin token), if set; at least 16 characters. */
  bootstrapToken?: string | undefined;
  /** Decides token expiry (default: the system clock). */
  clock?: Clock | undefined;
  /** Rate-limit budgets (requests per minute, per IP and per token); missing parts take DEFAULT_LIMITS. */
  limits?: Partial<RateLimits> | undefined;
  /** Request logs: pino level (default `info`) and destination; absent: no logging. The authorization header and cookies are always redacted. */
  log?: { level?: string; stream?: DestinationStream } | undefined;
  /**
   * Domain plugins, registered after the built-in ones:
   * - `api`: inside the protected `/api/v1` scope (token, per-IP and per-token limits, scope from
   *   each route's `config.scope`; routes are relative, e.g. `/agents`);
   * - `root`: at the root, unprotected (a dashboard's static assets, `/ws/agent` with its own auth);
   * - `protectedRoot`: at the root, protected exactly as `/api/v1` (token, limits, `config.scope`):
   *   the MCP door `/mcp` and `/.well-known/agents.json`.
   */
  plugins?: { api?: ManagerPlugin[]; root?: ManagerPlugin[]; protectedRoot?: ManagerPlugin[] } | undefined;
  /** Largest request body, bytes (default 1 MiB). */
  bodyLimit?: number | undefined;
}

export type ManagerApp = FastifyInstance & ReturnType<FastifyInstance['withTypeProvider']>;

/** Query parameters that may carry a token (SSE/WebSocket clients): their values never reach a log line. */
const SECRET_QUERY = /([?&](?:token|access_token)=)[^&#]*/gi;

function loggerOptions(log: ServerDeps['log']): FastifyServerOptions['logger'] {
  if (!log) return false;
  return {
    level: log.level ?? 'info',
    ...(log.stream ? { stream: log.stream } : {}),
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["proxy-authorization"]', 'res.headers["set-cookie"]'], censor: '[redacted]' },
    serializers: {
      req: (req: { method: string; url: string; headers: Record<string, unknown>; ip?: string }) => ({
        method: req.method,
        url: req.url.replace(SECRET_QUERY, '$1[redacted]'),
        headers: req.headers,
        remoteAddress: req.ip,
      }),
    },
  };
}

/**
 * The manager's HTTP app (issue 9 §1, §3), built and ready but never listening: `serveManager`
 * listens; tests use `app.inject()` or `app.listen({port: 0})`.
 *
 * Registration order (each domain is one plugin):
 * 1. root error and not-found handlers (`{"error": {"code", "message"}}`, src/errors.ts codes);
 *    a route without `schema.response` is refused at registration;
 * 2. @fastify/rate-limit (no global limit: the protected scopes spend budgets explicitly);
 * 3. @fastify/swagger (OpenAPI 3.1.0, bearer security);
 * 4. request metrics on every route (`app.metrics`, a prom-client Registry); @fastify/websocket
 *    (a GET route with `wsHandler` also answers WebSocket upgrades, after the same hooks);
 * 5. `GET /health` (public);
 * 6. `/api/v1` (protected, see auth.ts `protect`): `GET /openapi.json`, the token routes, then
 *    `deps.plugins.api` in order (agents, gateway, tasks, streams, ...);
 * 7. `GET /metrics` (protected, viewer), then `deps.plugins.protectedRoot` in order (MCP door, ...);
 * 8. `deps.plugins.root` in order (dashboard, ...).
 * Closing (`app.close()`) lets in-flight requests finish, answers new ones 503, and runs every
 * plugin's `onClose` hooks.
 * @throws AppError CONFIG_INVALID (short bootstrap token), MANAGER_KEY_INSECURE (key file not 0600).
 */
export async function buildServer(deps: ServerDeps): Promise<ManagerApp> {
  const app = Fastify({
    logger: loggerOptions(deps.log),
    bodyLimit: deps.bodyLimit ?? 1024 * 1024,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // unknown fields are refused (400), not silently dropped: a typo'd option must not pass as the default
    ajv: { customOptions: { removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  installErrorHandler(app);
  app.addHook('onRoute', (route) => {
    if (!route.schema?.response) throw new Error(`route ${route.method} ${route.url} declares no response schema (every manager route must)`);
  });
  app.decorateRequest('principal', null);
  // graceful close: a response finished while closing ends its keep-alive connection, so the
  // server's close does not wait for the client's idle timeout (new requests get 503 meanwhile)
  let closing = false;
  app.addHook('preClose', async () => void (closing = true));
  app.addHook('onSend', async (_req, reply) => void (closing && reply.header('connection', 'close')));

  await app.register(rateLimit, { global: false });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Nexus Delta manager', version: '1.0.0', description: 'The manager service of a workspace (`agent serve`).' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
  });
  instrument(app);
  // once, at the root, for every plugin (streams, /ws/agent): a second registration would add a
  // second `upgrade` listener and route each upgrade twice. On close, open sockets hear 1001
  // "going away" (RFC 6455 §7.4.1), not the plugin's code-less close.
  await app.register(websocket, {
    options: { maxPayload: deps.bodyLimit ?? 1024 * 1024 },
    preClose(done) {
      for (const client of this.websocketServer.clients) client.close(1001, 'manager shutting down');
      this.websocketServer.close();
      done();
    },
  });

  const verifier = new TokenVerifier(deps.workspace, { bootstrapToken: deps.bootstrapToken, clock: deps.clock });
  await verifier.init();
  const auth: AuthContext = { verifier, limiters: createLimiters(app, { ...DEFAULT_LIMITS, ...deps.limits }) };
  const tokenDeps = { workspace: deps.workspace, ...(deps.clock ? { clock: deps.clock } : {}) };

  await app.register(healthRoute);
  await app.register(
    async (api) => {
      protect(api, auth);
      await api.register(openapiRoute);
      await api.register(tokenRoutes(tokenDeps));
      for (const plugin of deps.plugins?.api ?? []) await api.register(plugin);
    },
    { prefix: '/api/v1' },
  );
  await app.register(async (scope) => {
    protect(scope, auth);
    await scope.register(metricsRoute);
    for (const plugin of deps.plugins?.protectedRoot ?? []) await scope.register(plugin);
  });
  for (const plugin of deps.plugins?.root ?? []) await app.register(plugin);
  await app.ready();
  return app as ManagerApp;
}
