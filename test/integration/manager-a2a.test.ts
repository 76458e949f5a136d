import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Role, TaskState, type Part } from '@a2a-js/sdk';
import { ClientFactory, ClientFactoryOptions, createAuthenticatingFetchWithRetry, DefaultAgentCardResolver, RestTransportFactory, type Client } from '@a2a-js/sdk/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createManager, type Manager } from '../../src/server/manager.js';
import { createToken } from '../../src/server/tokens.js';
import { BOOTSTRAP } from '../helpers/manager.js';
import { eventually } from '../helpers/wait.js';
import { makeWorkspace, workspaceContainers, type TestWorkspace } from '../helpers/workspace.js';

// The manager's A2A door on the REAL engine: two started agents behind /a2a/{slug}, the official
// A2A JS client (@a2a-js/sdk) with a manager token through its fetch hook. Ports 9821-9824.
let ws: TestWorkspace;
let m: Manager;
let base: string;
const tokens: Record<'viewer' | 'operator', string> = {} as never;
let dataUrl: string;
const TEXT = 'Nexus Delta runs agents. Each agent serves tools!';

const api = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${BOOTSTRAP}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as any };
};

/** The official client from a card URL; with a token, every request (card included) carries it as a bearer. */
async function a2aClient(cardUrl: string, token?: string): Promise<Client> {
  const fetchImpl = token
    ? createAuthenticatingFetchWithRetry(fetch, { headers: async () => ({ authorization: `Bearer ${token}` }), shouldRetryWithHeaders: async () => undefined })
    : fetch;
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new RestTransportFactory({ fetchImpl })],
      cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
    }),
  );
  return factory.createFromUrl(cardUrl, '');
}
const cardOf = (slug: string) => `${base}/a2a/${slug}/.well-known/agent-card.json`;

const dataPart = (value: unknown): Part => ({ content: { $case: 'data' as const, value }, metadata: undefined, filename: '', mediaType: 'application/json' });
const textPart = (value: string): Part => ({ content: { $case: 'text' as const, value }, metadata: undefined, filename: '', mediaType: 'text/plain' });
const message = (parts: Part[], returnImmediately = false) => ({
  message: { messageId: crypto.randomUUID(), contextId: '', taskId: '', role: Role.ROLE_USER, parts, metadata: undefined, extensions: [], referenceTaskIds: [] },
  tenant: '',
  configuration: returnImmediately ? { acceptedOutputModes: [], taskPushNotificationConfig: undefined, historyLength: undefined, returnImmediately: true } : undefined,
  metadata: undefined,
});
const artifactValue = (task: unknown) => (task as { artifacts: { parts: { content: { value: unknown } }[] }[] }).artifacts[0]!.parts[0]!.content.value;

beforeAll(async () => {
  ws = await makeWorkspace('9821-9824');
  m = await createManager({ config: ws.config, env: { ...process.env, NEXUS_MANAGER_TOKEN: BOOTSTRAP } });
  base = await m.app.listen({ host: '127.0.0.1', port: 0 });
  for (const scope of ['viewer', 'operator'] as const) tokens[scope] = (await createToken({ scope }, { workspace: ws.dir })).token;
  const created = await api('POST', '/agents', { name: 'DataAgent', capabilities: ['data'] });
  expect(created.status).toBe(201);
  dataUrl = created.json.url;
  expect((await api('POST', '/agents', { name: 'TextAgent', capabilities: ['nlp'] })).status).toBe(201);
  // DataAgent also gets a tool that waits (until aborted or `ms` pass): something to cancel
  const index = join(ws.dir, 'agents', 'data-agent', 'src/index.ts');
  const src = await readFile(index, 'utf8');
  await writeFile(
    index,
    src
      .replace("import { defineAgent } from '@nexus-delta/runtime';", "import { defineAgent, defineTool } from '@nexus-delta/runtime';")
      .replace(
        'tools: [',
        "tools: [defineTool<{ ms: number }>({ name: 'slow', description: 'waits ms', parameters: { type: 'object', required: ['ms'], properties: { ms: { type: 'number' } } }, handler: async ({ ms }, { signal }) => { await new Promise((r) => { const t = setTimeout(r, ms); signal.addEventListener('abort', () => { clearTimeout(t); r(undefined); }); }); return { waited: ms }; } }), ",
      ),
  );
  for (const name of ['DataAgent', 'TextAgent']) {
    const started = await api('POST', `/agents/${name}/start`);
    expect(started.json, JSON.stringify(started.json)).toMatchObject({ ok: 1, failed: 0 });
  }
}, 300_000);
afterAll(async () => {
  await m?.close();
  await ws?.cleanup();
  if (ws) expect(await workspaceContainers(ws.dir)).toEqual([]);
}, 60_000);

