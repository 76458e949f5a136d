import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { defineAgent, defineTool, ToolInputError } from '../../src/runtime/define.js';
import { originAllowed } from '../../src/runtime/mcp.js';
import { structuredResult } from '../../src/runtime/mcp-server.js';
import { buildServer } from '../../src/runtime/server.js';
import { processData } from '../../agent-template/tools/process_data.js';

const agent = defineAgent({
  name: 'DataAgent',
  description: 'test agent',
  version: '1.2.3',
  tools: [
    processData,
    defineTool({ name: 'boom', description: 'throws', parameters: { type: 'object' }, handler: () => { throw new Error('disk on fire'); } }),
    defineTool({ name: 'picky', description: 'input error', parameters: { type: 'object' }, handler: () => { throw new ToolInputError('x must be even'); } }),
    defineTool({ name: 'slow', description: 'too slow', parameters: { type: 'object' }, timeoutMs: 50, handler: () => new Promise((r) => setTimeout(r, 5000)) }),
    defineTool({ name: 'count', description: 'a number', parameters: { type: 'object' }, handler: () => 42 }),
  ],
});

let app: FastifyInstance;
let client: Client;
let base: string;
beforeAll(async () => {
  app = await buildServer(agent, { processMetrics: false, publicUrl: 'https://agents.example.com/agents/data-agent' });
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  client = new Client({ name: 'vitest', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`)));
});
afterAll(async () => {
  await client?.close();
  await app.close();
});

describe('MCP over streamable HTTP at /mcp (the SDK client)', () => {
  it('initializes with the agent as the server', () => {
    expect(client.getServerVersion()).toMatchObject({ name: 'DataAgent', version: '1.2.3' });
    expect(client.getServerCapabilities()).toMatchObject({ tools: {} });
  });

  it('tools/list gives every tool with its parameter schema as inputSchema', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual(['process_data', 'boom', 'picky', 'slow', 'count']);
    expect(tools[0]).toEqual({ name: 'process_data', description: processData.description, inputSchema: processData.parameters });
  });

  it('tools/call returns the result as a JSON text block and as structured content', async () => {
    const r = await client.callTool({ name: 'process_data', arguments: { data: [1, 2, 3, 4, 5] } });
    const expected = { count: 5, sum: 15, mean: 3, min: 1, max: 5 };
    expect(r).toEqual({ content: [{ type: 'text', text: JSON.stringify(expected) }], structuredContent: expected });
    // structured content must be an object: anything else comes wrapped
    expect((await client.callTool({ name: 'count', arguments: {} })).structuredContent).toEqual({ result: 42 });
  });

  it('invalid arguments, a throwing tool, a ToolInputError and a timeout are tool errors (isError), not transport failures', async () => {
    const cases: [string, unknown, string][] = [
      ['process_data', { data: 'abc' }, 'INVALID_PARAMETERS: parameters.data must be array'],
      ['process_data', {}, 'INVALID_PARAMETERS: parameters.data is required'],
      ['boom', {}, 'TOOL_ERROR: disk on fire'],
      ['picky', {}, 'INVALID_PARAMETERS: x must be even'],
      ['slow', {}, "TOOL_TIMEOUT: tool 'slow' took longer than 50 ms"],
    ];
    for (const [name, args, text] of cases) {
      const r = await client.callTool({ name, arguments: args as Record<string, unknown> });
      expect(r, name).toEqual({ isError: true, content: [{ type: 'text', text }] });
    }
  });

  it('an unknown tool is the JSON-RPC error -32602 (as the SDK McpServer answers it)', async () => {
    await expect(client.callTool({ name: 'nope', arguments: {} })).rejects.toMatchObject({ code: -32602, message: expect.stringContaining("unknown tool 'nope'") });
  });

  it('counts MCP calls in the same metrics as /execute', async () => {
    const m = await app.inject('/metrics');
    expect(m.body).toMatch(/nexus_agent_tool_calls_total\{tool="process_data",outcome="ok"\} 1/);
    expect(m.body).toMatch(/nexus_agent_tool_calls_total\{tool="slow",outcome="timeout"\} 1/);
  });
});

describe('/mcp HTTP edges', () => {
  const rpc = { jsonrpc: '2.0', id: 7, method: 'tools/list' };
  const accept = { accept: 'application/json, text/event-stream' };

  it('rejects a foreign Origin with 403; allows loopback origins and the public URL origin', async () => {
    const foreign = await app.inject({ method: 'POST', url: '/mcp', headers: { ...accept, origin: 'https://evil.example' }, payload: rpc });
    expect(foreign.statusCode).toBe(403);
    expect(foreign.json()).toEqual({ jsonrpc: '2.0', error: { code: -32000, message: expect.stringContaining('https://evil.example') }, id: null });
    for (const origin of ['http://localhost:6274', 'http://127.0.0.1:3000', 'https://agents.example.com']) {
      const r = await app.inject({ method: 'POST', url: '/mcp', headers: { ...accept, origin }, payload: rpc });
      expect(r.statusCode, origin).toBe(200);
      expect(r.json().result.tools).toHaveLength(5);
    }
  });

  it('GET and DELETE are 405 (stateless: no session, no server stream)', async () => {
    for (const method of ['GET', 'DELETE'] as const) {
      const r = await app.inject({ method, url: '/mcp', headers: accept });
      expect(r.statusCode).toBe(405);
      expect(r.headers.allow).toBe('POST');
    }
  });

  it('malformed JSON is a JSON-RPC parse error', async () => {
    const r = await app.inject({ method: 'POST', url: '/mcp', headers: { ...accept, 'content-type': 'application/json' }, payload: '{"jsonrpc":' });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32700 }, id: null });
  });
});

describe('originAllowed / structuredResult', () => {
  it('allows no Origin, loopback and the public origin only', () => {
    expect(originAllowed(undefined)).toBe(true);
    expect(originAllowed('http://localhost')).toBe(true);
    expect(originAllowed('http://app.localhost:8080')).toBe(true);
    expect(originAllowed('http://[::1]:9000')).toBe(true);
    expect(originAllowed('http://localhost.evil.example')).toBe(false);
    expect(originAllowed('null')).toBe(false);
    expect(originAllowed('file://localhost')).toBe(false);
    expect(originAllowed('https://a.example', 'https://a.example/agents/x')).toBe(true);
    expect(originAllowed('https://a.example:444', 'https://a.example/agents/x')).toBe(false);
  });

  it('wraps non-objects', () => {
    expect(structuredResult({ a: 1 })).toEqual({ a: 1 });
    expect(structuredResult([1])).toEqual({ result: [1] });
    expect(structuredResult(null)).toEqual({ result: null });
    expect(structuredResult('s')).toEqual({ result: 's' });
  });
});
