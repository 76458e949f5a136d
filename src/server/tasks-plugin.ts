/**
 * The tasks domain of the manager (issue 10 §1): routes under the protected `/api/v1` scope, for
 * buildServer's `plugins.api`. Times in answers are ISO-8601 strings.
 *
 * | route                          | scope    | answer                                                  |
 * |--------------------------------|----------|---------------------------------------------------------|
 * | POST /tasks/submit             | operator | 202 {task_id, status: "queued", created: true}; 200 with the existing task's status for a known idempotency_key |
 * | GET /tasks/{id}                | viewer   | the task (status, attempts, timestamps, agent and replica that ran it) |
 * | GET /tasks/{id}/result         | viewer   | {task_id, status, result?, error?}                      |
 * | DELETE /tasks/{id}             | operator | the task: cancelled (was queued) or cancel_requested (running); 409 when finished |
 * | GET /tasks?status=&agent=&limit=&cursor= | viewer | {tasks, next_cursor?}, newest first          |
 * | GET /tasks/dead-letter         | viewer   | {tasks, next_cursor?} of dead tasks                     |
 * | POST /tasks/{id}/retry         | operator | 202 {task_id, status: "queued"} (re-drive a dead task); 409 when not dead |
 * | GET /metrics/tasks             | viewer   | {store, counts per status, dispatcher: in flight, per agent, totals} |
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { Dispatcher } from '../tasks/dispatcher.js';
import { MAX_MAX_ATTEMPTS, MAX_TIMEOUT_MS, PRIORITIES, TASK_STATUSES, type Task } from '../tasks/model.js';
import { MAX_PAGE, taskNotFound, type TaskStore } from '../tasks/store.js';
import { ErrorBody, withErrors } from './schemas.js';

export interface TasksPluginDeps {
  store: TaskStore;
  dispatcher: Dispatcher;
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
const Time = Type.String({ format: 'date-time' });
const Status = Type.Enum([...TASK_STATUSES]);
const Priority = Type.Enum([...PRIORITIES]);
const Json = Type.Unknown();

const AttemptView = Type.Object(
  {
    run: Type.Integer(),
    started_at: Time,
    finished_at: Time,
    agent: Type.Optional(Type.String()),
    replica: Type.Optional(Type.String()),
    http_status: Type.Optional(Type.Integer()),
    error: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

const TaskView = Type.Object(
  {
    task_id: Type.String(),
    agent: Type.Optional(Type.String()),
    capability: Type.Optional(Type.String()),
    tool_name: Type.String(),
    parameters: Type.Record(Type.String(), Json),
    priority: Priority,
    idempotency_key: Type.Optional(Type.String()),
    timeout_ms: Type.Optional(Type.Integer()),
    max_attempts: Type.Integer(),
    status: Status,
    attempts: Type.Array(AttemptView),
    run: Type.Integer({ description: 're-drives so far; the attempt budget is per run' }),
    created_at: Time,
    started_at: Type.Optional(Time),
    finished_at: Type.Optional(Time),
    next_attempt_at: Type.Optional(Type.String({ format: 'date-time', description: 'queued for a retry: not before this time' })),
    cancel_requested: Type.Boolean(),
    ran_on_agent: Type.Optional(Type.String()),
    ran_on_replica: Type.Optional(Type.String()),
    error: Type.Optional(Type.String()),
  },
  { additionalProperties: false, title: 'Task' },
);
type TaskViewT = Static<typeof TaskView>;

/** A task as the API shows it: ISO times, no lease internals, the result only at /result. */
export function taskView(t: Task): TaskViewT {
  const opt = <K extends string, V>(k: K, v: V | undefined) => (v === undefined ? {} : ({ [k]: v } as Record<K, V>));
  return {
    task_id: t.task_id,
    ...opt('agent', t.agent),
    ...opt('capability', t.capability),
    tool_name: t.tool_name,
    parameters: t.parameters,
    priority: t.priority,
    ...opt('idempotency_key', t.idempotency_key),
    ...opt('timeout_ms', t.timeout_ms),
    max_attempts: t.max_attempts,
    status: t.status,
    attempts: t.attempts.map((a) => ({
      run: a.run,
      started_at: iso(a.started_at)!,
      finished_at: iso(a.finished_at)!,
      ...opt('agent', a.agent),
      ...opt('replica', a.replica),
      ...opt('http_status', a.http_status),
      ...opt('error', a.error),
    })),
    run: t.run,
    created_at: iso(t.created_at)!,
    ...opt('started_at', iso(t.started_at)),
    ...opt('finished_at', iso(t.finished_at)),
    ...(t.status === 'queued' && t.attempts.length > 0 ? { next_attempt_at: iso(t.run_at)! } : {}),
    cancel_requested: t.cancel_requested,
    ...opt('ran_on_agent', t.ran_on_agent),
    ...opt('ran_on_replica', t.ran_on_replica),
    ...opt('error', t.error),
  };
}

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9-]+$' }) });
const Page = Type.Object({ tasks: Type.Array(TaskView), next_cursor: Type.Optional(Type.String()) }, { additionalProperties: false });
const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE, default: 50 })),
  cursor: Type.Optional(Type.String({ maxLength: 100 })),
};
const Accepted = Type.Object({ task_id: Type.String(), status: Status, created: Type.Boolean() }, { additionalProperties: false });
const SubmitBody = Type.Object(
  {
    agent: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    capability: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    tool_name: Type.String({ minLength: 1, maxLength: 128 }),
    parameters: Type.Optional(Type.Record(Type.String(), Json)),
    priority: Type.Optional(Priority),
    idempotency_key: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TIMEOUT_MS })),
    max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_MAX_ATTEMPTS })),
  },
  { additionalProperties: false, description: 'exactly one of agent or capability' },
);
const Counts = Type.Object(Object.fromEntries(TASK_STATUSES.map((s) => [s, Type.Integer()])), { additionalProperties: false });

