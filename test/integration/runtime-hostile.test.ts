import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, startAgents } from '../../src/fleet/manager.js';
import { TEMPLATE_DIR } from '../../src/paths.js';
import { eventually } from '../helpers/wait.js';
import { makeWorkspace, workspaceContainers, type TestWorkspace } from '../helpers/workspace.js';

// Issue 14 §3 on a real container: hostile requests cost their own call, never the agent.
const docker = new Docker();
let ws: TestWorkspace;
let url: string;
let containerId: string;

const SPIN_TOOL = `import { defineTool } from '@nexus-delta/runtime';

/** Never yields: the runtime must stop it at its time budget. */
export const spin = defineTool({
  name: 'spin',
  description: 'spins forever',
  parameters: { type: 'object' },
  timeoutMs: 1000,
  handler: () => { for (;;); },
});
`;

const execute = (body: string) =>
  fetch(`${url}/execute`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(60_000) });
const health = () => fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status);

beforeAll(async () => {
  ws = await makeWorkspace('9201-9205');
  const r = await createAgent(ws.deps, { name: 'Hostile', capabilities: ['text'] });
  url = r.url;
  // add the starter echo tool (only given when no other starter tool is) and a tool that never yields
  await copyFile(join(TEMPLATE_DIR, 'tools/echo.ts'), join(r.path, 'src/tools/echo.ts'));
  await writeFile(join(r.path, 'src/tools/spin.ts'), SPIN_TOOL);
  const index = join(r.path, 'src/index.ts');
  const src = (await readFile(index, 'utf8'))
    .replace('import manifest', "import { echo } from './tools/echo.js';\nimport { spin } from './tools/spin.js';\nimport manifest")
    .replace('tools: [', 'tools: [echo, spin, ');
  expect(src).toContain('tools: [echo, spin, analyzeText]');
  await writeFile(index, src);
  await startAgents(ws.deps, ['Hostile']);
  containerId = (await workspaceContainers(ws.dir))[0]!.Id;
});
afterAll(async () => {
  await ws.cleanup();
});

async function state() {
  const info = await docker.getContainer(containerId).inspect();
  return {
    running: info.State.Running,
    oomKilled: info.State.OOMKilled,
    startedAt: info.State.StartedAt,
    restarts: info.RestartCount,
    health: info.State.Health?.Status,
  };
}

describe('hostile requests on a real agent container', () => {
  it('two 1 MiB echo requests of [{},{},...] are refused before parsing, and the agent lives', async () => {
    const before = await state();
    const body = `{"tool_name":"echo","parameters":{"message":[${Array(349_500).fill('{}').join(',')}]}}`;
    expect(body.length).toBeLessThanOrEqual(1024 * 1024);
    const answers = await Promise.all([execute(body), execute(body)]);
    for (const a of answers) {
      expect(a.status).toBe(400);
      expect(((await a.json()) as { error: unknown }).error).toEqual({ code: 'INVALID_REQUEST', message: 'body holds more than 50000 objects and arrays' });
    }
    expect(await health()).toBe(200);
    expect(await state()).toMatchObject({ running: true, oomKilled: false, startedAt: before.startedAt, restarts: 0 });
  });

  it('four concurrent echo calls of the heaviest accepted body (1 MiB, 49,990 objects) all answer, and the agent lives', async () => {
    const before = await state();
    const item = `{"k":"${'x'.repeat(8)}"}`;
    const body = `{"tool_name":"echo","parameters":{"message":[${Array(49_990).fill(item).join(',')}],"pad":"${'y'.repeat(150_000)}"}}`;
    expect(body.length).toBeLessThanOrEqual(1024 * 1024);
    const answers = await Promise.all([execute(body), execute(body), execute(body), execute(body)]);
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(((await a.json()) as { result: { echo: { message: unknown[] } } }).result.echo.message).toHaveLength(49_990);
    }
    expect(await health()).toBe(200);
    expect(await state()).toMatchObject({ running: true, oomKilled: false, startedAt: before.startedAt, restarts: 0 });
  });

  it('a tool that never yields answers 504 TOOL_TIMEOUT while /health keeps answering', async () => {
    const spinning = execute('{"tool_name":"spin"}');
    await new Promise((r) => setTimeout(r, 300));
    expect(await health()).toBe(200);
    const r = await spinning;
    expect(r.status).toBe(504);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('TOOL_TIMEOUT');
    const after = await execute('{"tool_name":"echo","parameters":{"message":"still here"}}');
    expect(await after.json()).toEqual({ result: { echo: { message: 'still here' } } });
  });

  it('analyze_text on 200,000 dots answers, and the loop stays free', async () => {
    const pending = execute(JSON.stringify({ tool_name: 'analyze_text', parameters: { text: `${'.'.repeat(199_999)}a` } }));
    expect(await health()).toBe(200);
    const r = await pending;
    expect(r.status).toBe(200);
    expect(((await r.json()) as { result: unknown }).result).toMatchObject({ sentences: 1, words: 1 });
  });

  it('a body nested 500,000 levels deep is 400 and the agent lives', async () => {
    const r = await execute(`{"tool_name":"echo","parameters":{"message":${'['.repeat(500_000)}${']'.repeat(500_000)}}}`);
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('INVALID_REQUEST');
    expect(await health()).toBe(200);
  });

  it('is checked by a busybox wget probe and becomes healthy, never restarted', async () => {
    const info = await docker.getContainer(containerId).inspect();
    expect(info.Config.Healthcheck?.Test).toEqual(['CMD', '/usr/local/bin/busybox', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/health']);
    const s = await eventually(async () => ((await state()).health === 'healthy' ? state() : undefined), 90_000, 1000);
    expect(s).toMatchObject({ running: true, restarts: 0 });
    const log = (await docker.getContainer(containerId).inspect()).State.Health!.Log;
    expect(log.at(-1)).toMatchObject({ ExitCode: 0 });
  });
});
