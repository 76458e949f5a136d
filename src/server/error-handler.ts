import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError, ErrorCodes, type ErrorCode } from '../errors.js';

/** Codes for fastify's own 4xx errors (bad JSON, body too large, ...), by status. */
const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'ROUTE_NOT_FOUND',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
};

/** The body and status the API answers for a thrown value (see installErrorHandler). */
export function errorReply(err: unknown): { status: number; code: string; message: string; hint?: string | undefined } {
  if (err instanceof AppError) return { status: err.httpStatus, code: err.code, message: err.message, hint: err.hint };
  const e = err as Partial<FastifyError>;
  if (e && e.validation) return { status: 400, code: 'BAD_REQUEST', message: e.message ?? 'invalid request' };
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) return { status, code: CODE_BY_STATUS[status] ?? 'BAD_REQUEST', message: e.message ?? 'bad request' };
  return { status: 500, code: 'INTERNAL', message: 'internal error' };
}

/**
 * The root error handler and not-found handler (style: fastify's lib/errors.js, one registry in
 * src/errors.ts). Answers `{"error": {"code", "message"[, "hint"]}}`:
 * - AppError: its code and httpStatus (deliberate: 401, 403, 404, 429, 503 AGENT_UNAVAILABLE, ...);
 *   its `retryAfterS` (seconds; rate limits, AGENT_UNAVAILABLE) becomes a Retry-After header;
 * - schema validation errors: 400 BAD_REQUEST with the validator's message;
 * - fastify's own 4xx (bad JSON, 413, 415): passed through with a code from the status;
 * - anything else: logged, and masked as 500 INTERNAL "internal error".
 */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const r = errorReply(err);
    if (r.status >= 500 && !(err instanceof AppError)) req.log.error({ err }, 'request failed');
    if (r.status === 401) reply.header('www-authenticate', 'Bearer realm="nexus-manager"');
    const retry = err instanceof AppError ? err.retryAfterS : undefined;
    if (typeof retry === 'number') reply.header('retry-after', String(Math.max(1, Math.ceil(retry))));
    return reply.code(r.status).send({ error: { code: r.code, message: r.message, ...(r.hint ? { hint: r.hint } : {}) } });
  });
  // unknown routes answer in the API's shape, without echoing the path
  app.setNotFoundHandler((_req, reply) => reply.code(ErrorCodes.ROUTE_NOT_FOUND.httpStatus).send({ error: { code: 'ROUTE_NOT_FOUND', message: 'no such route' } }));
}