/**
 * The tasks plugin: register it in buildServer's `plugins.api`. The caller owns the store and the
 * dispatcher (starts and stops it; see src/tasks/index.ts `startTasks`).
 */
export function tasksPlugin(deps: TasksPluginDeps) {
  const { store, dispatcher } = deps;
  const find = async (id: string): Promise<Task> => {
    const t = await store.get(id);
    if (!t) throw taskNotFound(id);
    return t;
  };
  return async function tasks(app: FastifyInstance): Promise<void> {
    const api = app.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['tasks'];
    api.post(
      '/tasks/submit',
      { config: { scope: 'operator' }, schema: { summary: 'Queue a tool call as a task', tags, body: SubmitBody, response: withErrors({ 200: Accepted, 202: Accepted, 503: ErrorBody }) } },
      async (req, reply) => {
        const { task, created } = await dispatcher.submit(req.body);
        return reply.code(created ? 202 : 200).send({ task_id: task.task_id, status: task.status, created });
      },
    );
    api.get(
      '/tasks',
      {
        config: { scope: 'viewer' },
        schema: { summary: 'List tasks, newest first', tags, querystring: Type.Object({ status: Type.Optional(Status), agent: Type.Optional(Type.String({ maxLength: 63 })), ...PageQuery }), response: withErrors({ 200: Page }) },
      },
      async (req) => {
        const page = await store.list(req.query);
        return { tasks: page.tasks.map(taskView), ...(page.next_cursor ? { next_cursor: page.next_cursor } : {}) };
      },
    );
    api.get(
      '/tasks/dead-letter',
      { config: { scope: 'viewer' }, schema: { summary: 'Dead tasks (attempts spent), to inspect or re-drive', tags, querystring: Type.Object(PageQuery), response: withErrors({ 200: Page }) } },
      async (req) => {
        const page = await store.list({ ...req.query, status: 'dead' });
        return { tasks: page.tasks.map(taskView), ...(page.next_cursor ? { next_cursor: page.next_cursor } : {}) };
      },
    );
    api.get(
      '/tasks/:id',
      { config: { scope: 'viewer' }, schema: { summary: 'A task', tags, params: IdParams, response: withErrors({ 200: TaskView, 404: ErrorBody }) } },
      async (req) => taskView(await find(req.params.id)),
    );
    api.get(
      '/tasks/:id/result',
      {
        config: { scope: 'viewer' },
        schema: {
          summary: "A task's result (the agent's answer body) once it finished",
          tags,
          params: IdParams,
          response: withErrors({ 200: Type.Object({ task_id: Type.String(), status: Status, result: Type.Optional(Json), error: Type.Optional(Type.String()) }, { additionalProperties: false }), 404: ErrorBody }),
        },
      },
      async (req) => {
        const t = await find(req.params.id);
        return { task_id: t.task_id, status: t.status, ...(t.result !== undefined ? { result: t.result } : {}), ...(t.error && t.status !== 'succeeded' ? { error: t.error } : {}) };
      },
    );
    api.delete(
      '/tasks/:id',
      { config: { scope: 'operator' }, schema: { summary: 'Cancel a queued or running task', tags, params: IdParams, response: withErrors({ 200: TaskView, 404: ErrorBody, 409: ErrorBody }) } },
      async (req) => taskView(await dispatcher.cancel(req.params.id)),
    );
    api.post(
      '/tasks/:id/retry',
      { config: { scope: 'operator' }, schema: { summary: 'Re-drive a dead task', tags, params: IdParams, response: withErrors({ 202: Accepted, 404: ErrorBody, 409: ErrorBody }) } },
      async (req, reply) => {
        const t = await dispatcher.redrive(req.params.id);
        return reply.code(202).send({ task_id: t.task_id, status: t.status, created: false });
      },
    );
    api.get(
      '/metrics/tasks',
      {
        config: { scope: 'viewer' },
        schema: {
          summary: 'Task counts per status and what this manager is running',
          tags,
          response: withErrors({
            200: Type.Object(
              {
                store: Type.String(),
                counts: Counts,
                dispatcher: Type.Object(
                  { owner: Type.String(), in_flight: Type.Integer(), per_agent: Type.Record(Type.String(), Type.Integer()), per_agent_limit: Type.Integer(), totals: Type.Record(Type.String(), Type.Integer()) },
                  { additionalProperties: false },
                ),
              },
              { additionalProperties: false },
            ),
          }),
        },
      },
      async () => ({ store: store.kind, counts: await store.counts(), dispatcher: dispatcher.stats() }),
    );
  };
}
