import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Role, TaskState, type Part } from '@a2a-js/sdk';
import { ClientFactory, ClientFactoryOptions, createAuthenticatingFetchWithRetry, DefaultAgentCardResolver, RestTransportFactory, type Client } from '@a2a-js/sdk/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { AppError } from '../../src/errors.js';
import { A2aError, TaskFailure } from '../../src/runtime/a2a.js';
import { ContractError } from '../../src/runtime/contract.js';
import { buildServer as buildRuntime } from '../../src/runtime/server.js';
import { appErrorToA2a, gatewayFailure, managerA2aCard, toolOutcome } from '../../src/server/a2a-door.js';
import { createManager, type Manager } from '../../src/server/manager.js';
import { createToken } from '../../src/server/tokens.js';
import { testAgent } from '../helpers/gateway.js';
import { BOOTSTRAP } from '../helpers/manager.js';
import { eventually } from '../helpers/wait.js';

// The manager's A2A door on the in-memory engine: two agents whose "containers" are in-process
// agent runtimes on their host ports, the official A2A JS client over real HTTP with a manager
// token. Ports 9835-9836 (this helper's band 9821-9840).
const PORTS = [9835, 9836];
let dir: string;
let engine: FakeEngine;
let m: Manager;
let base: string;
let runtimes: FastifyInstance[];
const tokens: Record<'viewer' | 'operator', string> = {} as never;

const probe = {
  health: async (url: string) => ({
    ok: [...engine.containers.values()].some((c) => c.state === 'running' && c.spec.hostPort?.port === Number(new URL(url).port)),
  }),
  tools: async (url: string) => ((await (await fetch(`${url}/tools`)).json()) as { tools: never[] }).tools,
};

const inject = (method: 'GET' | 'POST', url: string, body?: object) =>
  m.app.inject({ method, url: `/api/v1${url}`, headers: { authorization: `Bearer ${BOOTSTRAP}` }, ...(body ? { payload: body } : {}) });

/** The official client on the manager's card for `slug`, sending `token` as a bearer on every request. */
async function a2aClient(slug: string, token: string): Promise<Client> {
  const authFetch = createAuthenticatingFetchWithRetry(fetch, {
    headers: async () => ({ authorization: `Bearer ${token}` }),
    shouldRetryWithHeaders: async () => undefined,
  });
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new RestTransportFactory({ fetchImpl: authFetch })],
      cardResolver: new DefaultAgentCardResolver({ fetchImpl: authFetch }),
    }),
  );
  return factory.createFromUrl(`${base}/a2a/${slug}/.well-known/agent-card.json`, '');
}

const dataPart = (value: unknown): Part => ({ content: { $case: 'data' as const, value }, metadata: undefined, filename: '', mediaType: 'application/json' });
const send = (value: unknown, returnImmediately = false) => ({
  message: { messageId: crypto.randomUUID(), contextId: '', taskId: '', role: Role.ROLE_USER, parts: [dataPart(value)], metadata: undefined, extensions: [], referenceTaskIds: [] },
  tenant: '',
  configuration: returnImmediately ? { acceptedOutputModes: [], taskPushNotificationConfig: undefined, historyLength: undefined, returnImmediately: true } : undefined,
  metadata: undefined,
});
const listAll = { tenant: '', contextId: '', status: TaskState.TASK_STATE_UNSPECIFIED, pageSize: 50, pageToken: '', historyLength: undefined, statusTimestampAfter: undefined, includeArtifacts: undefined };

