import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../errors.js';
import { emitterOf } from '../fleet/context.js';
import { findRecord } from '../fleet/replicas.js';
import { useCase, type UseCaseName } from '../fleet/usecases.js';
import { isAgentName, slugify } from '../names.js';
import type { RegisterOutcome, ListingSync } from '../fleet/marketplace.js';
import { HISTORY_EVENTS, type AgentRecord } from '../registry/registry.js';
import type { ManagerContext } from './manager.js';
import { ErrorBody, withErrors } from './schemas.js';

/**
 * What the registry keeps about an agent besides its desired state, for the dashboard's agent
 * view (issue 11 §3, §4), inside the protected /api/v1 scope:
 *
 * | route                              | scope  | answer                                                        |
 * |------------------------------------|--------|---------------------------------------------------------------|
 * | GET /agents/{name}/history         | viewer | {name, slug, history: [{event, at, status?, reason?}]}, oldest first (the registry's lifecycle history: created, started, stopped... and the supervisor's restarted, recovered, scaled...) |
 * | GET /agents/{name}/listing         | viewer | {name, slug, configured, listing: {id, url, status, registeredAt, pending?} or null} |
 * | POST /agents/{name}/register       | admin  | the `register` use case's result for this agent ({agents: [outcome], failed, listings?}) |
 * | POST /agents/{name}/unregister     | admin  | the `unregister` use case's result ({agents: [{name, removed}]}) |
 *
 * `configured` tells whether this manager has a marketplace (MARKETPLACE_URL and
 * MARKETPLACE_API_KEY); the API key is never shown. Register and unregister are thin shells over
 * the use cases of src/fleet/marketplace.ts (the CLI's `agent register` / `agent unregister`) and
 * publish a `fleet.agent` event with their outcome (phase `register` / `unregister`), so a page
 * following /agents/stream sees what followed.
 * @throws AppError AGENT_NOT_FOUND (404), NOT_REGISTERED (404, unregister of an agent never
 *   registered), CONFIG_INVALID (no marketplace configured), MARKETPLACE_* (502/503).
 */

const NameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100, description: "the agent's name or slug" }) });
const HistoryAnswer = Type.Object(
  {
    name: Type.String(),
    slug: Type.String(),
    history: Type.Array(
      Type.Object(
        {
          event: Type.Enum([...HISTORY_EVENTS]),
          at: Type.String({ format: 'date-time' }),
          status: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'the status recorded with a registry event' })),
          reason: Type.Optional(Type.String({ description: 'why (supervisor decisions), one line' })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
const ListingAnswer = Type.Object(
  {
    name: Type.String(),
    slug: Type.String(),
    configured: Type.Boolean({ description: 'this manager has a marketplace URL and API key' }),
    listing: Type.Union([
      Type.Object(
        {
          id: Type.String({ description: "the listing's id at the marketplace" }),
          url: Type.String({ description: 'the marketplace it is listed with' }),
          status: Type.Union([Type.Literal('available'), Type.Literal('unavailable')]),
          registeredAt: Type.String({ description: 'when the card was last sent (ISO-8601)' }),
          pending: Type.Optional(Type.String({ description: 'a listing change not made yet (marketplace unreachable): available, unavailable or unregister' })),
        },
        { additionalProperties: false },
      ),
      Type.Null(),
    ]),
  },
  { additionalProperties: false },
);
const Failure = Type.Object({ code: Type.String(), message: Type.String(), hint: Type.Optional(Type.String()) }, { additionalProperties: false });
const RegisterAnswer = Type.Object(
  {
    agents: Type.Array(
      Type.Object(
        {
          name: Type.String(),
          slug: Type.String(),
          outcome: Type.String({ description: 'created, updated, unchanged, refused (not healthy) or failed' }),
          api_endpoint: Type.String(),
          status: Type.Optional(Type.String()),
          id: Type.Optional(Type.String()),
          error: Type.Optional(Failure),
        },
        { additionalProperties: false },
      ),
    ),
    failed: Type.Integer(),
    listings: Type.Optional(Type.Array(Type.Object({ name: Type.String(), slug: Type.String(), change: Type.String(), outcome: Type.String(), status: Type.Optional(Type.String()), error: Type.Optional(Failure) }, { additionalProperties: false }))),
  },
  { additionalProperties: false },
);
const UnregisterAnswer = Type.Object({ agents: Type.Array(Type.Object({ name: Type.String(), removed: Type.Boolean() }, { additionalProperties: false })) }, { additionalProperties: false });
const Errors = { 404: ErrorBody, 409: ErrorBody, 502: ErrorBody, 503: ErrorBody };

/** The record of `name` (a name or slug) from the snapshot, else the registry. @throws AppError AGENT_NOT_FOUND */
async function recordOf(ctx: ManagerContext, name: string): Promise<AgentRecord> {
  const rec = findRecord((await ctx.snapshot.get()).records, name) ?? findRecord(await ctx.fleet.deps.registry.list(), name);
  if (!rec) throw new AppError('AGENT_NOT_FOUND', `no agent '${name}'`, { hint: 'list agents with GET /api/v1/agents' });
  return rec;
}

async function runUseCase<R>(ctx: ManagerContext, name: UseCaseName, input: Record<string, unknown>): Promise<R> {
  const uc = useCase(name)!;
  const parsed = uc.input().safeParse(input);
  if (!parsed.success) throw new AppError('BAD_REQUEST', `invalid ${name} input: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
  try {
    return (await uc.run(parsed.data, ctx.fleet.deps, { out: new Writable({ write: (_c, _e, cb) => cb() }), env: ctx.env })) as R;
  } finally {
    ctx.snapshot.invalidate();
  }
}

/**
 * The plugin for `ctx` (see the module docstring for routes, scopes and errors); createManager
 * registers it inside /api/v1.
 */
export function agentRecordsPlugin(ctx: ManagerContext) {
  return async function agentRecords(app: FastifyInstance): Promise<void> {
    const api = app.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['agents'];
    api.get(
      '/agents/:name/history',
      { config: { scope: 'viewer' }, schema: { summary: "An agent's lifecycle history from the registry, oldest first (kept after removal)", tags, params: NameParams, response: withErrors({ 200: HistoryAnswer, 404: ErrorBody }) } },
      async (req) => {
        const rec = await recordOf(ctx, req.params.name).catch(async (err: unknown) => {
          // a removed agent keeps its history: answer it when there is one
          const slug = isAgentName(req.params.name) ? slugify(req.params.name) : '';
          if (slug && (await ctx.fleet.deps.registry.history(slug)).length) return { name: req.params.name, slug };
          throw err;
        });
        const history = await ctx.fleet.deps.registry.history(rec.slug);
        return { name: rec.name, slug: rec.slug, history: history.map((h) => ({ event: h.event, at: h.at, ...(h.status !== undefined ? { status: h.status } : {}), ...(h.reason ? { reason: h.reason } : {}) })) };
      },
    );
    api.get(
      '/agents/:name/listing',
      { config: { scope: 'viewer' }, schema: { summary: "An agent's marketplace listing as recorded (listed available/unavailable, a pending change, or not listed)", tags, params: NameParams, response: withErrors({ 200: ListingAnswer, 404: ErrorBody }) } },
      async (req) => {
        const rec = await recordOf(ctx, req.params.name);
        const m = rec.marketplace;
        const configured = Boolean(ctx.fleet.deps.config.marketplace.url && ctx.fleet.deps.config.marketplace.apiKey);
        return { name: rec.name, slug: rec.slug, configured, listing: m ? { id: m.id, url: m.url, status: m.status, registeredAt: m.registeredAt, ...(m.pending ? { pending: m.pending } : {}) } : null };
      },
    );
    api.post(
      '/agents/:name/register',
      {
        config: { scope: 'admin' },
        schema: {
          summary: "List an agent's card with the marketplace (refused when it is not healthy, unless markUnavailable)",
          tags,
          params: NameParams,
          body: Type.Optional(Type.Object({ markUnavailable: Type.Optional(Type.Boolean({ description: 'list an agent that is not healthy as unavailable instead of refusing it' })) }, { additionalProperties: false })),
          response: withErrors({ 200: RegisterAnswer, ...Errors }),
        },
      },
      async (req) => {
        const rec = await recordOf(ctx, req.params.name);
        const r = await runUseCase<{ agents: RegisterOutcome[]; failed: number; listings?: ListingSync[] }>(ctx, 'register', { name: [rec.slug], markUnavailable: req.body?.markUnavailable ?? false });
        const one = r.agents[0];
        emitterOf(ctx.fleet.deps)({ kind: 'agent', agent: rec.slug, phase: 'register', outcome: one?.outcome ?? 'failed', ...(one?.error ? { message: one.error.message } : one?.status ? { message: `listed ${one.status}` } : {}) });
        return r;
      },
    );
    api.post(
      '/agents/:name/unregister',
      { config: { scope: 'admin' }, schema: { summary: "Remove an agent's listing from the marketplace", tags, params: NameParams, response: withErrors({ 200: UnregisterAnswer, ...Errors }) } },
      async (req) => {
        const rec = await recordOf(ctx, req.params.name);
        const r = await runUseCase<{ agents: { name: string; removed: boolean }[] }>(ctx, 'unregister', { name: [rec.slug] });
        emitterOf(ctx.fleet.deps)({ kind: 'agent', agent: rec.slug, phase: 'unregister', outcome: 'unregistered', message: r.agents[0]?.removed ? 'listing removed' : 'the marketplace had no listing' });
        return r;
      },
    );
  };
}
