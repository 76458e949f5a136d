import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../errors.js';
import { ErrorBody, withErrors } from './schemas.js';
import { createToken, listTokens, revokeToken, SCOPES, scopeAllows, type Principal, type Scope, type TokenDeps, type TokenVerifier } from './tokens.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The weakest scope that may call this route. A protected route without one is refused to everyone (403). */
    scope?: Scope;
    /** Which rate-limit budget the route spends (default `api`; the gateway's execute route uses `gateway`). */
    limit?: LimitClass;
    /**
     * Also accept the token as `?token=` when no Authorization header is sent (the stream routes:
     * browsers cannot set headers on EventSource or WebSocket). Off by default: a URL may end up
     * in proxy logs (the manager's own log lines redact it, app.ts).
     */
    queryToken?: boolean;
  }
  interface FastifyRequest {
    /** Who sent the request, set by the auth hook on protected routes. */
    principal: Principal | null;
  }
}

/** Rate-limit budgets, requests per minute, each counted per client IP and per token. */
export interface RateLimits {
  /** The management API (everything under /api/v1 but the gateway). */
  api: { perMinute: number };
  /** The gateway (`POST /api/v1/agents/{name}/execute`, routes with `config.limit: 'gateway'`). */
  gateway: { perMinute: number };
}
export type LimitClass = keyof RateLimits;

/**
 * Defaults: 100 requests/min per IP for the management API (the seed's figure), the same per
 * token; the gateway carries tool traffic, so it gets 1200/min (20/s) per IP and per token.
 */
export const DEFAULT_LIMITS: RateLimits = { api: { perMinute: 100 }, gateway: { perMinute: 1200 } };

type Limiter = (req: FastifyRequest) => Promise<{ isAllowed: true } | { isAllowed: false; isExceeded: boolean; ttlInSeconds: number; max: number; remaining: number }>;

/** What the auth hooks need: the token verifier and one limiter per budget and key kind. */
export interface AuthContext {
  verifier: TokenVerifier;
  limiters: Record<LimitClass, { ip: Limiter; token: Limiter }>;
}

/**
 * Build the limiters on an app where @fastify/rate-limit is registered (`global: false`): one
 * counter store per budget and key kind (client IP, token jti). Window: one minute.
 */
export function createLimiters(app: FastifyInstance, limits: RateLimits): AuthContext['limiters'] {
  const make = (cls: LimitClass, kind: 'ip' | 'token'): Limiter =>
    app.createRateLimit({
      max: limits[cls].perMinute,
      timeWindow: 60_000,
      keyGenerator: (req) => (kind === 'ip' ? `ip:${req.ip}` : `jti:${req.principal?.jti ?? ''}`),
    }) as Limiter;
  return { api: { ip: make('api', 'ip'), token: make('api', 'token') }, gateway: { ip: make('gateway', 'ip'), token: make('gateway', 'token') } };
}

async function spend(limiter: Limiter, req: FastifyRequest, reply: FastifyReply, what: string): Promise<void> {
  const r = await limiter(req);
  if (r.isAllowed) return;
  reply.header('x-ratelimit-limit', r.max).header('x-ratelimit-remaining', r.remaining).header('x-ratelimit-reset', r.ttlInSeconds);
  if (r.isExceeded) {
    throw new AppError('RATE_LIMITED', `rate limit of ${r.max} requests per minute per ${what} exceeded`, {
      hint: `retry after ${r.ttlInSeconds} s`,
      retryAfterS: r.ttlInSeconds,
    });
  }
}

/** The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1), or '' when absent or malformed. */
export function bearerToken(header: string | undefined): string {
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header ?? '');
  return m ? m[1]! : '';
}

/** The request's token: the bearer header, else `?token=` on routes with `config.queryToken`, else ''. */
function requestToken(req: FastifyRequest): string {
  const header = bearerToken(req.headers.authorization);
  if (header || !req.routeOptions.config.queryToken) return header;
  const q = (req.query as Record<string, unknown> | undefined)?.token;
  return typeof q === 'string' ? bearerToken(`Bearer ${q}`) : '';
}

