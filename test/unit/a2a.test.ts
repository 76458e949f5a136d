import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { MAX_TASK_JSON_CHARS, MAX_TASKS } from '../../src/runtime/a2a.js';
import { defineAgent, defineTool } from '../../src/runtime/define.js';
import { buildServer } from '../../src/runtime/server.js';
import { analyzeText } from '../../agent-template/tools/analyze_text.js';
import { echo } from '../../agent-template/tools/echo.js';
import { processData } from '../../agent-template/tools/process_data.js';

// the A2A 1.0 HTTP+JSON binding (spec sections 3, 5.4, 11): shapes from a2a.proto
let release: (() => void) | undefined;
let sawAbort = false;
const agent = defineAgent({
  name: 'TextAgent',
  description: 'test agent',
  version: '1.0.0',
  tools: [
    processData,
    analyzeText,
    defineTool({ name: 'boom', description: 'throws', parameters: { type: 'object' }, handler: () => { throw new Error('disk on fire'); } }),
    defineTool({
      name: 'wait',
      description: 'waits until released or aborted',
      parameters: { type: 'object' },
      handler: (_p, { signal }) =>
        new Promise((resolve) => {
          release = () => resolve('released');
          signal.addEventListener('abort', () => {
            sawAbort = true;
            resolve('aborted');
          });
        }),
    }),
  ],
});

let app: FastifyInstance;
beforeAll(async () => {
  app = await buildServer(agent, { processMetrics: false });
});
afterAll(() => app.close());

const V = { 'a2a-version': '1.0' };
const userMessage = (parts: unknown[], extra: Record<string, unknown> = {}) => ({ messageId: `m-${Math.random()}`, role: 'ROLE_USER', parts, ...extra });
const send = (body: unknown, headers: Record<string, string> = V) => app.inject({ method: 'POST', url: '/message:send', headers, payload: body as object });
const call = (tool: string, parameters: unknown, configuration?: unknown) =>
  send({ message: userMessage([{ data: { tool_name: tool, parameters } }]), ...(configuration ? { configuration } : {}) });
const errorInfo = (reason: string, domain = 'a2a-protocol.org') => [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason, domain }];

