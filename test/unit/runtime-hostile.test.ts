import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { defineAgent, defineTool } from '../../src/runtime/define.js';
import { buildServer } from '../../src/runtime/server.js';
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
