import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../errors.js';
import { findRecord } from '../fleet/replicas.js';
import { PACKAGE_ROOT } from '../paths.js';
import type { ManagerContext } from './manager.js';
import { ErrorBody, withErrors } from './schemas.js';
import { listTokens } from './tokens.js';

/**
 * The dashboard (issue 11): its browser code lives in `dashboard/` and is bundled by esbuild
 * (dashboard/build.ts, run by scripts/build.ts, i.e. `npm ci` / `npm run build`) into
 * `dist/dashboard/`. Two plugins:
 * - `dashboardApi` (inside /api/v1): `GET /whoami` (what the page may enable) and
 *   `GET /agents/{name}/tools` (the tools' JSON Schemas, for the generated forms);
 * - `dashboardAssets` (at the root, unprotected: the page holds no data until signed in):
 *   `GET /` and `GET /assets/{file}`, every file read once at registration, served with its
 *   content type and a strict Content-Security-Policy (no inline script or style, nothing from
 *   another origin, no framing).
 */

/**
 * Where `npm run build` puts the dashboard's assets: `<package>/dist/dashboard`. From the bundled
 * CLI this module sits in dist/chunks/, where PACKAGE_ROOT resolves to dist/ itself, so the folder
 * holding a built app.js wins (the source folder dashboard/ never holds one).
 */
export const DASHBOARD_DIST = [join(PACKAGE_ROOT, 'dist', 'dashboard'), join(PACKAGE_ROOT, 'dashboard')].find((d) => existsSync(join(d, 'app.js'))) ?? join(PACKAGE_ROOT, 'dist', 'dashboard');

/**
 * The page's policy (CSP Level 3): scripts, styles, fetches and EventSource streams from the
 * manager itself only; `connect-src 'self'` covers the SSE stream on the same origin.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json; charset=utf-8',
};

const Scope = Type.Union([Type.Literal('viewer'), Type.Literal('operator'), Type.Literal('admin')]);
const WhoAmI = Type.Object(
  { scope: Scope, label: Type.Optional(Type.String()), expiresAt: Type.Optional(Type.String({ format: 'date-time' })) },
  { additionalProperties: false },
);
const Tool = Type.Object(
  { name: Type.String(), description: Type.String(), parameters: Type.Unknown({ description: "the tool's parameters as JSON Schema" }) },
  { additionalProperties: false },
);
const ToolsAnswer = Type.Object(
  {
    name: Type.String(),
    tools: Type.Array(Tool),
    version: Type.Optional(Type.String({ description: 'what the answering replica reports' })),
    uptimeS: Type.Optional(Type.Number({ description: "the answering replica's uptime, seconds" })),
  },
  { additionalProperties: false },
);

/** How long the manager waits for an agent's `/tools` and `/health`, ms. */
const AGENT_READ_TIMEOUT_MS = 3000;

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(AGENT_READ_TIMEOUT_MS) });
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  return res.json();
}

/**
 * The dashboard's API routes for `ctx` (register inside /api/v1; createManager does):
 * - `GET /whoami` (viewer) -> {scope, label?, expiresAt?}: the calling token's scope, and its
 *   label and expiry when it is a signed token (the bootstrap token has neither);
 * - `GET /agents/{name}/tools` (viewer) -> {name, tools: [{name, description, parameters}],
 *   version?, uptimeS?}, read from a replica in rotation (GET /tools and GET /health, 3 s each).
 * @throws AppError AGENT_NOT_FOUND (404), AGENT_UNAVAILABLE (503: no replica in rotation, or it did not answer).
 */