/**
 * Protect every route of an encapsulated plugin instance (never by URL: the hooks run for
 * whatever path spelling the router matched to these routes). In order, as onRequest hooks:
 * 1. the per-IP limit (before the token check, so guessing tokens is limited too);
 * 2. the token (header, or `?token=` where the route allows it): 401 UNAUTHORIZED with `WWW-Authenticate: Bearer` when missing, bad, expired or revoked;
 * 3. the per-token limit (429 RATE_LIMITED with Retry-After);
 * 4. the scope: 403 FORBIDDEN when the token's scope is weaker than the route's `config.scope`,
 *    or when the route declares no scope at all (default deny).
 */
export function protect(scope: FastifyInstance, ctx: AuthContext): void {
  const budget = (req: FastifyRequest) => ctx.limiters[req.routeOptions.config.limit ?? 'api'];
  scope.addHook('onRequest', async (req, reply) => spend(budget(req).ip, req, reply, 'client address'));
  scope.addHook('onRequest', async (req) => {
    req.principal = await ctx.verifier.verify(requestToken(req));
  });
  scope.addHook('onRequest', async (req, reply) => spend(budget(req).token, req, reply, 'token'));
  scope.addHook('onRequest', async (req) => {
    const need = req.routeOptions.config.scope;
    const have = req.principal?.scope;
    if (!need) throw new AppError('FORBIDDEN', 'this route declares no scope, so nobody may call it', { hint: 'a bug in the manager: please report it' });
    if (!have || !scopeAllows(have, need)) throw new AppError('FORBIDDEN', `this route needs scope ${need}`, { hint: `ask an admin for a ${need} token (\`agent token create --scope ${need}\`)` });
  });
}

const ScopeSchema = Type.Enum([...SCOPES]);
const CreatedTokenSchema = Type.Object({ token: Type.String(), jti: Type.String(), scope: ScopeSchema, expiresAt: Type.String({ format: 'date-time' }) }, { additionalProperties: false });
const TokenInfoSchema = Type.Object(
  {
    jti: Type.String(),
    scope: ScopeSchema,
    label: Type.Optional(Type.String()),
    sub: Type.Optional(Type.String()),
    issuedAt: Type.String({ format: 'date-time' }),
    expiresAt: Type.String({ format: 'date-time' }),
    revoked: Type.Boolean(),
  },
  { additionalProperties: false },
);

/**
 * Token administration (admin scope), registered inside the protected /api/v1 scope:
 * `POST /tokens` {scope, ttl?, label?, sub?} -> 201 {token, jti, scope, expiresAt} (the only
 * response that ever holds a token: the new one, once); `GET /tokens` -> {tokens: [...]} without
 * tokens; `DELETE /tokens/{jti}` -> {jti, alreadyRevoked}.
 */
export function tokenRoutes(deps: TokenDeps) {
  return async function tokens(app: FastifyInstance): Promise<void> {
    const api = app.withTypeProvider<TypeBoxTypeProvider>();
    api.post(
      '/tokens',
      {
        config: { scope: 'admin' },
        schema: {
          summary: 'Mint a signed token',
          tags: ['tokens'],
          body: Type.Object(
            {
              scope: ScopeSchema,
              ttl: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,6}[smhd]$', description: 'lifetime, e.g. 30m, 24h, 7d (at most 365d)' })),
              label: Type.Optional(Type.String({ maxLength: 100 })),
              sub: Type.Optional(Type.String({ maxLength: 100 })),
            },
            { additionalProperties: false },
          ),
          response: withErrors({ 201: CreatedTokenSchema }),
        },
      },
      async (req, reply) => reply.code(201).send(await createToken(req.body, deps)),
    );
    api.get(
      '/tokens',
      { config: { scope: 'admin' }, schema: { summary: 'List live tokens (never the tokens themselves)', tags: ['tokens'], response: withErrors({ 200: Type.Object({ tokens: Type.Array(TokenInfoSchema) }, { additionalProperties: false }) }) } },
      async () => ({ tokens: await listTokens(deps) }),
    );
    api.delete(
      '/tokens/:jti',
      {
        config: { scope: 'admin' },
        schema: {
          summary: 'Revoke a token',
          tags: ['tokens'],
          params: Type.Object({ jti: Type.String({ pattern: '^[A-Za-z0-9-]{1,64}$' }) }),
          response: withErrors({ 200: Type.Object({ jti: Type.String(), alreadyRevoked: Type.Boolean() }, { additionalProperties: false }), 404: ErrorBody }),
        },
      },
      async (req) => revokeToken({ jti: req.params.jti }, deps),
    );
  };
}
