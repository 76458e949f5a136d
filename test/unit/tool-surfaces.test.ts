import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { Ajv } from 'ajv';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { defineAgent } from '../../src/runtime/define.js';
import { buildServer } from '../../src/runtime/server.js';
import { analyzeText } from '../../agent-template/tools/analyze_text.js';
import { echo } from '../../agent-template/tools/echo.js';
import { evaluateExpression } from '../../agent-template/tools/evaluate_expression.js';
import { processData } from '../../agent-template/tools/process_data.js';

// One source of truth: the card's skills, GET /tools, MCP tools/list and what /execute accepts
// are the same set of tools with the same schemas (issue 12).
const agent = defineAgent({ name: 'AllTools', description: 'every starter tool', version: '0.1.0', tools: [processData, analyzeText, evaluateExpression, echo] });

let app: FastifyInstance;
let mcp: Client;
beforeAll(async () => {
  app = await buildServer(agent, { processMetrics: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  mcp = new Client({ name: 'vitest', version: '1.0.0' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/mcp`)));
});
afterAll(async () => {
  await mcp?.close();
  await app.close();
});

// parameter objects some tools accept and others refuse
const PROBES: unknown[] = [
  {},
  { data: [1, 2] },
  { data: 'x' },
  { text: 'hello' },
  { text: 'hello', top: 0 },
  { expression: '1 + 2' },
  { expression: 3 },
  { message: 'hi' },
  { data: [1], extra: true },
];

describe('one source of truth for the tool set', () => {
  it('card skills, GET /tools, MCP tools/list and /execute agree on names, descriptions and schemas', async () => {
    const card = (await app.inject('/.well-known/agent-card.json')).json() as { skills: { id: string; name: string; description: string }[] };
    const rest = (await app.inject('/tools')).json() as { tools: { name: string; description: string; parameters: Record<string, unknown> }[] };
    const { tools: listed } = await mcp.listTools();

    const names = rest.tools.map((t) => t.name);
    expect(names).toEqual(['process_data', 'analyze_text', 'evaluate_expression', 'echo']);
    expect(card.skills.map((s) => s.id)).toEqual(names);
    expect(card.skills.map((s) => s.description)).toEqual(rest.tools.map((t) => t.description));
    expect(listed.map((t) => t.name)).toEqual(names);
    expect(listed.map((t) => t.description)).toEqual(rest.tools.map((t) => t.description));
    expect(listed.map((t) => t.inputSchema)).toEqual(rest.tools.map((t) => t.parameters));

    // /execute knows exactly these tools...
    const unknown = await app.inject({ method: 'POST', url: '/execute', payload: { tool_name: 'not_listed', parameters: {} } });
    expect(unknown.json().error.code).toBe('TOOL_NOT_FOUND');
    // ...and accepts exactly what the published schema accepts, probe by probe
    const ajv = new Ajv({ strict: false });
    for (const tool of listed) {
      const published = ajv.compile(tool.inputSchema);
      for (const probe of PROBES) {
        const r = await app.inject({ method: 'POST', url: '/execute', payload: { tool_name: tool.name, parameters: probe as object } });
        const accepted = r.json().error?.code !== 'INVALID_PARAMETERS';
        expect(accepted, `${tool.name} ${JSON.stringify(probe)}`).toBe(published(structuredClone(probe)));
      }
    }
  });
});
