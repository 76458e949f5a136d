import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../src/fleet/http.js';
import { buildAgents, createAgent } from '../../src/fleet/manager.js';
import { writeCompose } from '../../src/fleet/production.js';
import { eventually } from '../helpers/wait.js';
import { makeWorkspace, removeByLabel, testRunId, TEST_LABEL, type TestWorkspace } from '../helpers/workspace.js';

const run = promisify(execFile);
const docker = new Docker();
const ROUTER_PORT = 9199;
const router = `http://127.0.0.1:${ROUTER_PORT}`;
let ws: TestWorkspace;
let composeArgs: string[];

const get = (path: string) => request(`${router}${path}`, { timeoutMs: 5000 });
const replicas = (slug: string) => docker.listContainers({ filters: { label: [`com.docker.compose.project=${project()}`, `com.docker.compose.service=${slug}`] } });
const project = () => `nexustest${testRunId()}`;

beforeAll(async () => {
  ws = await makeWorkspace('9181-9190');
  await createAgent(ws.deps, { name: 'DataAgent', capabilities: ['data'] });
  await createAgent(ws.deps, { name: 'MathAgent', capabilities: ['math'] });
  await buildAgents(ws.deps, 'all');
  const out = await writeCompose(ws.deps, { routerPort: ROUTER_PORT, offlineRouter: true, network: `nexus-test-${testRunId()}` });
  composeArgs = ['-p', project(), '-f', out.files[0]!];
  await run('docker-compose', [...composeArgs, 'up', '-d'], { maxBuffer: 1 << 24 });
});
afterAll(async () => {
  await run('docker-compose', [...composeArgs, 'down', '-t', '1'], { maxBuffer: 1 << 24 }).catch(() => undefined);
  await removeByLabel({ [TEST_LABEL]: testRunId(), 'com.docker.compose.project': project() });
  await ws.cleanup();
});

describe('production: docker-compose-agents.yml behind the generated nginx', () => {
  it('answers /agents/<slug>/execute through nginx for every agent', async () => {
    await eventually(async () => ((await get('/agents/data-agent/health')).status === 200 ? true : undefined));
    const data = await request(`${router}/agents/data-agent/execute`, { method: 'POST', json: { tool_name: 'process_data', parameters: { data: [1, 2, 3, 4, 5] } }, timeoutMs: 5000 });
    expect(data).toEqual({ status: 200, body: { result: { count: 5, sum: 15, mean: 3, min: 1, max: 5 } } });
    const math = await eventually(async () => {
      const r = await request(`${router}/agents/math-agent/execute`, { method: 'POST', json: { tool_name: 'evaluate_expression', parameters: { expression: '6*7' } }, timeoutMs: 5000 });
      return r.status === 200 ? r : undefined;
    });
    expect(math.body).toEqual({ result: { expression: '6*7', value: 42 } });
  });

  it('serves the index of all agents and a JSON 404 for unknown paths', async () => {
    const index = await get('/.well-known/agents.json');
    expect((index.body as { agents: { slug: string }[] }).agents.map((a) => a.slug)).toEqual(['data-agent', 'math-agent']);
    const none = await get('/agents/nope/health');
    expect(none).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
  });

  it('scales an agent to 3 replicas without port errors and spreads requests across them', async () => {
    await run('docker-compose', [...composeArgs, 'up', '-d', '--no-recreate', '--scale', 'data-agent=3'], { maxBuffer: 1 << 24 });
    expect(await replicas('data-agent')).toHaveLength(3);
    const seen = await eventually(async () => {
      const ids = new Set<string>();
      for (let i = 0; i < 30; i++) {
        const r = await get('/agents/data-agent/health');
        if (r.status === 200) ids.add((r.body as { instance: string }).instance);
      }
      return ids.size === 3 ? ids : undefined;
    });
    expect(seen.size).toBe(3);
  });

  it('skips a killed replica: every request still succeeds', async () => {
    const [victim] = await replicas('data-agent');
    await docker.getContainer(victim!.Id).kill();
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await get('/agents/data-agent/health')).status);
    expect(statuses).toEqual(Array(20).fill(200));
  });

  it('an agent with no live replica answers 503, not 404', async () => {
    await run('docker-compose', [...composeArgs, 'stop', '-t', '1', 'math-agent'], { maxBuffer: 1 << 24 });
    const r = await eventually(async () => {
      const x = await get('/agents/math-agent/health');
      return x.status === 503 ? x : undefined;
    }, 20_000);
    expect(r.body).toEqual({ error: { code: 'AGENT_UNAVAILABLE', message: 'no live replica of this agent' } });
  });
});