export function dashboardApi(ctx: ManagerContext) {
  return async function dashboard(app: FastifyInstance): Promise<void> {
    const api = app.withTypeProvider<TypeBoxTypeProvider>();
    api.get('/whoami', { config: { scope: 'viewer' }, schema: { summary: "The calling token's scope (what a client may enable)", tags: ['tokens'], response: withErrors({ 200: WhoAmI }) } }, async (req) => {
      const p = req.principal!;
      const info = (await listTokens({ workspace: ctx.config.workspace, clock: ctx.clock })).find((t) => t.jti === p.jti);
      return { scope: p.scope, ...(info?.label ? { label: info.label } : {}), ...(info ? { expiresAt: info.expiresAt } : {}) };
    });
    api.get(
      '/agents/:name/tools',
      {
        config: { scope: 'viewer' },
        schema: {
          summary: "An agent's tools with their parameters' JSON Schemas (asked of a replica in rotation)",
          tags: ['agents'],
          params: Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) }),
          response: withErrors({ 200: ToolsAnswer, 404: ErrorBody, 503: ErrorBody }),
        },
      },
      async (req) => {
        const rec = findRecord((await ctx.snapshot.get()).records, req.params.name) ?? findRecord(await ctx.fleet.deps.registry.list(), req.params.name);
        if (!rec) throw new AppError('AGENT_NOT_FOUND', `no agent '${req.params.name}'`, { hint: 'list agents with GET /api/v1/agents' });
        const replica = (await ctx.rotation.rotation(rec.slug)).find((r) => r.inRotation && r.url);
        const unavailable = (why: string) => new AppError('AGENT_UNAVAILABLE', `cannot read the tools of ${rec.name}: ${why}`, { hint: `start it (POST /api/v1/agents/${rec.slug}/start)`, retryAfterS: 5 });
        if (!replica) throw unavailable('no replica is in rotation');
        try {
          const [tools, health] = await Promise.all([getJson(`${replica.url}/tools`), getJson(`${replica.url}/health`).catch(() => ({}))]);
          const h = health as { version?: unknown; uptime_s?: unknown };
          return {
            name: rec.name,
            tools: ((tools as { tools?: unknown[] }).tools ?? []) as { name: string; description: string; parameters: unknown }[],
            ...(typeof h.version === 'string' ? { version: h.version } : {}),
            ...(typeof h.uptime_s === 'number' ? { uptimeS: h.uptime_s } : {}),
          };
        } catch (err) {
          throw unavailable(err instanceof Error ? err.message : 'no answer');
        }
      },
    );
  };
}

/**
 * The dashboard's assets from `dir` (default DASHBOARD_DIST), at the root: `GET /` (index.html)
 * and `GET /assets/{file}` for the files directly in `dir` (read once now: a request can only ever
 * name one of them, so no path from a URL reaches the file system). When `dir` holds no
 * index.html, `GET /` answers 503 DASHBOARD_NOT_BUILT with the command that builds it.
 */
export function dashboardAssets(dir: string = DASHBOARD_DIST) {
  return async function assets(app: FastifyInstance): Promise<void> {
    const files = new Map<string, { body: Buffer; type: string }>();
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const type = CONTENT_TYPES[extname(name)];
      if (type) files.set(name, { body: await readFile(join(dir, name)), type });
    }
    const send = (reply: FastifyReply, file: { body: Buffer; type: string }, cache: string) =>
      reply
        .type(file.type)
        .header('content-security-policy', DASHBOARD_CSP)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('cache-control', cache)
        .send(file.body);
    const schema = { hide: true, response: { 200: Type.String(), 404: ErrorBody, 503: ErrorBody } };
    app.get('/', { schema }, async (_req, reply) => {
      const index = files.get('index.html');
      if (!index) throw new AppError('DASHBOARD_NOT_BUILT', `the dashboard is not built (no index.html in ${dir})`, { hint: 'run `npm run build` (or `npm ci`, which builds it)' });
      return send(reply, index, 'no-cache');
    });
    app.get('/assets/:file', { schema: { ...schema, params: Type.Object({ file: Type.String({ maxLength: 100 }) }) } }, async (req, reply) => {
      const file = files.get((req.params as { file: string }).file);
      if (!file || (req.params as { file: string }).file === 'index.html') throw new AppError('ROUTE_NOT_FOUND', `no dashboard asset ${JSON.stringify((req.params as { file: string }).file)}`);
      return send(reply, file, 'no-cache');
    });
  };
}
