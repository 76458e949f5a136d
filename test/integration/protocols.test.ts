import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, TaskState, type Part } from '@a2a-js/sdk';
import { ClientFactory } from '@a2a-js/sdk/client';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { request } from '../../src/fleet/http.js';
import { createAgent, startAgents } from '../../src/fleet/manager.js';
import { makeWorkspace, workspaceContainers, type TestWorkspace } from '../helpers/workspace.js';

// Real clients against a started agent container (issue 12): the official A2A JS client over the
// card's HTTP+JSON interface, and the MCP SDK client over streamable HTTP.
let ws: TestWorkspace;
let url: string;
const TEXT = 'Nexus Delta runs agents. Each agent serves tools!';

beforeAll(async () => {
  ws = await makeWorkspace('9221-9225');
  url = (await createAgent(ws.deps, { name: 'TextAgent', capabilities: ['nlp'] })).url;
  const started = await startAgents(ws.deps, ['TextAgent']);
  expect(started.agents[0]).toMatchObject({ outcome: 'started' });
});
afterAll(async () => {
  await ws.cleanup();
  expect(await workspaceContainers(ws.dir)).toEqual([]);
});

const dataPart = (value: unknown): Part => ({ content: { $case: 'data' as const, value }, metadata: undefined, filename: '', mediaType: 'application/json' });
const textPart = (value: string): Part => ({ content: { $case: 'text' as const, value }, metadata: undefined, filename: '', mediaType: 'text/plain' });
const message = (parts: Part[]) => ({
  message: { messageId: crypto.randomUUID(), contextId: '', taskId: '', role: Role.ROLE_USER, parts, metadata: undefined, extensions: [], referenceTaskIds: [] },
  tenant: '',
  configuration: undefined,
  metadata: undefined,
});

describe('A2A: the official JS client (@a2a-js/sdk) on a started agent', () => {
  it('reads the card, sends a data part and a text part, and gets the tool result as a completed task', async () => {
    const expected = (await request(`${url}/execute`, { method: 'POST', json: { tool_name: 'analyze_text', parameters: { text: TEXT } }, timeoutMs: 5000 })).body as {
      result: unknown;
    };
    const client = await new ClientFactory().createFromUrl(url);
    const card = await client.getAgentCard();
    expect(card.supportedInterfaces[0]).toMatchObject({ url, protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' });

    for (const part of [dataPart({ tool_name: 'analyze_text', parameters: { text: TEXT } }), textPart(TEXT)]) {
      const task = await client.sendMessage(message([part]));
      expect('status' in task && task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
      const artifact = 'artifacts' in task ? task.artifacts[0] : undefined;
      expect(artifact?.parts[0]?.content).toEqual({ $case: 'data', value: expected.result });
    }
  });

  it('gets, lists and (not) cancels tasks, and maps errors to the SDK error classes', async () => {
    const client = await new ClientFactory().createFromUrl(url);
    const sent = await client.sendMessage(message([dataPart({ tool_name: 'analyze_text', parameters: { text: 'one two two' } })]));
    const id = (sent as { id: string }).id;
    const got = await client.getTask({ id, tenant: '', historyLength: undefined });
    expect(got).toMatchObject({ id, status: { state: TaskState.TASK_STATE_COMPLETED } });
    const list = await client.listTasks({ tenant: '', contextId: '', status: TaskState.TASK_STATE_UNSPECIFIED, pageSize: 1, pageToken: '', historyLength: undefined, statusTimestampAfter: undefined, includeArtifacts: undefined });
    expect(list.tasks.map((t) => t.id)).toEqual([id]);
    expect(list.totalSize).toBe(3);
    expect(list.nextPageToken).not.toBe('');
    await expect(client.cancelTask({ id, tenant: '', metadata: undefined })).rejects.toMatchObject({ name: 'TaskNotCancelableError', reason: 'TASK_NOT_CANCELABLE', statusCode: 400 });
    await expect(client.getTask({ id: 'no-such-task', tenant: '', historyLength: undefined })).rejects.toMatchObject({ name: 'TaskNotFoundError', statusCode: 404 });
    // invalid parameters: the task is rejected with the same message /execute gives
    const rejected = await client.sendMessage(message([dataPart({ tool_name: 'analyze_text', parameters: { text: 5 } })]));
    expect(rejected).toMatchObject({ status: { state: TaskState.TASK_STATE_REJECTED } });
    const parts = (rejected as { status: { message: { parts: { content: unknown }[] } } }).status.message.parts;
    expect(parts[1]!.content).toEqual({ $case: 'data', value: { error: { code: 'INVALID_PARAMETERS', message: 'parameters.text must be string' } } });
  });
});

describe('MCP: the SDK client over streamable HTTP on a started agent', () => {
  it('lists and calls the tools; an invalid argument is a tool error', async () => {
    const client = new McpClient({ name: 'nexus-integration', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`)));
    try {
      const { tools } = await client.listTools();
      const rest = (await request(`${url}/tools`, { timeoutMs: 5000 })).body as { tools: { name: string; parameters: unknown }[] };
      expect(tools.map((t) => [t.name, t.inputSchema])).toEqual(rest.tools.map((t) => [t.name, t.parameters]));
      const r = await client.callTool({ name: 'analyze_text', arguments: { text: TEXT, top: 2 } });
      expect(r.isError).toBeUndefined();
      expect(r.structuredContent).toMatchObject({ words: 8, sentences: 2, top_words: [{ word: 'agent', count: 1 }, { word: 'agents', count: 1 }] });
      expect(JSON.parse((r.content as { text: string }[])[0]!.text)).toEqual(r.structuredContent);
      const bad = await client.callTool({ name: 'analyze_text', arguments: { text: TEXT, top: 0 } });
      expect(bad).toEqual({ isError: true, content: [{ type: 'text', text: 'INVALID_PARAMETERS: parameters.top must be >= 1' }] });
    } finally {
      await client.close();
    }
  });

  it('refuses a foreign Origin', async () => {
    const r = await fetch(`${url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', origin: 'https://evil.example' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(r.status).toBe(403);
  });
});
