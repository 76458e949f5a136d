import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { defineAgent, defineTool } from '../../src/runtime/define.js';
import { buildServer } from '../../src/runtime/server.js';
import { checkJsonCost, MAX_JSON_CONTAINERS } from '../../src/runtime/contract.js';
import { analyzeText } from '../../agent-template/tools/analyze_text.js';
import { echo } from '../../agent-template/tools/echo.js';
import { evaluateExpression } from '../../agent-template/tools/evaluate_expression.js';
import { processData } from '../../agent-template/tools/process_data.js';

// Hostile input on the agent contract (issue 14 §3 and §5), handlers on the server's own thread.
const agent = defineAgent({
  name: 'StarterAgent',
  description: 'the starter tools and two that misbehave',
  version: '1.0.0',
  tools: [
    echo,
    analyzeText,
    processData,
    evaluateExpression,
    defineTool({
      name: 'leaky',
      description: 'throws an error naming files, with a stack in its message',
      parameters: { type: 'object' },
      handler: () => {
        const err = new Error(`cannot read file:///app/agent/agent.mjs:12:7\n    at handler (/app/agent/agent.mjs:12:7)\n    at node:internal/process/task_queues:95:5`);
        throw err;
      },
    }),
    defineTool({ name: 'bigint', description: 'returns a BigInt', parameters: { type: 'object' }, handler: () => ({ n: 1n }) }),
  ],
});

let app: FastifyInstance;
beforeAll(async () => {
  app = await buildServer(agent, { processMetrics: false, tools: { maxResultBytes: 64 * 1024 } });
});
afterAll(() => app.close());

const post = (payload: string) => app.inject({ method: 'POST', url: '/execute', headers: { 'content-type': 'application/json' }, payload });

describe('hostile /execute bodies', () => {
  it('a body nested 400,000 levels deep is 400, not 500 (structuredClone overflowed the stack)', async () => {
    const deep = '['.repeat(400_000) + ']'.repeat(400_000);
    const r = await post(`{"tool_name":"echo","parameters":{"message":${deep}}}`);
    expect(r.statusCode).toBe(400);
    expect(r.json().error).toEqual({ code: 'INVALID_REQUEST', message: 'body nests deeper than 64 levels' });
    expect((await app.inject('/health')).statusCode).toBe(200);
  });

  it('a result larger than the limit is a clear TOOL_ERROR, not a 200 of any size', async () => {
    const message = Array.from({ length: 30_000 }, () => ({}));
    const r = await app.inject({ method: 'POST', url: '/execute', payload: { tool_name: 'echo', parameters: { message } } });
    expect(r.statusCode).toBe(500);
    expect(r.json().error).toEqual({ code: 'TOOL_ERROR', message: "tool 'echo' returned a result larger than 65536 bytes" });
  });

  it('a result that is not JSON is a clear TOOL_ERROR', async () => {
    const r = await post('{"tool_name":"bigint"}');
    expect(r.json().error).toEqual({ code: 'TOOL_ERROR', message: "tool 'bigint' returned a result that cannot be sent: it is not JSON (a BigInt, a cycle or a function)" });
  });

  it('TOOL_ERROR keeps the message but never a stack or a file path', async () => {
    const r = await post('{"tool_name":"leaky"}');
    expect(r.statusCode).toBe(500);
    expect(r.json().error).toEqual({ code: 'TOOL_ERROR', message: 'cannot read <path>' });
  });

  it('property: arbitrary bodies never crash the server nor answer a 5xx other than TOOL_ERROR/TOOL_TIMEOUT', async () => {
    const toolName = fc.oneof(fc.constantFrom('echo', 'analyze_text', 'process_data', 'evaluate_expression', '__proto__', 'constructor'), fc.string());
    const nested = fc.letrec((tie) => ({ v: fc.oneof({ depthSize: 'small' }, fc.jsonValue(), fc.array(tie('v')), fc.dictionary(fc.string(), tie('v'))) })).v;
    const body = fc.oneof(
      fc.record({ tool_name: toolName, parameters: fc.oneof(fc.dictionary(fc.string(), nested), nested) }, { requiredKeys: [] }).map((b) => JSON.stringify(b)),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string(),
      fc.integer({ min: 1, max: 5000 }).map((n) => `{"tool_name":"echo","parameters":{"message":${'['.repeat(n)}${']'.repeat(n)}}}`),
    );
    await fc.assert(
      fc.asyncProperty(body, async (payload) => {
        const r = await post(payload);
        if (r.statusCode !== 200) {
          const { error } = r.json();
          expect(typeof error.code).toBe('string');
          expect(typeof error.message).toBe('string');
          if (r.statusCode >= 500) expect(['TOOL_ERROR', 'TOOL_TIMEOUT']).toContain(error.code);
        }
      }),
      { numRuns: 400 },
    );
    expect((await app.inject('/health')).json().status).toBe('healthy');
  });
});

// `[{},{},...]` of 1 MiB held 350,000 objects (18 MB parsed); two at once killed a 64 MiB heap
const manyObjects = `[${Array.from({ length: MAX_JSON_CONTAINERS + 1 }, () => '{}').join(',')}]`;

