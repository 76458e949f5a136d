import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { defineAgent, defineTool, ToolInputError } from '../../src/runtime/define.js';
import { buildServer } from '../../src/runtime/server.js';
import { processData } from '../../agent-template/tools/process_data.js';

const agent = defineAgent({
  name: 'DataAgent',
  description: 'test agent',
  version: '1.2.3',
  capabilities: ['data'],
  tools: [
    processData,
    defineTool({ name: 'boom', description: 'throws', parameters: { type: 'object' }, handler: () => { throw new Error('disk on fire'); } }),
    defineTool({ name: 'picky', description: 'input error', parameters: { type: 'object' }, handler: () => { throw new ToolInputError('x must be even'); } }),
    defineTool({ name: 'slow', description: 'too slow', parameters: { type: 'object' }, timeoutMs: 50, handler: () => new Promise((r) => setTimeout(r, 5000)) }),
  ],
});

let app: FastifyInstance;
beforeAll(async () => {
  app = await buildServer(agent, { bodyLimitBytes: 4096, processMetrics: false });
});
afterAll(() => app.close());

const exec = (payload: unknown) => app.inject({ method: 'POST', url: '/execute', payload: payload as object });

describe('agent contract (DESIGN.md)', () => {
  it('GET /health', async () => {
    const r = await app.inject('/health');
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ status: 'healthy', agent: 'DataAgent', version: '1.2.3' });
    expect(typeof r.json().uptime_s).toBe('number');
    expect(typeof r.json().instance).toBe('string');
  });

  it('GET /tools lists every tool with its parameter schema', async () => {
    const r = await app.inject('/tools');
    expect(r.json().tools.map((t: { name: string }) => t.name)).toEqual(['process_data', 'boom', 'picky', 'slow']);
    expect(r.json().tools[0].parameters.required).toEqual(['data']);
  });

  it("answers the seed's process_data example", async () => {
    const r = await exec({ tool_name: 'process_data', parameters: { data: [1, 2, 3, 4, 5] } });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ result: { count: 5, sum: 15, mean: 3, min: 1, max: 5 } });
  });

  it('unknown tool -> 404 with the error shape', async () => {
    const r = await exec({ tool_name: 'nope', parameters: {} });
    expect(r.statusCode).toBe(404);
    expect(r.json()).toEqual({ error: { code: 'TOOL_NOT_FOUND', message: expect.stringContaining('process_data') } });
  });

  it('parameters failing the schema -> 400 naming the field', async () => {
    let r = await exec({ tool_name: 'process_data', parameters: { data: 'abc' } });
    expect(r.statusCode).toBe(400);
    expect(r.json().error).toEqual({ code: 'INVALID_PARAMETERS', message: 'parameters.data must be array' });
    r = await exec({ tool_name: 'process_data', parameters: {} });
    expect(r.json().error.message).toBe('parameters.data is required');
    r = await exec({ tool_name: 'process_data', parameters: { data: [1, 'x'] } });
    expect(r.json().error.message).toBe('parameters.data.1 must be number');
  });

  it('missing tool_name -> 400 INVALID_REQUEST', async () => {
    const r = await exec({ parameters: {} });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.code).toBe('INVALID_REQUEST');
  });

  it('a tool that throws -> 500 with its message; ToolInputError -> 400', async () => {
    let r = await exec({ tool_name: 'boom' });
    expect(r.statusCode).toBe(500);
    expect(r.json().error).toEqual({ code: 'TOOL_ERROR', message: 'disk on fire' });
    r = await exec({ tool_name: 'picky' });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.message).toBe('x must be even');
  });

  it('a tool over its time budget -> 504', async () => {
    const r = await exec({ tool_name: 'slow' });
    expect(r.statusCode).toBe(504);
    expect(r.json().error.code).toBe('TOOL_TIMEOUT');
  });

  it('malformed JSON -> 400, oversize body -> 413, other media type -> 415', async () => {
    let r = await app.inject({ method: 'POST', url: '/execute', headers: { 'content-type': 'application/json' }, payload: '{"tool_name": ' });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.code).toBe('INVALID_JSON');
    r = await exec({ tool_name: 'process_data', parameters: { data: Array.from({ length: 2000 }, (_, i) => i) } });
    expect(r.statusCode).toBe(413);
    expect(r.json().error.code).toBe('PAYLOAD_TOO_LARGE');
    r = await app.inject({ method: 'POST', url: '/execute', headers: { 'content-type': 'text/plain' }, payload: 'hi' });
    expect(r.statusCode).toBe(415);
    expect(r.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('unknown routes -> 404 with the error shape', async () => {
    const r = await app.inject('/nope');
    expect(r.statusCode).toBe(404);
    expect(r.json().error.code).toBe('NOT_FOUND');
  });

  it('GET /metrics counts tool calls by outcome (Prometheus text)', async () => {
    const r = await app.inject('/metrics');
    expect(r.headers['content-type']).toMatch(/text\/plain/);
    expect(r.body).toMatch(/nexus_agent_tool_calls_total\{tool="process_data",outcome="ok"\} 1/);
    expect(r.body).toMatch(/nexus_agent_tool_calls_total\{tool="boom",outcome="error"\} 1/);
  });

  it('serves the A2A agent card with skills = tools', async () => {
    const r = await app.inject({ url: '/.well-known/agent-card.json', headers: { host: 'localhost:8081' } });
    const card = r.json();
    expect(card).toMatchObject({ name: 'DataAgent', version: '1.2.3', defaultInputModes: ['application/json'] });
    expect(card.supportedInterfaces[0]).toMatchObject({ url: 'http://localhost:8081', protocolVersion: '1.0' });
    expect(card.skills.map((s: { id: string }) => s.id)).toEqual(['process_data', 'boom', 'picky', 'slow']);
  });
});

describe('defineAgent / defineTool', () => {
  it('reject malformed definitions', () => {
    expect(() => defineTool({ name: 'Bad Name', description: '', parameters: { type: 'object' }, handler: () => 1 })).toThrow(/snake_case/);
    expect(() => defineTool({ name: 'x', description: '', parameters: { type: 'array' }, handler: () => 1 })).toThrow(/type "object"/);
    expect(() => defineAgent({ name: 'A', description: '', version: '1', tools: [processData, processData] })).toThrow(/defined twice/);
    expect(() => defineAgent({ name: 'A', description: '', version: '1', tools: [] })).toThrow(/no tools/);
  });
});

describe('graceful close', () => {
  it('lets an in-flight request finish when the server closes', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const a = await buildServer(
      defineAgent({ name: 'G', description: '', version: '1', tools: [defineTool({ name: 'wait', description: '', parameters: { type: 'object' }, handler: async () => { started(); await gate; return 'done'; } })] }),
      { processMetrics: false },
    );
    await a.listen({ port: 0, host: '127.0.0.1' });
    const port = (a.server.address() as { port: number }).port;
    const inflight = fetch(`http://127.0.0.1:${port}/execute`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"tool_name":"wait"}' });
    // close only once the call is inside the tool (a fixed sleep raced a loaded machine)
    await running;
    const closing = a.close();
    release();
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ result: 'done' });
    await closing;
  });
});
