import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/runtime/server.js';
import hostile from '../fixtures/agents/hostile-agent.js';

// Tool handlers in worker threads (issue 14 §3): the worker loads this module itself.
const modulePath = fileURLToPath(new URL('../fixtures/agents/hostile-agent.ts', import.meta.url));

let app: FastifyInstance;
beforeAll(async () => {
  app = await buildServer(hostile, { processMetrics: false, tools: { modulePath, maxResultBytes: 4096, workerMemoryMiB: 16 } });
});
afterAll(() => app.close());

const exec = (tool_name: string, parameters: object = {}) => app.inject({ method: 'POST', url: '/execute', payload: { tool_name, parameters } });

describe('tool handlers in worker threads', () => {
  it('runs a tool in a worker and answers its result', async () => {
    const r = await exec('process_data', { data: [1, 2, 3] });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ result: { count: 3, sum: 6, mean: 2, min: 1, max: 3 } });
  });

  it('a handler that never yields costs its own call: 504, and the server keeps answering', async () => {
    const spinning = exec('spin');
    const health = await app.inject('/health');
    expect(health.statusCode).toBe(200);
    const r = await spinning;
    expect(r.statusCode).toBe(504);
    expect(r.json().error.code).toBe('TOOL_TIMEOUT');
    expect((await exec('echo', { message: 'after' })).json()).toEqual({ result: { echo: { message: 'after' } } });
  });

  it('a handler that exhausts its heap gets a generic TOOL_ERROR, and the next call works', async () => {
    const r = await exec('hog');
    expect(r.statusCode).toBe(500);
    expect(r.json().error).toEqual({ code: 'TOOL_ERROR', message: "tool 'hog' ran out of memory (limit 16 MiB)" });
    expect((await exec('echo', { message: 1 })).statusCode).toBe(200);
  });

  it('a handler that exits its thread gets a generic TOOL_ERROR', async () => {
    const r = await exec('quits');
    expect(r.statusCode).toBe(500);
    expect(r.json().error).toEqual({ code: 'TOOL_ERROR', message: "tool 'quits' failed: its worker stopped" });
    expect((await exec('echo')).statusCode).toBe(200);
  });

  it("keeps the author's message but never a stack or a path", async () => {
    const r = await exec('leaky');
    expect(r.json().error).toEqual({ code: 'TOOL_ERROR', message: "ENOENT: no such file or directory, open '<path>'" });
    const p = await exec('picky');
    expect(p.statusCode).toBe(400);
    expect(p.json().error).toEqual({ code: 'INVALID_PARAMETERS', message: 'x must be even' });
  });

  it('a result over the limit is a clear TOOL_ERROR', async () => {
    const r = await exec('huge');
    expect(r.statusCode).toBe(500);
    expect(r.json().error).toEqual({ code: 'TOOL_ERROR', message: "tool 'huge' returned a result larger than 4096 bytes" });
  });

  it('calls whose parameters would pass the held budget answer 503 AGENT_BUSY; a lone call always runs', async () => {
    const small = await buildServer(hostile, { processMetrics: false, tools: { modulePath, maxHeldParams: 1000 } });
    try {
      const big = { pad: 'x'.repeat(600) };
      const call = () => small.inject({ method: 'POST', url: '/execute', payload: { tool_name: 'spin', parameters: big } });
      const first = call();
      await new Promise((r) => setImmediate(r));
      const second = await call();
      expect(second.statusCode).toBe(503);
      expect(second.json().error.code).toBe('AGENT_BUSY');
      expect((await first).json().error.code).toBe('TOOL_TIMEOUT');
      // held nothing any more: the same call is taken again
      expect((await call()).json().error.code).toBe('TOOL_TIMEOUT');
    } finally {
      await small.close();
    }
  });
});
