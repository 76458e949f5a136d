import { Type, type TSchema } from 'typebox';

/**
 * Shared TypeBox schemas of the manager API. Every route declares its request and response
 * schemas (buildServer refuses a route without `schema.response`): responses are serialised
 * from them, so a field a handler did not mean to expose is never sent.
 */

/** The one error shape of the API: `{"error": {"code", "message"}}` (codes: src/errors.ts). */
export const ErrorBody = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String(), hint: Type.Optional(Type.String()) }, { additionalProperties: false }) },
  { additionalProperties: false, title: 'Error' },
);

/**
 * A route's response map plus the errors every /api/v1 route can answer: 400 (validation),
 * 401 (token), 403 (scope), 429 (rate limit), 500 (masked internal error).
 */
export function withErrors<R extends Record<number, TSchema>>(responses: R): R & Record<400 | 401 | 403 | 429 | 500, typeof ErrorBody> {
  return { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 429: ErrorBody, 500: ErrorBody, ...responses };
}