describe('A2A POST /message:send', () => {
  it('runs the tool of a data part {tool_name, parameters}: a completed task whose artifact is the /execute result', async () => {
    const r = await call('process_data', { data: [1, 2, 3, 4, 5] });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/a2a\+json/);
    const { task } = r.json();
    expect(task.status.state).toBe('TASK_STATE_COMPLETED');
    expect(task.status.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(task.artifacts).toEqual([
      { artifactId: expect.any(String), name: 'process_data', parts: [{ data: { count: 5, sum: 15, mean: 3, min: 1, max: 5 }, mediaType: 'application/json' }] },
    ]);
    const exec = await app.inject({ method: 'POST', url: '/execute', payload: { tool_name: 'process_data', parameters: { data: [1, 2, 3, 4, 5] } } });
    expect(task.artifacts[0].parts[0].data).toEqual(exec.json().result);
    // the user's message is the task's history, bound to the task and its context
    expect(task.history).toEqual([expect.objectContaining({ role: 'ROLE_USER', taskId: task.id, contextId: task.contextId })]);
  });

  it('sends a text part to the one tool that takes text, and keeps the client contextId', async () => {
    const r = await send({ message: userMessage([{ text: 'Hello world. Hello!' }], { contextId: 'ctx-1' }) });
    const { task } = r.json();
    expect(task).toMatchObject({ contextId: 'ctx-1', metadata: { tool_name: 'analyze_text' }, status: { state: 'TASK_STATE_COMPLETED' } });
    expect(task.artifacts[0].parts[0].data).toMatchObject({ words: 3, sentences: 2, top_words: [{ word: 'hello', count: 2 }, { word: 'world', count: 1 }] });
  });

  it('the card lists text/plain among the input modes of the one tool that takes text', async () => {
    const card = (await app.inject('/.well-known/agent-card.json')).json();
    expect(card.skills.map((s: { id: string; inputModes?: string[] }) => [s.id, s.inputModes])).toEqual([
      ['process_data', undefined],
      ['analyze_text', ['application/json', 'text/plain']],
      ['boom', undefined],
      ['wait', undefined],
    ]);
  });

  it('a text part to an agent without exactly one text tool is CONTENT_TYPE_NOT_SUPPORTED', async () => {
    const two = await buildServer(defineAgent({ name: 'B', description: '', version: '1', tools: [processData] }), { processMetrics: false });
    const r = await two.inject({ method: 'POST', url: '/message:send', headers: V, payload: { message: userMessage([{ text: 'hi' }]) } });
    await two.close();
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({
      error: { code: 400, status: 'INVALID_ARGUMENT', message: expect.stringContaining('data part'), details: errorInfo('CONTENT_TYPE_NOT_SUPPORTED') },
    });
  });

  it('an unknown tool or invalid parameters reject the task; a failing tool fails it; the error is in the status message', async () => {
    let task = (await call('nope', {})).json().task;
    expect(task.status.state).toBe('TASK_STATE_REJECTED');
    expect(task.status.message).toMatchObject({ role: 'ROLE_AGENT', taskId: task.id, parts: [{ text: expect.stringMatching(/^TOOL_NOT_FOUND: unknown tool 'nope'/) }, { data: { error: { code: 'TOOL_NOT_FOUND' } } }] });
    expect(task.artifacts).toBeUndefined();
    task = (await call('process_data', { data: 'abc' })).json().task;
    expect(task.status.state).toBe('TASK_STATE_REJECTED');
    expect(task.status.message.parts[1].data).toEqual({ error: { code: 'INVALID_PARAMETERS', message: 'parameters.data must be array' } });
    task = (await call('boom', {})).json().task;
    expect(task.status.state).toBe('TASK_STATE_FAILED');
    expect(task.status.message.parts[1].data).toEqual({ error: { code: 'TOOL_ERROR', message: 'disk on fire' } });
  });

  it('malformed requests are INVALID_ARGUMENT status objects naming the field', async () => {
    const cases: [unknown, string][] = [
      [{}, 'message is required'],
      [{ message: { role: 'ROLE_USER', parts: [{ text: 'x' }] } }, 'message.messageId is required'],
      [{ message: { messageId: 'm', role: 'ROLE_AGENT', parts: [{ text: 'x' }] } }, "message.role must be 'ROLE_USER'"],
      [{ message: { messageId: 'm', role: 'ROLE_USER', parts: [] } }, 'message.parts must hold at least one part'],
      [{ message: userMessage([{ data: { tool_name: 'process_data', parameters: [1] } }]) }, 'message.parts[].data.parameters must be an object'],
      [{ message: userMessage([{ data: { rows: 1 } }]) }, 'message.parts must hold a data part {"tool_name": ..., "parameters": {...}}'],
    ];
    for (const [body, message] of cases) {
      const r = await send(body);
      expect(r.statusCode).toBe(400);
      expect(r.json()).toEqual({ error: { code: 400, status: 'INVALID_ARGUMENT', message, details: errorInfo('INVALID_PARAMS') } });
    }
    const bad = await app.inject({ method: 'POST', url: '/message:send', headers: { ...V, 'content-type': 'application/a2a+json' }, payload: '{"message": ' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.status).toBe('INVALID_ARGUMENT');
  });

  it('accepts application/a2a+json request bodies', async () => {
    const body = JSON.stringify({ message: userMessage([{ data: { tool_name: 'process_data', parameters: { data: [2] } } }]) });
    const r = await app.inject({ method: 'POST', url: '/message:send', headers: { ...V, 'content-type': 'application/a2a+json' }, payload: body });
    expect(r.json().task.status.state).toBe('TASK_STATE_COMPLETED');
  });

  it('honours A2A-Version: absent means 0.3 and is VERSION_NOT_SUPPORTED; 1.0 by header, patch or query parameter works', async () => {
    const body = { message: userMessage([{ data: { tool_name: 'process_data', parameters: { data: [1] } } }]) };
    for (const headers of [{}, { 'a2a-version': '0.3' }, { 'a2a-version': '2.0' }] as Record<string, string>[]) {
      const r = await send(body, headers);
      expect(r.statusCode).toBe(400);
      expect(r.json().error).toMatchObject({ status: 'FAILED_PRECONDITION', details: errorInfo('VERSION_NOT_SUPPORTED') });
    }
    expect((await send(body, { 'a2a-version': '1.0.3' })).statusCode).toBe(200);
    const q = await app.inject({ method: 'POST', url: '/message:send?A2A-Version=1.0', payload: body });
    expect(q.statusCode).toBe(200);
    // and the other doors do not care
    expect((await app.inject('/tools')).statusCode).toBe(200);
  });

  it('goes through the same metrics as /execute', async () => {
    const m = await app.inject('/metrics');
    // the earlier A2A calls: process_data ok, boom error, process_data invalid, unknown tool invalid
    expect(m.body).toMatch(/nexus_agent_tool_calls_total\{tool="boom",outcome="error"\} 1/);
    expect(m.body).toMatch(/nexus_agent_tool_calls_total\{tool="unknown",outcome="invalid"\} 1/);
    expect(m.body).toMatch(/nexus_agent_tool_calls_total\{tool="analyze_text",outcome="ok"\} 1/);
  });
});

describe('A2A tasks: get, cancel, follow-ups', () => {
  it('GET /tasks/{id} returns the task; historyLength=0 drops the history; unknown ids are TASK_NOT_FOUND', async () => {
    const { task } = (await call('process_data', { data: [7] })).json();
    const r = await app.inject({ url: `/tasks/${task.id}`, headers: V });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual(task);
    expect((await app.inject({ url: `/tasks/${task.id}?historyLength=0`, headers: V })).json().history).toEqual([]);
    const nf = await app.inject({ url: '/tasks/no-such-task', headers: V });
    expect(nf.statusCode).toBe(404);
    expect(nf.json()).toEqual({
      error: { code: 404, status: 'NOT_FOUND', message: "task 'no-such-task' does not exist or is no longer kept", details: errorInfo('TASK_NOT_FOUND') },
    });
  });

  it('returnImmediately answers a working task; cancel aborts the tool, and the task stays canceled', async () => {
    sawAbort = false;
    const r = await call('wait', {}, { returnImmediately: true });
    const { task } = r.json();
    expect(task.status.state).toBe('TASK_STATE_WORKING');
    expect((await app.inject({ url: `/tasks/${task.id}`, headers: V })).json().status.state).toBe('TASK_STATE_WORKING');
    const c = await app.inject({ method: 'POST', url: `/tasks/${task.id}:cancel`, headers: V });
    expect(c.statusCode).toBe(200);
    expect(c.json()).toMatchObject({ id: task.id, status: { state: 'TASK_STATE_CANCELED' } });
    expect(sawAbort).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect((await app.inject({ url: `/tasks/${task.id}`, headers: V })).json().status.state).toBe('TASK_STATE_CANCELED');
    const again = await app.inject({ method: 'POST', url: `/tasks/${task.id}:cancel`, headers: V });
    expect(again.statusCode).toBe(400);
    expect(again.json().error).toMatchObject({ status: 'FAILED_PRECONDITION', details: errorInfo('TASK_NOT_CANCELABLE') });
  });

  it('a working task completes in the background and is then not cancelable', async () => {
    const { task } = (await call('wait', {}, { returnImmediately: true })).json();
    release!();
    await new Promise((r) => setImmediate(r));
    const got = (await app.inject({ url: `/tasks/${task.id}`, headers: V })).json();
    expect(got).toMatchObject({ status: { state: 'TASK_STATE_COMPLETED' }, artifacts: [{ parts: [{ data: 'released' }] }] });
    const c = await app.inject({ method: 'POST', url: `/tasks/${task.id}:cancel`, headers: V });
    expect(c.json().error.details).toEqual(errorInfo('TASK_NOT_CANCELABLE'));
    const nf = await app.inject({ method: 'POST', url: '/tasks/nope:cancel', headers: V });
    expect(nf.statusCode).toBe(404);
  });

  it('a message for an existing (finished) task is UNSUPPORTED_OPERATION; for an unknown task TASK_NOT_FOUND', async () => {
    const { task } = (await call('process_data', { data: [1] })).json();
    const r = await send({ message: userMessage([{ data: { tool_name: 'process_data', parameters: { data: [1] } } }], { taskId: task.id }) });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.details).toEqual(errorInfo('UNSUPPORTED_OPERATION'));
    const nf = await send({ message: userMessage([{ data: { tool_name: 'process_data', parameters: { data: [1] } } }], { taskId: 'gone' }) });
    expect(nf.statusCode).toBe(404);
  });

  it('streaming, subscribe, push notifications and the extended card answer the spec errors', async () => {
    const unsupported = [
      await app.inject({ method: 'POST', url: '/message:stream', headers: V, payload: { message: userMessage([{ text: 'x' }]) } }),
      await app.inject({ method: 'POST', url: '/tasks/t1:subscribe', headers: V }),
      await app.inject({ method: 'GET', url: '/tasks/t1:subscribe', headers: V }),
      await app.inject({ method: 'GET', url: '/extendedAgentCard', headers: V }),
    ];
    for (const r of unsupported) {
      expect(r.statusCode).toBe(400);
      expect(r.json().error).toMatchObject({ status: 'FAILED_PRECONDITION', details: errorInfo('UNSUPPORTED_OPERATION') });
    }
    const push = [
      await app.inject({ method: 'POST', url: '/tasks/t1/pushNotificationConfigs', headers: V, payload: { url: 'http://x' } }),
      await app.inject({ method: 'GET', url: '/tasks/t1/pushNotificationConfigs', headers: V }),
      await app.inject({ method: 'GET', url: '/tasks/t1/pushNotificationConfigs/c1', headers: V }),
      await app.inject({ method: 'DELETE', url: '/tasks/t1/pushNotificationConfigs/c1', headers: V }),
    ];
    for (const r of push) {
      expect(r.statusCode).toBe(400);
      expect(r.json().error.details).toEqual(errorInfo('PUSH_NOTIFICATION_NOT_SUPPORTED'));
    }
    const card = (await app.inject('/.well-known/agent-card.json')).json();
    expect(card.capabilities).toEqual({ streaming: false, pushNotifications: false });
  });
});

