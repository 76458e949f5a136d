import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/config.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { buildServer as buildRuntime } from '../../src/runtime/server.js';
import { createManager, type Manager } from '../../src/server/manager.js';
import { doorTools, splitToolName, toolResult } from '../../src/server/mcp-door.js';
import { createToken } from '../../src/server/tokens.js';
import { testAgent } from '../helpers/gateway.js';
import { BOOTSTRAP } from '../helpers/manager.js';

// The manager's MCP door on the in-memory engine: two agents whose "containers" are in-process
// agent runtimes listening on their host ports, the real MCP SDK client over real HTTP.
// Ports 9537-9538 (this helper's band 9521-9540).
const PORTS = [9537, 9538];
let dir: string;
let engine: FakeEngine;
let clock: ManualClock;
let m: Manager;
let base: string;
let runtimes: FastifyInstance[];
const tokens: Record<'viewer' | 'operator', string> = {} as never;
const clients: Client[] = [];

const probe = {
  health: async (url: string) => ({
    ok: [...engine.containers.values()].some((c) => c.state === 'running' && c.spec.hostPort?.port === Number(new URL(url).port)),
  }),
  tools: async (url: string) => ((await (await fetch(`${url}/tools`)).json()) as { tools: never[] }).tools,
};

const inject = (method: 'GET' | 'POST', url: string, body?: object) =>
  m.app.inject({
    method,
    url: `/api/v1${url}`,
    headers: { authorization: `Bearer ${BOOTSTRAP}` },
    ...(body ? { payload: body } : {}),
  });

async function connect(token: string | undefined, headers: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: 'door-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
    requestInit: {
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
    },
  });
  await client.connect(transport);
  clients.push(client);
  return client;
}

describe('MCP door: pure parts', () => {
  it('doorTools names tools <slug>__<tool>, keeps schemas, skips agents out of rotation, sorts', () => {
    const schema = { type: 'object', properties: { x: { type: 'number' } } };
    const records = [
      {
        slug: 'b-agent',
        name: 'BAgent',
        tools: [{ name: 'echo', description: 'e', parameters: schema }],
      },
      {
        slug: 'a-agent',
        name: 'AAgent',
        tools: [{ name: 'sum', description: 's', parameters: schema }],
      },
      {
        slug: 'c-agent',
        name: 'CAgent',
        tools: [{ name: 'x', description: 'x', parameters: schema }],
      },
    ];
    const list = doorTools(records, new Set(['a-agent', 'b-agent']));
    expect(list.map((t) => t.mcp.name)).toEqual(['a-agent__sum', 'b-agent__echo']);
    expect(list[0]).toEqual({
      slug: 'a-agent',
      tool: 'sum',
      mcp: {
        name: 'a-agent__sum',
        description: '[AAgent] s',
        inputSchema: schema,
      },
    });
  });

  it('splitToolName splits at the first separator and refuses names without one', () => {
    expect(splitToolName('data-agent__process_data')).toEqual({
      slug: 'data-agent',
      tool: 'process_data',
    });
    expect(splitToolName('a__b__c')).toEqual({ slug: 'a', tool: 'b__c' });
    for (const bad of ['process_data', '__x', 'x__', '']) expect(splitToolName(bad), bad).toBeUndefined();
  });

  it('toolResult: 200 is content + structured content, any other answer a tool error', () => {
    expect(toolResult(200, { result: { sum: 3 } })).toEqual({
      content: [{ type: 'text', text: '{"sum":3}' }],
      structuredContent: { sum: 3 },
    });
    expect(toolResult(200, { result: 7 })).toMatchObject({
      structuredContent: { result: 7 },
    });
    expect(
      toolResult(400, {
        error: { code: 'INVALID_PARAMETERS', message: 'data: must be array' },
      }),
    ).toEqual({
      isError: true,
      content: [{ type: 'text', text: 'INVALID_PARAMETERS: data: must be array' }],
    });
    expect(toolResult(504, 'gateway timeout')).toMatchObject({
      isError: true,
      content: [{ text: 'HTTP_504: gateway timeout' }],
    });
  });
});