describe('the cost of a body is bounded before it is parsed', () => {
  it('checkJsonCost counts objects and arrays outside strings, honouring escapes', () => {
    expect(() => checkJsonCost('{"a":"[[[[{{{{\\"[[[","b":[1,2,{}]}', 3, 3)).not.toThrow();
    expect(() => checkJsonCost('[[[[]]]]', 3, 100)).toThrow('body nests deeper than 3 levels');
    expect(() => checkJsonCost('[{},{},{}]', 64, 3)).toThrow('body holds more than 3 objects and arrays');
    // a quote escaped inside a string does not end it
    expect(() => checkJsonCost('["\\\"[[[[[["]', 2, 100)).not.toThrow();
  });

  it('/execute: more than 50,000 objects and arrays is 400 naming the limit, and the tool never runs', async () => {
    const r = await post(`{"tool_name":"echo","parameters":{"message":${manyObjects}}}`);
    expect(r.statusCode).toBe(400);
    expect(r.json().error).toEqual({ code: 'INVALID_REQUEST', message: `body holds more than ${MAX_JSON_CONTAINERS} objects and arrays` });
  });

  it('A2A and MCP bodies get the same bound', async () => {
    const data = `{"tool_name":"echo","parameters":{"message":${manyObjects}}}`;
    const a2a = await app.inject({
      method: 'POST',
      url: '/message:send',
      headers: { 'a2a-version': '1.0', 'content-type': 'application/a2a+json' },
      payload: `{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"data":${data}}]}}`,
    });
    expect(a2a.statusCode).toBe(400);
    expect(a2a.json().error.message).toBe(`body holds more than ${MAX_JSON_CONTAINERS} objects and arrays`);
    const mcp = await app.inject({
      method: 'POST',
      url: '/mcp',
      headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
      payload: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":${manyObjects}}}}`,
    });
    expect(mcp.statusCode).toBe(400);
    expect(mcp.json().error).toMatchObject({ code: -32600, message: `body holds more than ${MAX_JSON_CONTAINERS} objects and arrays` });
  });

  it('50,000 objects are still served', async () => {
    const fits = `[${Array.from({ length: MAX_JSON_CONTAINERS - 3 }, () => '{}').join(',')}]`;
    const r = await app.inject({ method: 'POST', url: '/execute', headers: { 'content-type': 'application/json' }, payload: `{"tool_name":"process_data","parameters":{"data":${fits}}}` });
    // reached the tool's own validation: the body was parsed
    expect(r.json().error.code).toBe('INVALID_PARAMETERS');
  });
});

describe('calls held at once are bounded', () => {
  it('past maxCalls a call answers 503 AGENT_BUSY with Retry-After, and the held ones finish', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = defineAgent({
      name: 'Slow',
      description: 'waits',
      version: '1.0.0',
      tools: [defineTool({ name: 'wait', description: 'waits for the test', parameters: { type: 'object' }, handler: () => gate.then(() => 'done') })],
    });
    const s = await buildServer(slow, { processMetrics: false, tools: { maxCalls: 2 } });
    try {
      const call = () => s.inject({ method: 'POST', url: '/execute', payload: { tool_name: 'wait' } });
      const held = [call(), call()];
      await new Promise((r) => setImmediate(r));
      const busy = await call();
      expect(busy.statusCode).toBe(503);
      expect(busy.headers['retry-after']).toBe('1');
      expect(busy.json().error.code).toBe('AGENT_BUSY');
      release();
      for (const r of await Promise.all(held)) expect(r.json()).toEqual({ result: 'done' });
      expect((await call()).statusCode).toBe(200);
    } finally {
      await s.close();
    }
  });
});

describe('process metrics keep no timer', () => {
  it('exports the scrape-time event-loop lag but no sampled histogram (its 10 ms timer woke idle agents)', async () => {
    const s = await buildServer(agent);
    try {
      const text = (await s.inject('/metrics')).body;
      expect(text).toContain('nodejs_eventloop_lag_seconds');
      expect(text).toContain('process_cpu_seconds_total');
      expect(text).not.toContain('nodejs_eventloop_lag_p99_seconds');
    } finally {
      await s.close();
    }
  });
});

describe('runtime settings from the environment', () => {
  it('envInt takes whole numbers and names the variable, never its value, otherwise', async () => {
    const { envInt } = await import('../../src/runtime/main.js');
    expect(envInt('TOOL_MEMORY_MIB', 8, {})).toBeUndefined();
    expect(envInt('TOOL_MEMORY_MIB', 8, { TOOL_MEMORY_MIB: '32' })).toBe(32);
    expect(() => envInt('TOOL_MEMORY_MIB', 8, { TOOL_MEMORY_MIB: 'abc' })).toThrow('TOOL_MEMORY_MIB must be a whole number >= 8');
    expect(() => envInt('TOOL_MEMORY_MIB', 8, { TOOL_MEMORY_MIB: '4' })).toThrow(/^TOOL_MEMORY_MIB must be a whole number >= 8$/);
  });
});