describe('A2A GET /tasks', () => {
  it('pages newest first with a nextPageToken that is empty on the last page; artifacts only on request', async () => {
    const a = await buildServer(agent, { processMetrics: false });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await a.inject({ method: 'POST', url: '/message:send', headers: V, payload: { message: userMessage([{ data: { tool_name: 'process_data', parameters: { data: [i] } } }]) } })).json().task.id);
      const seen: string[] = [];
      let token = '';
      const pages: { tasks: { id: string; artifacts?: unknown }[]; nextPageToken: string; pageSize: number; totalSize: number }[] = [];
      do {
        const r = await a.inject({ url: `/tasks?pageSize=2${token ? `&pageToken=${token}` : ''}`, headers: V });
        expect(r.statusCode).toBe(200);
        pages.push(r.json());
        token = r.json().nextPageToken;
        seen.push(...r.json().tasks.map((t: { id: string }) => t.id));
      } while (token);
      expect(seen).toEqual([...ids].reverse());
      expect(pages.map((p) => p.tasks.length)).toEqual([2, 2, 1]);
      expect(pages.every((p) => p.pageSize === 2 && p.totalSize === 5 && 'nextPageToken' in p)).toBe(true);
      expect(pages.at(-1)!.nextPageToken).toBe('');
      expect(pages[0]!.tasks[0]!.artifacts).toBeUndefined();
      const withArtifacts = (await a.inject({ url: '/tasks?pageSize=1&includeArtifacts=true', headers: V })).json();
      expect(withArtifacts.tasks[0].artifacts[0].parts[0].data).toMatchObject({ count: 1, sum: 4 });
      // filters
      expect((await a.inject({ url: '/tasks?status=TASK_STATE_FAILED', headers: V })).json()).toEqual({ tasks: [], nextPageToken: '', pageSize: 50, totalSize: 0 });
      expect((await a.inject({ url: '/tasks?status=TASK_STATE_COMPLETED', headers: V })).json().totalSize).toBe(5);
    } finally {
      await a.close();
    }
  });

  it('rejects a page size outside 1..100, an unknown status and a foreign page token', async () => {
    for (const q of ['pageSize=0', 'pageSize=101', 'pageSize=x', 'status=DONE', 'pageToken=%%%', 'historyLength=-1', 'statusTimestampAfter=yesterday']) {
      const r = await app.inject({ url: `/tasks?${q}`, headers: V });
      expect(r.statusCode, q).toBe(400);
      expect(r.json().error.details, q).toEqual(errorInfo('INVALID_PARAMS'));
    }
  });

  it(`keeps only the ${MAX_TASKS} most recently updated tasks`, async () => {
    const a = await buildServer(defineAgent({ name: 'C', description: '', version: '1', tools: [processData] }), { processMetrics: false });
    try {
      const first = (await a.inject({ method: 'POST', url: '/message:send', headers: V, payload: { message: userMessage([{ data: { tool_name: 'process_data', parameters: { data: [0] } } }]) } })).json().task.id;
      for (let i = 0; i < MAX_TASKS; i++) {
        await a.inject({ method: 'POST', url: '/message:send', headers: V, payload: { message: userMessage([{ data: { tool_name: 'process_data', parameters: { data: [i] } } }]) } });
      }
      expect((await a.inject({ url: '/tasks?pageSize=1', headers: V })).json().totalSize).toBe(MAX_TASKS);
      expect((await a.inject({ url: `/tasks/${first}`, headers: V })).statusCode).toBe(404);
    } finally {
      await a.close();
    }
  });

  it(`keeps at most ${MAX_TASK_JSON_CHARS / 2 ** 20} MiB of task JSON, always the newest task`, async () => {
    const a = await buildServer(defineAgent({ name: 'D', description: '', version: '1', tools: [echo] }), { processMetrics: false, bodyLimitBytes: 8 * 2 ** 20 });
    try {
      // each task holds the message (history) and the echo (artifact): about 2 x 2.5 MiB
      const big = 'x'.repeat(2.5 * 2 ** 20);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await a.inject({ method: 'POST', url: '/message:send', headers: V, payload: { message: userMessage([{ data: { tool_name: 'echo', parameters: { message: big } } }]) } });
        ids.push(r.json().task.id);
      }
      const status = await Promise.all(ids.map(async (id) => (await a.inject({ url: `/tasks/${id}?historyLength=0`, headers: V })).statusCode));
      expect(status).toEqual([404, 404, 200]);
    } finally {
      await a.close();
    }
  });
});