describe('the manager as one A2A door (real engine, two agents, official A2A client)', () => {
  it('sends a data part and a text part through the manager and gets the tool results; get and list the tasks', async () => {
    const direct = await fetch(`${dataUrl}/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tool_name: 'process_data', parameters: { data: [2, 4, 6] } }),
    });
    const expected = ((await direct.json()) as { result: unknown }).result;

    const data = await a2aClient(cardOf('data-agent'), tokens.operator);
    expect((await data.getAgentCard()).supportedInterfaces[0]).toMatchObject({ url: `${base}/a2a/data-agent`, protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' });
    const task = await data.sendMessage(message([dataPart({ tool_name: 'process_data', parameters: { data: [2, 4, 6] } })]));
    expect(task).toMatchObject({ status: { state: TaskState.TASK_STATE_COMPLETED } });
    expect(artifactValue(task)).toEqual(expected);
    const id = (task as { id: string }).id;

    const text = await a2aClient(cardOf('text-agent'), tokens.operator);
    const analyzed = await text.sendMessage(message([textPart(TEXT)]));
    expect(analyzed).toMatchObject({ status: { state: TaskState.TASK_STATE_COMPLETED } });
    expect(artifactValue(analyzed)).toMatchObject({ words: 8, sentences: 2 });

    const viewer = await a2aClient(cardOf('data-agent'), tokens.viewer);
    expect(await viewer.getTask({ id, tenant: '', historyLength: undefined })).toMatchObject({ id, status: { state: TaskState.TASK_STATE_COMPLETED } });
    const list = await viewer.listTasks({ tenant: '', contextId: '', status: TaskState.TASK_STATE_UNSPECIFIED, pageSize: 10, pageToken: '', historyLength: undefined, statusTimestampAfter: undefined, includeArtifacts: undefined });
    expect(list.tasks.map((t) => t.id)).toEqual([id]);
    // the text agent's task is its own
    await expect(viewer.getTask({ id: (analyzed as { id: string }).id, tenant: '', historyLength: undefined })).rejects.toMatchObject({ name: 'TaskNotFoundError', statusCode: 404 });
  }, 60_000);

  it('cancels a working task; an invalid parameter is a rejected task', async () => {
    const client = await a2aClient(cardOf('data-agent'), tokens.operator);
    const working = await client.sendMessage(message([dataPart({ tool_name: 'slow', parameters: { ms: 20_000 } })], true));
    expect(working).toMatchObject({ status: { state: TaskState.TASK_STATE_WORKING } });
    const id = (working as { id: string }).id;
    expect(await client.cancelTask({ id, tenant: '', metadata: undefined })).toMatchObject({ id, status: { state: TaskState.TASK_STATE_CANCELED } });
    expect(await client.getTask({ id, tenant: '', historyLength: undefined })).toMatchObject({ status: { state: TaskState.TASK_STATE_CANCELED } });
    await expect(client.cancelTask({ id, tenant: '', metadata: undefined })).rejects.toMatchObject({ name: 'TaskNotCancelableError', statusCode: 400 });
    // the agent saw the gateway hang up and canceled the tool (its worker is free again)
    await eventually(async () => (/nexus_agent_tool_calls_total\{[^}]*tool="slow"[^}]*outcome="canceled"[^}]*\} 1/.test(await (await fetch(`${dataUrl}/metrics`)).text()) ? true : undefined), 30_000);

    const rejected = await client.sendMessage(message([dataPart({ tool_name: 'process_data', parameters: { data: 'nope' } })]));
    expect(rejected).toMatchObject({ status: { state: TaskState.TASK_STATE_REJECTED } });
  }, 60_000);

  it('agents.json points each card at the manager; the direct URL serves the same tools without the manager', async () => {
    const r = await fetch(`${base}/.well-known/agents.json`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
    const { agents } = (await r.json()) as { agents: any[] };
    expect(agents.map((a) => a.slug)).toEqual(['data-agent', 'text-agent']);
    for (const a of agents) expect(a.card.supportedInterfaces[0].url).toBe(`${base}/a2a/${a.slug}`);
    const data = agents[0];
    const direct = await a2aClient(data.direct.card);
    expect((await direct.getAgentCard()).supportedInterfaces[0]!.url).toBe(data.direct.url);
    const task = await direct.sendMessage(message([dataPart({ tool_name: 'process_data', parameters: { data: [1, 2] } })]));
    expect(artifactValue(task)).toMatchObject({ sum: 3, count: 2 });
  }, 60_000);

  it('no token is 401 (the card itself is public)', async () => {
    const anonymous = await a2aClient(cardOf('data-agent'));
    await expect(anonymous.sendMessage(message([dataPart({ tool_name: 'process_data', parameters: { data: [1] } })]))).rejects.toMatchObject({ statusCode: 401 });
    await expect(anonymous.listTasks({ tenant: '', contextId: '', status: TaskState.TASK_STATE_UNSPECIFIED, pageSize: 10, pageToken: '', historyLength: undefined, statusTimestampAfter: undefined, includeArtifacts: undefined })).rejects.toMatchObject({ statusCode: 401 });
  });

  it('a stopped agent answers the A2A unavailable error (503 UNAVAILABLE, reason AGENT_UNAVAILABLE)', async () => {
    expect((await api('POST', '/agents/TextAgent/stop')).status).toBe(200);
    const body = await eventually(async () => {
      const res = await fetch(`${base}/a2a/text-agent/message:send`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.operator}`, 'a2a-version': '1.0', 'content-type': 'application/a2a+json' },
        body: JSON.stringify({ message: { messageId: 'm', role: 'ROLE_USER', parts: [{ text: TEXT }] } }),
      });
      return res.status === 503 && res.headers.get('retry-after') ? ((await res.json()) as any) : undefined;
    }, 30_000);
    expect(body).toMatchObject({ error: { code: 503, status: 'UNAVAILABLE', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'AGENT_UNAVAILABLE', domain: 'nexus-delta.dev' }] } });
    const client = await a2aClient(cardOf('text-agent'), tokens.operator);
    await expect(client.sendMessage(message([textPart(TEXT)]))).rejects.toMatchObject({ statusCode: 503 });
  }, 60_000);
});