const raw = (path: string, init: { method?: string; token?: string; body?: unknown } = {}) =>
  fetch(`${base}${path}`, {
    method: init.method ?? 'GET',
    headers: {
      'a2a-version': '1.0',
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      ...(init.body !== undefined ? { 'content-type': 'application/a2a+json' } : {}),
    },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
const rawMessage = (value: unknown) => ({ message: { messageId: 'm1', role: 'ROLE_USER', parts: [{ data: value }] } });

describe('A2A door: pure parts', () => {
  it('toolOutcome: 200 is the result; contract errors stay ContractError (so they reject), others TaskFailure', () => {
    expect(toolOutcome(200, { result: { sum: 3 } }).json).toBe('{"sum":3}');
    expect(toolOutcome(200, { result: null }).value()).toBeNull();
    expect(() => toolOutcome(400, { error: { code: 'INVALID_PARAMETERS', message: 'parameters.data must be array' } })).toThrow(ContractError);
    expect(() => toolOutcome(500, { error: { code: 'TOOL_ERROR', message: 'x' } })).toThrow(expect.objectContaining({ code: 'TOOL_ERROR' }));
    expect(() => toolOutcome(418, 'teapot')).toThrow(TaskFailure);
    expect(() => toolOutcome(418, 'teapot')).toThrow(expect.objectContaining({ code: 'HTTP_418', message: 'teapot' }));
  });

  it('gatewayFailure: nothing ran is an A2A error (503 with Retry-After, 404); a call that may have run fails the task', () => {
    const down = gatewayFailure(new AppError('AGENT_UNAVAILABLE', 'no healthy replica', { retryAfterS: 5 }));
    expect(down).toBeInstanceOf(A2aError);
    expect((down as A2aError).body()).toEqual({
      error: { code: 503, status: 'UNAVAILABLE', message: 'no healthy replica', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'AGENT_UNAVAILABLE', domain: 'nexus-delta.dev' }] },
    });
    expect((down as A2aError).retryAfterS).toBe(5);
    expect(gatewayFailure(new AppError('AGENT_NOT_FOUND', 'x'))).toMatchObject({ httpStatus: 404, status: 'NOT_FOUND' });
    for (const code of ['AGENT_CALL_FAILED', 'AGENT_TIMEOUT'] as const) expect(gatewayFailure(new AppError(code, 'x'))).toMatchObject({ code });
    expect(appErrorToA2a(new AppError('UNAUTHORIZED', 'no token'))).toMatchObject({ httpStatus: 401, status: 'UNAUTHENTICATED', reason: 'UNAUTHORIZED' });
    expect(appErrorToA2a(new AppError('RATE_LIMITED', 'slow down', { retryAfterS: 7 }))).toMatchObject({ httpStatus: 429, status: 'RESOURCE_EXHAUSTED', retryAfterS: 7 });
  });

  it("managerA2aCard: the manager's interface URL and the bearer scheme (ProtoJSON, as the spec's sample card)", () => {
    const card = managerA2aCard({ slug: 'a', name: 'A', description: 'd', version: '1.0.0', capabilities: ['data'], tools: [] }, 'http://m:1');
    expect(card).toMatchObject({
      supportedInterfaces: [{ url: 'http://m:1/a2a/a', protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' }],
      securitySchemes: { bearer: { httpAuthSecurityScheme: { scheme: 'Bearer', bearerFormat: 'JWT' } } },
      securityRequirements: [{ schemes: { bearer: { list: [] } } }],
    });
  });
});

describe('A2A door over HTTP (fake engine, in-process agents, official A2A client)', () => {
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nexus-a2a-door-'));
    engine = new FakeEngine();
    const config = loadConfig(dir, { NEXUS_PORT_RANGE: `${PORTS[0]}-${PORTS[1]}`, NEXUS_OFFLINE: 'always' });
    m = await createManager({ config, env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP }, engine, probe });
    for (const name of ['AlphaAgent', 'BetaAgent']) expect((await inject('POST', '/agents', { name })).statusCode).toBe(201);
    runtimes = [];
    for (const port of PORTS) {
      const rt = await buildRuntime(testAgent, { processMetrics: false });
      await rt.listen({ host: '127.0.0.1', port });
      runtimes.push(rt);
    }
    for (const name of ['AlphaAgent', 'BetaAgent']) expect((await inject('POST', `/agents/${name}/start`)).json()).toMatchObject({ ok: 1, failed: 0 });
    base = await m.app.listen({ host: '127.0.0.1', port: 0 });
    for (const scope of ['viewer', 'operator'] as const) tokens[scope] = (await createToken({ scope }, { workspace: dir })).token;
  });
  afterEach(async () => {
    await m.close();
    await Promise.all(runtimes.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it('the card is public and points at the manager; send, get and list go through the gateway, tasks kept per agent', async () => {
    const pub = await fetch(`${base}/a2a/alpha-agent/.well-known/agent-card.json`);
    expect(pub.status).toBe(200);
    expect(pub.headers.get('cache-control')).toBe('max-age=60');
    expect((await fetch(`${base}/a2a/nobody/.well-known/agent-card.json`)).status).toBe(404);

    const alpha = await a2aClient('alpha-agent', tokens.operator);
    const card = await alpha.getAgentCard();
    expect(card.supportedInterfaces[0]).toMatchObject({ url: `${base}/a2a/alpha-agent`, protocolBinding: 'HTTP+JSON' });
    expect(card.securitySchemes.bearer?.scheme).toMatchObject({ $case: 'httpAuthSecurityScheme', value: { scheme: 'Bearer' } });

    const task = await alpha.sendMessage(send({ tool_name: 'process_data', parameters: { data: [1, 2, 3] } }));
    expect(task).toMatchObject({ status: { state: TaskState.TASK_STATE_COMPLETED } });
    const id = (task as { id: string }).id;
    expect((task as { artifacts: { parts: { content: unknown }[] }[] }).artifacts[0]!.parts[0]!.content).toMatchObject({ $case: 'data', value: { sum: 6, count: 3 } });
    // a viewer reads it; the other agent's interface does not know it
    const viewer = await a2aClient('alpha-agent', tokens.viewer);
    expect(await viewer.getTask({ id, tenant: '', historyLength: undefined })).toMatchObject({ id, status: { state: TaskState.TASK_STATE_COMPLETED } });
    expect((await viewer.listTasks(listAll)).tasks.map((t) => t.id)).toEqual([id]);
    const beta = await a2aClient('beta-agent', tokens.operator);
    await expect(beta.getTask({ id, tenant: '', historyLength: undefined })).rejects.toMatchObject({ name: 'TaskNotFoundError', statusCode: 404 });
    expect((await beta.listTasks(listAll)).tasks).toEqual([]);
    // the call went through the gateway, counted in its metrics and figures
    const attempts = (await m.app.metrics.getSingleMetric('nexus_gateway_attempts_total')!.get()).values;
    expect(attempts.some((v) => v.labels.agent === 'alpha-agent' && v.labels.outcome === 'answer')).toBe(true);
    expect(m.context.figures.snapshot(Date.now()).find((f) => f.agent === 'alpha-agent')?.calls).toBe(1);
  });

  it('invalid parameters reject the task, a failing tool fails it, cancel ends a working one', async () => {
    const client = await a2aClient('beta-agent', tokens.operator);
    const rejected = await client.sendMessage(send({ tool_name: 'process_data', parameters: { data: 'x' } }));
    expect(rejected).toMatchObject({ status: { state: TaskState.TASK_STATE_REJECTED } });
    const failed = await client.sendMessage(send({ tool_name: 'boom', parameters: {} }));
    expect(failed).toMatchObject({ status: { state: TaskState.TASK_STATE_FAILED } });
    expect((failed as { status: { message: { parts: { content: { value: unknown } }[] } } }).status.message.parts[1]!.content.value).toMatchObject({ error: { code: 'TOOL_ERROR' } });

    const working = await client.sendMessage(send({ tool_name: 'wait', parameters: { ms: 5000 } }, true));
    expect(working).toMatchObject({ status: { state: TaskState.TASK_STATE_WORKING } });
    const id = (working as { id: string }).id;
    expect(await client.cancelTask({ id, tenant: '', metadata: undefined })).toMatchObject({ id, status: { state: TaskState.TASK_STATE_CANCELED } });
    expect(await client.getTask({ id, tenant: '', historyLength: undefined })).toMatchObject({ status: { state: TaskState.TASK_STATE_CANCELED } });
    await expect(client.cancelTask({ id, tenant: '', metadata: undefined })).rejects.toMatchObject({ name: 'TaskNotCancelableError', statusCode: 400 });
    // the gateway call was withdrawn, and the agent, seeing its caller hang up, canceled the tool
    const canceledOnAgent = async () => /nexus_agent_tool_calls_total\{[^}]*tool="wait"[^}]*outcome="canceled"[^}]*\} 1/.test(await (await fetch(`http://127.0.0.1:${PORTS[1]}/metrics`)).text());
    await eventually(async () => ((await canceledOnAgent()) ? true : undefined), 5000, 50);
  });

  it('tokens and scopes answer A2A status objects: none 401 (WWW-Authenticate), viewer may not send (403)', async () => {
    const none = await raw('/a2a/alpha-agent/tasks');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await none.json()).toMatchObject({ error: { code: 401, status: 'UNAUTHENTICATED', details: [{ reason: 'UNAUTHORIZED', domain: 'nexus-delta.dev' }] } });
    const viewer = await raw('/a2a/alpha-agent/message:send', { method: 'POST', token: tokens.viewer, body: rawMessage({ tool_name: 'process_data', parameters: { data: [1] } }) });
    expect(viewer.status).toBe(403);
    expect(await viewer.json()).toMatchObject({ error: { status: 'PERMISSION_DENIED', details: [{ reason: 'FORBIDDEN' }] } });
    expect((await raw('/a2a/alpha-agent/tasks/x:cancel', { method: 'POST', token: tokens.viewer })).status).toBe(403);
  });

  it('a stopped agent is 503 UNAVAILABLE with Retry-After and leaves no task; unknown agent 404; streaming and push unsupported', async () => {
    expect((await inject('POST', '/agents/BetaAgent/stop')).statusCode).toBe(200);
    const down = await raw('/a2a/beta-agent/message:send', { method: 'POST', token: tokens.operator, body: rawMessage({ tool_name: 'process_data', parameters: { data: [1] } }) });
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await down.json()).toMatchObject({ error: { code: 503, status: 'UNAVAILABLE', details: [{ reason: 'AGENT_UNAVAILABLE', domain: 'nexus-delta.dev' }] } });
    expect(await (await raw('/a2a/beta-agent/tasks', { token: tokens.viewer })).json()).toMatchObject({ tasks: [], totalSize: 0 });
    const client = await a2aClient('beta-agent', tokens.operator);
    // the SDK's generic A2AError (no A2A-specific reason), with the HTTP status and Retry-After
    await expect(client.sendMessage(send({ tool_name: 'process_data', parameters: { data: [1] } }))).rejects.toMatchObject({
      name: 'A2AError',
      statusCode: 503,
      headers: { 'retry-after': expect.stringMatching(/^\d+$/) },
      message: expect.stringContaining('no healthy replica'),
    });

    const nobody = await raw('/a2a/nobody/tasks', { token: tokens.viewer });
    expect(nobody.status).toBe(404);
    expect(await nobody.json()).toMatchObject({ error: { status: 'NOT_FOUND', details: [{ reason: 'AGENT_NOT_FOUND' }] } });
    const stream = await raw('/a2a/alpha-agent/message:stream', { method: 'POST', token: tokens.operator, body: rawMessage({}) });
    expect(await stream.json()).toMatchObject({ error: { code: 400, details: [{ reason: 'UNSUPPORTED_OPERATION', domain: 'a2a-protocol.org' }] } });
    const push = await raw('/a2a/alpha-agent/tasks/x/pushNotificationConfigs', { token: tokens.viewer });
    expect(await push.json()).toMatchObject({ error: { details: [{ reason: 'PUSH_NOTIFICATION_NOT_SUPPORTED' }] } });
    // the version rule holds at the door too
    const old = await fetch(`${base}/a2a/alpha-agent/tasks`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
    expect(await old.json()).toMatchObject({ error: { details: [{ reason: 'VERSION_NOT_SUPPORTED' }] } });
  });

  it("agents.json: each card is the manager's, the agent's own URLs in `direct`", async () => {
    const r = await fetch(`${base}/.well-known/agents.json`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
    const { agents } = (await r.json()) as { agents: any[] };
    for (const [i, a] of agents.entries()) {
      expect(a.card.supportedInterfaces[0].url).toBe(`${base}/a2a/${a.slug}`);
      expect(a.card.securitySchemes.bearer.httpAuthSecurityScheme.scheme).toBe('Bearer');
      expect(a.manager).toMatchObject({ a2a: `${base}/a2a/${a.slug}`, card: `${base}/a2a/${a.slug}/.well-known/agent-card.json` });
      expect(a.direct).toEqual({ url: `http://127.0.0.1:${PORTS[i]}`, card: `http://127.0.0.1:${PORTS[i]}/.well-known/agent-card.json`, mcp: `http://127.0.0.1:${PORTS[i]}/mcp` });
    }
  });
});