describe('MCP door over HTTP (fake engine, in-process agents, SDK client)', () => {
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nexus-mcp-door-'));
    engine = new FakeEngine();
    clock = new ManualClock(Date.now());
    const config = loadConfig(dir, {
      NEXUS_PORT_RANGE: `${PORTS[0]}-${PORTS[1]}`,
      NEXUS_OFFLINE: 'always',
    });
    m = await createManager({
      config,
      env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP },
      engine,
      probe,
      clock,
      mcp: { maxSessions: 3, idleMs: 60_000 },
    });
    // ports are allocated at create (free host ports), then the runtimes take them, then start probes them
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
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
    await m.close();
    await Promise.all(runtimes.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it('lists both agents’ tools with their schemas and calls one on each through the gateway', async () => {
    const client = await connect(tokens.operator);
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const slug of ['alpha-agent', 'beta-agent']) for (const t of testAgent.tools) expect(names).toContain(`${slug}__${t.name}`);
    expect(tools).toHaveLength(2 * testAgent.tools.length);
    const pd = tools.find((t) => t.name === 'alpha-agent__process_data')!;
    expect(pd.inputSchema).toEqual(testAgent.tools.find((t) => t.name === 'process_data')!.parameters);

    for (const [i, slug] of ['alpha-agent', 'beta-agent'].entries()) {
      const r = await client.callTool({
        name: `${slug}__process_data`,
        arguments: { data: [1, 2, 3 + i] },
      });
      expect(r.isError ?? false).toBe(false);
      expect(r.structuredContent).toMatchObject({ sum: 6 + i, count: 3 });
    }
    // each went through the gateway to its own agent
    const attempts = (await m.app.metrics.getSingleMetric('nexus_gateway_attempts_total')!.get()).values;
    for (const slug of ['alpha-agent', 'beta-agent'])
      expect(
        attempts.some((v) => v.labels.agent === slug && v.labels.outcome === 'answer' && v.value === 1),
        slug,
      ).toBe(true);
  });

  it('invalid arguments, a failing tool and an agent with no healthy replica are MCP tool errors; an unknown tool is -32602', async () => {
    const client = await connect(tokens.operator);
    const bad = await client.callTool({
      name: 'alpha-agent__process_data',
      arguments: { data: 'not a list' },
    });
    expect(bad.isError).toBe(true);
    expect((bad.content as { text: string }[])[0]!.text).toMatch(/^INVALID_PARAMETERS: /);
    const boom = await client.callTool({
      name: 'beta-agent__boom',
      arguments: {},
    });
    expect(boom).toMatchObject({
      isError: true,
      content: [{ type: 'text', text: expect.stringMatching(/^TOOL_ERROR: /) }],
    });
    await expect(client.callTool({ name: 'alpha-agent__nope', arguments: {} })).rejects.toMatchObject({ code: -32602 });
    await expect(client.callTool({ name: 'nobody__echo', arguments: {} })).rejects.toMatchObject({ code: -32602 });

    // the agent's runtime dies but its container still runs: the gateway finds no healthy replica
    await runtimes[1]!.close();
    const down = await client.callTool({
      name: 'beta-agent__process_data',
      arguments: { data: [1] },
    });
    expect(down).toMatchObject({
      isError: true,
      content: [{ text: expect.stringMatching(/^AGENT_(UNAVAILABLE|CALL_FAILED): /) }],
    });
  });

  it('a stopped agent’s tools leave the list and the session is told with tools/list_changed', async () => {
    const client = await connect(tokens.viewer);
    expect((await client.listTools()).tools.some((t) => t.name.startsWith('beta-agent__'))).toBe(true);
    const changed = new Promise<void>((resolve) => client.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve()));
    expect((await inject('POST', '/agents/BetaAgent/stop')).statusCode).toBe(200);
    await changed;
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names.some((n) => n.startsWith('beta-agent__'))).toBe(false);
    expect(names.filter((n) => n.startsWith('alpha-agent__'))).toHaveLength(testAgent.tools.length);
  });

  it('tokens: none or bad is 401, viewer lists but may not call (403), another token may not use the session (404)', async () => {
    await expect(connect(undefined)).rejects.toMatchObject({ code: 401, message: expect.stringContaining('UNAUTHORIZED') });
    await expect(connect('not-a-token')).rejects.toMatchObject({ code: 401 });
    const viewer = await connect(tokens.viewer);
    expect((await viewer.listTools()).tools.length).toBeGreaterThan(0);
    await expect(viewer.callTool({ name: 'alpha-agent__echo', arguments: {} })).rejects.toMatchObject({ code: 403, message: expect.stringContaining('tools/call needs scope operator') });

    const init = await rawInit(tokens.operator);
    expect(init.status).toBe(200);
    const sid = init.headers.get('mcp-session-id')!;
    const stolen = await rawPost(tokens.viewer, sid, {
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/list',
    });
    expect(stolen.status).toBe(404);
    expect(((await stolen.json()) as { error: { code: string } }).error.code).toBe('MCP_SESSION_NOT_FOUND');
  });

  it('a foreign Origin is 403; no session id on a non-initialize request is 400', async () => {
    await expect(connect(tokens.operator, { origin: 'https://evil.example' })).rejects.toMatchObject({ code: 403, message: expect.stringContaining('may not use this MCP server') });
    const r = await rawPost(tokens.operator, undefined, {
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/list',
    });
    expect(r.status).toBe(400);
  });

  it('sessions are bounded (503 MCP_SESSIONS_FULL) and expire when idle', async () => {
    const sids: string[] = [];
    for (let i = 0; i < 3; i++) sids.push((await rawInit(tokens.operator)).headers.get('mcp-session-id')!);
    expect(m.door.sessionCount).toBe(3);
    const full = await rawInit(tokens.operator);
    expect(full.status).toBe(503);
    expect(((await full.json()) as { error: { code: string } }).error.code).toBe('MCP_SESSIONS_FULL');

    clock.advance(30_000);
    await rawPost(tokens.operator, sids[0], {
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/list',
    });
    clock.advance(30_000);
    // sids[1] and [2] were idle 60 s; sids[0] was used 30 s ago
    expect(m.door.sweep()).toBe(2);
    expect(m.door.sessionCount).toBe(1);
    expect(
      (
        await rawPost(tokens.operator, sids[1], {
          jsonrpc: '2.0',
          id: 3,
          method: 'tools/list',
        })
      ).status,
    ).toBe(404);
    expect(
      (
        await rawPost(tokens.operator, sids[0], {
          jsonrpc: '2.0',
          id: 3,
          method: 'tools/list',
        })
      ).status,
    ).toBe(200);
    expect((await rawInit(tokens.operator)).status).toBe(200);
  });

  it('GET /.well-known/agents.json lists both cards with the manager URLs, for a viewer token only', async () => {
    expect((await fetch(`${base}/.well-known/agents.json`)).status).toBe(401);
    const r = await fetch(`${base}/.well-known/agents.json`, {
      headers: { authorization: `Bearer ${tokens.viewer}` },
    });
    expect(r.status).toBe(200);
    const { agents } = (await r.json()) as { agents: any[] };
    expect(agents.map((a) => a.slug)).toEqual(['alpha-agent', 'beta-agent']);
    for (const [i, a] of agents.entries()) {
      expect(a.available).toBe(true);
      expect(a.manager).toEqual({
        url: `${base}/api/v1/agents/${a.slug}`,
        a2a: `${base}/a2a/${a.slug}`,
        card: `${base}/a2a/${a.slug}/.well-known/agent-card.json`,
        mcp: `${base}/mcp`,
        toolPrefix: `${a.slug}__`,
      });
      expect(a.direct.url).toBe(`http://127.0.0.1:${PORTS[i]}`);
      expect(a.card).toMatchObject({
        name: a.name,
        supportedInterfaces: [
          {
            url: `${base}/a2a/${a.slug}`,
            protocolBinding: 'HTTP+JSON',
            protocolVersion: '1.0',
          },
        ],
      });
      expect(a.card.skills.map((s: { id: string }) => s.id)).toEqual(testAgent.tools.map((t) => t.name));
    }
  });
});

const MCP_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
};

function rawPost(token: string, sid: string | undefined, body: object): Promise<Response> {
  return fetch(`${base}/mcp`, {
    method: 'POST',
    headers: {
      ...MCP_HEADERS,
      authorization: `Bearer ${token}`,
      'mcp-protocol-version': '2025-06-18',
      ...(sid ? { 'mcp-session-id': sid } : {}),
    },
    body: JSON.stringify(body),
  });
}

function rawInit(token: string): Promise<Response> {
  return rawPost(token, undefined, {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: {
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: 'raw', version: '1' },
    },
  });
}
