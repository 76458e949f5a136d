import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { withErrors } from './schemas.js';

/** `GET /health`: public liveness, `{status: "ok"}` and nothing else (no agent data, no version). */
export async function healthRoute(app: FastifyInstance): Promise<void> {
  app.get(
    '/health',
    { schema: { summary: 'Liveness of the manager (public)', tags: ['system'], security: [], response: { 200: Type.Object({ status: Type.Literal('ok') }, { additionalProperties: false }) } } },
    async () => ({ status: 'ok' as const }),
  );
}

/** `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route (viewer scope, like every /api/v1 route). */
export async function openapiRoute(app: FastifyInstance): Promise<void> {
  app.get(
    '/openapi.json',
    { config: { scope: 'viewer' }, schema: { hide: true, response: withErrors({ 200: Type.Object({}, { additionalProperties: true }) }) } },
    async () => app.swagger(),
  );
}
