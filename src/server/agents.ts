import { PassThrough, Writable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type TSchema } from 'typebox';
import type { ContainerStats } from '../engine/engine.js';
import { AppError } from '../errors.js';
import type { AgentRow } from '../fleet/list.js';
import { findRecord, type ReplicaView } from '../fleet/replicas.js';
import { useCase, type UseCaseName } from '../fleet/usecases.js';
import type { ManagerContext } from './manager.js';
import { ErrorBody, withErrors } from './schemas.js';

/**
 * The agents plugin (issue 9 §2), inside the protected /api/v1 scope. Each route is a thin shell
 * over a use case of the table (src/fleet/usecases.ts): it validates the request (TypeBox), runs
 * the use case with the manager's fleet deps, and answers the use case's result through a
 * response schema. `{name}` is an agent's name or slug.
 *
 * Scopes: viewer reads (GET); operator starts, stops, restarts, scales and executes; admin creates
 * and deletes. Timing: `start`, `restart` and `scale` build images when the source changed and
 * wait for health (up to `start.healthTimeoutS`, default 60 s, plus the build): the route answers
 * when the use case is done, so clients must allow minutes (curl has no timeout by default; the
 * manager sets none). Their result reports per agent `outcome` (`failed` with the error and last
 * log lines), with HTTP 200: the request was carried out; the agent's fate is in the body.
 */

const Name = Type.String({ minLength: 1, maxLength: 100, description: "the agent's name or slug" });
const NameParams = Type.Object({ name: Name });
const Health = Type.Union([Type.Literal('healthy'), Type.Literal('unhealthy'), Type.Literal('-')]);

const Stats = Type.Object(
  { cpuPercent: Type.Number({ description: 'percent of one core' }), memoryBytes: Type.Integer(), memoryLimitBytes: Type.Integer() },
  { additionalProperties: false },
);
const Replica = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    replica: Type.Integer({ minimum: 0 }),
    url: Type.String(),
    state: Type.String(),
    health: Type.String({ description: "Docker's HEALTHCHECK: starting, healthy, unhealthy or none" }),
    inRotation: Type.Boolean(),
    stats: Type.Optional(Stats),
  },
  { additionalProperties: false },
);
const Agent = Type.Object(
  {
    name: Type.String(),
    slug: Type.String(),
    port: Type.Integer(),
    url: Type.String(),
    capabilities: Type.Array(Type.String()),
    category: Type.String(),
    status: Type.String({ description: 'recorded status' }),
    desired: Type.String({ description: 'running or stopped' }),
    container: Type.String({ description: "the primary container's state, or none" }),
    health: Health,
    tools: Type.Array(Type.String()),
    image: Type.Optional(Type.String()),
    version: Type.Optional(Type.String({ description: 'recorded version (semver)' })),
    replicas: Type.Array(Replica),
    inRotation: Type.Integer({ description: 'replicas the gateway may call' }),
    stats: Type.Optional(Stats),
  },
  { additionalProperties: false },
);
const StatsQuery = Type.Object({ stats: Type.Boolean({ default: true, description: 'sample CPU and memory (about 1 s)' }) }, { additionalProperties: false });

/** Errors the agents routes answer besides withErrors' (404 AGENT_NOT_FOUND, 409 conflicts, 502/503 engine or agent trouble). */
const AgentErrors = { 404: ErrorBody, 409: ErrorBody, 502: ErrorBody, 503: ErrorBody };
const StartOutcome = Type.Object(
  {
    name: Type.String(),
    slug: Type.String(),
    port: Type.Integer(),
    url: Type.String(),
    outcome: Type.String({ description: 'started, recreated, restarted, unchanged or failed' }),
    imageBuilt: Type.Boolean(),
    containerId: Type.Optional(Type.String()),
    error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String(), hint: Type.Optional(Type.String()) })),
    logs: Type.Optional(Type.String({ description: 'last log lines of an agent that did not become healthy' })),
  },
  { additionalProperties: false },
);
const StartResult = Type.Object({ agents: Type.Array(StartOutcome), ok: Type.Integer(), failed: Type.Integer() }, { additionalProperties: false });
const StopResult = Type.Object({ agents: Type.Array(Type.Object({ name: Type.String(), slug: Type.String(), removed: Type.Integer() }, { additionalProperties: false })) }, { additionalProperties: false });
const CreateBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, description: 'e.g. DataAgent (slug data-agent)' }),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    capabilities: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 60 }), { maxItems: 20 })),
    description: Type.Optional(Type.String({ maxLength: 500 })),
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    version: Type.Optional(Type.String({ minLength: 1, maxLength: 40, description: 'semver, default 0.1.0' })),
  },
  { additionalProperties: false },
);
const CreateResult = Type.Object(
  {
    agent: Type.Object(
      { name: Type.String(), slug: Type.String(), port: Type.Integer(), capabilities: Type.Array(Type.String()), category: Type.String(), model: Type.String(), version: Type.String(), description: Type.String(), desired: Type.String(), status: Type.String() },
      { additionalProperties: false },
    ),
    tools: Type.Array(Type.String()),
    url: Type.String(),
    agentToken: Type.String({ description: 'the connection token for /ws/agent (NEXUS_AGENT_TOKEN), shown once; the registry keeps only its sha256' }),
  },
  { additionalProperties: false },
);
const RemoveResult = Type.Object(
  { name: Type.String(), slug: Type.String(), port: Type.Integer(), purged: Type.Boolean(), recordKept: Type.Boolean({ description: 'true while a marketplace listing could not be removed' }) },
  { additionalProperties: false },
);
const ScaleResult = Type.Object({ name: Type.String(), replicas: Type.Integer(), containers: Type.Array(Type.String()), url: Type.String({ description: 'the local nginx router URL of the agent' }) }, { additionalProperties: false });
const RolloutResult = Type.Object(
  {
    name: Type.String(),
    from: Type.String({ description: 'version before' }),
    to: Type.String({ description: 'version now serving' }),
    generation: Type.Integer({ description: 'rollout generation of the serving containers' }),
    image: Type.Object({ ref: Type.String(), id: Type.String() }, { additionalProperties: false }),
    containers: Type.Array(Type.String()),
    drained: Type.Array(Type.String()),
    url: Type.String({ description: 'the local nginx router URL of the agent' }),
  },
  { additionalProperties: false },
);
const RolloutBody = Type.Object(
  {
    version: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: "version to record (default: the manifest's)" })),
    routerPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'host port of the local router (default 8088)' })),
    healthTimeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 600, description: 'seconds for the new replicas to pass their health checks' })),
  },
  { additionalProperties: false },
);
const ExecuteBody = Type.Object(
  { tool_name: Type.String({ minLength: 1, maxLength: 200 }), parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())) },
  { additionalProperties: false },
);
const ToolAnswer = Type.Object({ result: Type.Unknown() }, { additionalProperties: false, description: "the tool's answer, as the agent sent it" });
const Figures = Type.Object(
  {
    agent: Type.String(),
    calls: Type.Integer(),
    errors: Type.Integer(),
    throughputPerS: Type.Number(),
    latencyMs: Type.Object({ p50: Type.Number(), p95: Type.Number(), p99: Type.Number(), max: Type.Number() }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

/** Run use case `name` of the table with `input` (validated by its zod schema) on the manager's fleet. */
async function run<R>(ctx: ManagerContext, name: UseCaseName, input: Record<string, unknown>, io: { out?: NodeJS.WritableStream; signal?: AbortSignal } = {}): Promise<R> {
  const uc = useCase(name)!;
  const parsed = uc.input().safeParse(input);
  if (!parsed.success) throw new AppError('BAD_REQUEST', `invalid ${name} input: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
  try {
    return (await uc.run(parsed.data, ctx.fleet.deps, { out: io.out ?? discard(), signal: io.signal, env: ctx.env })) as R;
  } finally {
    // what runs changed (or may have): the next gateway call and listing see it at once
    ctx.snapshot.invalidate();
  }
}

const discard = () => new Writable({ write: (_c, _e, cb) => cb() });

/** CPU and memory of each running container (in parallel; a failed sample is left out). */
async function sampleStats(ctx: ManagerContext, ids: string[]): Promise<Map<string, ContainerStats>> {
  const out = new Map<string, ContainerStats>();
  await Promise.all(ids.map(async (id) => ctx.fleet.deps.engine.containerStats(id).then((s) => void out.set(id, s), () => undefined)));
  return out;
}

const sum = (list: ContainerStats[]): ContainerStats | undefined =>
  list.length ? list.reduce((a, s) => ({ cpuPercent: Math.round((a.cpuPercent + s.cpuPercent) * 100) / 100, memoryBytes: a.memoryBytes + s.memoryBytes, memoryLimitBytes: a.memoryLimitBytes + s.memoryLimitBytes })) : undefined;

/** The `list` use case's rows with each agent's replicas (rotation) and, when asked, their CPU and memory. */
async function describeAgents(ctx: ManagerContext, withStats: boolean) {
  const listed = await run<{ agents: AgentRow[] }>(ctx, 'list', {});
  const views = new Map<string, ReplicaView[]>();
  await Promise.all(listed.agents.map(async (a) => views.set(a.slug, await ctx.rotation.rotation(a.slug))));
  const running = [...views.values()].flat().filter((v) => v.state === 'running').map((v) => v.id);
  const stats = withStats ? await sampleStats(ctx, running) : new Map<string, ContainerStats>();
  const versions = new Map((await ctx.snapshot.get()).records.map((r) => [r.slug, r.version]));
  return listed.agents.map((a) => {
    const replicas = (views.get(a.slug) ?? []).map((v) => ({ ...v, ...(stats.has(v.id) ? { stats: stats.get(v.id) } : {}) }));
    const total = sum(replicas.flatMap((r) => (r.stats ? [r.stats] : [])));
    const version = versions.get(a.slug);
    return { ...a, ...(version ? { version } : {}), replicas, inRotation: replicas.filter((r) => r.inRotation).length, ...(total ? { stats: total } : {}) };
  });
}

async function oneAgent(ctx: ManagerContext, name: string, withStats: boolean) {
  const rec = findRecord((await ctx.snapshot.get()).records, name) ?? findRecord(await ctx.fleet.deps.registry.list(), name);
  const agents = rec ? await describeAgents(ctx, withStats) : [];
  const found = agents.find((a) => a.slug === rec?.slug);
  if (!found) throw new AppError('AGENT_NOT_FOUND', `no agent '${name}'`, { hint: 'list agents with GET /api/v1/agents' });
  return found;
}

/** Stream an agent's logs as text/plain until the client disconnects, the container ends, or `ctx.logsFollowMaxS` passes. */
async function followLogs(ctx: ManagerContext, name: string, tail: number, reply: FastifyReply): Promise<FastifyReply> {
  // resolve the agent and its container first, so a bad name answers 404 in the API's shape
  await (await import('../fleet/logs.js')).findContainer(ctx.fleet.deps, name);
  const out = new PassThrough();
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), ctx.logsFollowMaxS * 1000);
  reply.raw.on('close', () => stop.abort());
  void run(ctx, 'logs', { name, tail, follow: true }, { out, signal: stop.signal })
    .catch((err: unknown) => out.write(`\n[logs ended: ${err instanceof AppError ? err.message : 'error'}]\n`))
    .finally(() => {
      clearTimeout(timer);
      out.end();
    });
  return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(out);
}

/**
 * The agents plugin for `ctx` (see the module docstring for the routes, scopes and timing).
 * @returns a ManagerPlugin to register inside /api/v1 (createManager does).
 */
export function agentsPlugin(ctx: ManagerContext) {
  return async function agents(app: FastifyInstance): Promise<void> {
    const api = app.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['agents'];
    const s = <R extends Record<number, TSchema>>(summary: string, responses: R) => ({ summary, tags, response: withErrors({ ...AgentErrors, ...responses }) });

    api.get('/agents', { config: { scope: 'viewer' }, schema: { ...s('Agents: record, live state, health, replicas, CPU and memory', { 200: Type.Object({ agents: Type.Array(Agent) }, { additionalProperties: false }) }), querystring: StatsQuery } }, async (req) => ({
      agents: await describeAgents(ctx, req.query.stats),
    }));

    api.get(
      '/agents/health',
      {
        config: { scope: 'viewer' },
        schema: s('Health of every agent: GET /health now, and replicas in rotation', {
          200: Type.Object(
            {
              healthy: Type.Integer(),
              total: Type.Integer(),
              agents: Type.Array(Type.Object({ name: Type.String(), slug: Type.String(), health: Health, container: Type.String(), replicas: Type.Integer(), inRotation: Type.Integer() }, { additionalProperties: false })),
            },
            { additionalProperties: false },
          ),
        }),
      },
      async () => {
        const list = await describeAgents(ctx, false);
        const agents = list.map((a) => ({ name: a.name, slug: a.slug, health: a.health, container: a.container, replicas: a.replicas.length, inRotation: a.inRotation }));
        return { healthy: agents.filter((a) => a.health === 'healthy').length, total: agents.length, agents };
      },
    );

    api.get('/agents/:name', { config: { scope: 'viewer' }, schema: { ...s('One agent', { 200: Agent }), params: NameParams, querystring: StatsQuery } }, async (req) => oneAgent(ctx, req.params.name, req.query.stats));

    const create = async (body: { name: string; port?: number | undefined; capabilities?: string[] | undefined; description?: string | undefined; model?: string | undefined; version?: string | undefined }, reply: FastifyReply) => {
      const r = await run<{ agent: Record<string, unknown>; tools: string[]; url: string }>(ctx, 'create', { ...body, agentVersion: body.version });
      return reply.code(201).send(r);
    };
    const createSchema = (summary: string, extra = {}) => ({ config: { scope: 'admin' as const }, schema: { ...s(summary, { 201: CreateResult }), body: CreateBody, ...extra } });
    api.post('/agents', createSchema('Create an agent (scaffold its source, reserve its port)'), async (req, reply) => create(req.body, reply));
    api.post('/agents/register', createSchema('Create an agent (the seed API\'s name for POST /agents)', { deprecated: true }), async (req, reply) => create(req.body, reply));

    api.delete(
      '/agents/:name',
      { config: { scope: 'admin' }, schema: { ...s('Remove an agent: containers, image, record', { 200: RemoveResult }), params: NameParams, querystring: Type.Object({ purge: Type.Boolean({ default: false, description: 'also delete agents/<slug>/' }) }, { additionalProperties: false }) } },
      async (req) => run(ctx, 'remove', { name: req.params.name, purge: req.query.purge }),
    );

    const Timeout = Type.Object({ timeout: Type.Optional(Type.Integer({ minimum: 0, maximum: 300, description: 'seconds between SIGTERM and SIGKILL (default 10)' })) }, { additionalProperties: false });
    api.post('/agents/:name/start', { config: { scope: 'operator' }, schema: { ...s('Start an agent (builds its image when the source changed; waits for health)', { 200: StartResult }), params: NameParams } }, async (req) =>
      run(ctx, 'start', { name: [req.params.name] }),
    );
    api.post('/agents/:name/stop', { config: { scope: 'operator' }, schema: { ...s('Stop an agent (SIGTERM, in-flight calls finish) and remove its containers', { 200: StopResult }), params: NameParams, querystring: Timeout } }, async (req) =>
      run(ctx, 'stop', { name: [req.params.name], timeout: req.query.timeout ?? 10 }),
    );
    api.post('/agents/:name/restart', { config: { scope: 'operator' }, schema: { ...s('Stop then start an agent (ships source changes)', { 200: StartResult }), params: NameParams, querystring: Timeout } }, async (req) =>
      run(ctx, 'restart', { name: [req.params.name], timeout: req.query.timeout ?? 10 }),
    );
    api.post(
      '/agents/:name/scale',
      {
        config: { scope: 'operator' },
        schema: {
          ...s('Run N replicas of an agent (the gateway balances over them; a local nginx router too)', { 200: ScaleResult }),
          params: NameParams,
          body: Type.Object({ replicas: Type.Integer({ minimum: 1, maximum: 50 }), routerPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'host port of the local router (default 8088)' })) }, { additionalProperties: false }),
        },
      },
      async (req) => run(ctx, 'scale', { name: req.params.name, replicas: req.body.replicas, routerPort: req.body.routerPort }),
    );
    api.post(
      '/agents/:name/rollout',
      {
        config: { scope: 'operator' },
        schema: {
          ...s("Roll the agent's current source out beside the running version, shift traffic once healthy, drain the old; 502 ROLLOUT_UNHEALTHY (rolled back) when the new version fails its checks", { 200: RolloutResult }),
          params: NameParams,
          body: RolloutBody,
        },
      },
      async (req) => run(ctx, 'rollout', { name: req.params.name, version: req.body.version, routerPort: req.body.routerPort, healthTimeout: req.body.healthTimeout }),
    );

    api.post(
      '/agents/:name/execute',
      {
        config: { scope: 'operator', limit: 'gateway' },
        schema: {
          summary: 'Call a tool on a healthy replica (the gateway: strategy, breaker, safe retries)',
          description: "Answers with the agent's own status and body (200 {result}, 400/404/500/504 in the error shape); 503 AGENT_UNAVAILABLE with Retry-After when no replica is healthy; 502 AGENT_CALL_FAILED when the replica failed after the call reached it.",
          tags,
          params: NameParams,
          body: ExecuteBody,
          response: withErrors({ 200: ToolAnswer, 404: ErrorBody, 413: ErrorBody, 415: ErrorBody, 502: ErrorBody, 503: ErrorBody, 504: ErrorBody }),
        },
      },
      async (req, reply) => {
        const started = performance.now();
        const caller = new AbortController();
        const onClose = () => void (reply.raw.writableFinished || caller.abort(new Error('client went away')));
        reply.raw.on('close', onClose);
        // the call's figure is recorded before the answer goes out, so a client that reads
        // /metrics/performance after its answer always sees its own call counted
        const record = async (answered: boolean) => {
          const slug = findRecord((await ctx.snapshot.get().catch(() => ({ records: [] }))).records, req.params.name)?.slug;
          if (slug) ctx.figures.record(slug, performance.now() - started, answered, ctx.clock.now());
        };
        try {
          const r = await ctx.gateway.executeViaGateway(req.params.name, { tool_name: req.body.tool_name, parameters: req.body.parameters ?? {} }, { signal: caller.signal });
          await record(true);
          return reply.code(r.status as 200).send(r.body as never);
        } catch (err) {
          await record(false);
          throw err;
        } finally {
          reply.raw.off('close', onClose);
        }
      },
    );

    api.get(
      '/agents/:name/logs',
      {
        config: { scope: 'viewer' },
        schema: {
          ...s("An agent's container logs", { 200: Type.Object({ name: Type.String(), logs: Type.String() }, { additionalProperties: false, description: 'with follow=true: text/plain, streamed until the client disconnects, the container ends, or 300 s pass' }) }),
          params: NameParams,
          querystring: Type.Object({ tail: Type.Integer({ minimum: 0, maximum: 10_000, default: 100 }), follow: Type.Boolean({ default: false }) }, { additionalProperties: false }),
        },
      },
      async (req, reply) => (req.query.follow ? followLogs(ctx, req.params.name, req.query.tail, reply) : run(ctx, 'logs', { name: req.params.name, tail: req.query.tail })),
    );

    api.get(
      '/statistics',
      {
        config: { scope: 'viewer' },
        schema: s('Fleet and gateway counts', {
          200: Type.Object(
            {
              agents: Type.Object({ total: Type.Integer(), desiredRunning: Type.Integer(), running: Type.Integer(), inRotation: Type.Integer() }, { additionalProperties: false }),
              replicas: Type.Object({ total: Type.Integer(), running: Type.Integer(), inRotation: Type.Integer() }, { additionalProperties: false }),
              gateway: Type.Object({ calls: Type.Integer(), errors: Type.Integer(), inflight: Type.Integer() }, { additionalProperties: false }),
              events: Type.Integer({ description: 'fleet events since the manager started' }),
              uptimeS: Type.Integer(),
            },
            { additionalProperties: false },
          ),
        }),
      },
      async () => {
        const snap = await ctx.snapshot.get();
        const views = await Promise.all(snap.records.map(async (r) => ({ slug: r.slug, replicas: await ctx.rotation.rotation(r.slug) })));
        const all = views.flatMap((v) => v.replicas);
        const figures = ctx.figures.snapshot(ctx.clock.now());
        return {
          agents: {
            total: snap.records.length,
            desiredRunning: snap.records.filter((r) => r.desired === 'running').length,
            running: views.filter((v) => v.replicas.some((r) => r.state === 'running')).length,
            inRotation: views.filter((v) => v.replicas.some((r) => r.inRotation)).length,
          },
          replicas: { total: all.length, running: all.filter((r) => r.state === 'running').length, inRotation: all.filter((r) => r.inRotation).length },
          gateway: { calls: figures.reduce((n, f) => n + f.calls, 0), errors: figures.reduce((n, f) => n + f.errors, 0), inflight: snap.records.reduce((n, r) => n + ctx.gateway.inflight(r.slug), 0) },
          events: ctx.events.lastSeq,
          uptimeS: Math.floor(process.uptime()),
        };
      },
    );

    api.get(
      '/metrics/agents',
      {
        config: { scope: 'viewer' },
        schema: s('Per agent: replicas, calls in flight, CPU and memory (summed over replicas)', {
          200: Type.Object(
            {
              agents: Type.Array(
                Type.Object({ name: Type.String(), slug: Type.String(), replicas: Type.Integer(), inRotation: Type.Integer(), inflight: Type.Integer(), cpuPercent: Type.Number(), memoryBytes: Type.Integer() }, { additionalProperties: false }),
              ),
            },
            { additionalProperties: false },
          ),
        }),
      },
      async () => {
        const snap = await ctx.snapshot.get();
        const views = await Promise.all(snap.records.map(async (r) => ({ rec: r, replicas: await ctx.rotation.rotation(r.slug) })));
        const stats = await sampleStats(ctx, views.flatMap((v) => v.replicas.filter((r) => r.state === 'running').map((r) => r.id)));
        return {
          agents: views.map(({ rec, replicas }) => {
            const total = sum(replicas.flatMap((r) => (stats.has(r.id) ? [stats.get(r.id)!] : [])));
            return { name: rec.name, slug: rec.slug, replicas: replicas.length, inRotation: replicas.filter((r) => r.inRotation).length, inflight: ctx.gateway.inflight(rec.slug), cpuPercent: total?.cpuPercent ?? 0, memoryBytes: total?.memoryBytes ?? 0 };
          }),
        };
      },
    );

    api.get(
      '/metrics/performance',
      {
        config: { scope: 'viewer' },
        schema: s('Gateway latency percentiles and throughput per agent (the last 2048 calls; throughput over the last 60 s)', { 200: Type.Object({ agents: Type.Array(Figures) }, { additionalProperties: false }) }),
      },
      async () => ({ agents: ctx.figures.snapshot(ctx.clock.now()) }),
    );
  };
}
