import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../src/fleet/http.js';
import { buildAgents, createAgent } from '../../src/fleet/manager.js';
import { eventually as waitUntilTrue } from '../helpers/wait.js';
const eventually = <T>(fn: () => Promise<T | undefined>, timeoutMs = 120_000) => waitUntilTrue(fn, timeoutMs, 500);
import { makeWorkspace, testRunId, type TestWorkspace } from '../helpers/workspace.js';
import { runCli } from '../helpers/cli.js';

const run = promisify(execFile);
const docker = new Docker();
const PORT = 9197;
const router = `http://127.0.0.1:${PORT}`;
const stack = () => `nxt${testRunId()}`;
let ws: TestWorkspace;


beforeAll(async () => {
  // a single-node swarm: initialised here if needed and left afterwards (like the docker docs' tutorial)
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string } };
  if (info.Swarm?.LocalNodeState !== 'active') await run('docker', ['swarm', 'init']);
  ws = await makeWorkspace('9191-9196');
  await createAgent(ws.deps, { name: 'DataAgent', capabilities: ['data'] });
  await createAgent(ws.deps, { name: 'MathAgent', capabilities: ['math'] });
  await buildAgents(ws.deps, 'all');
});
afterAll(async () => {
  await run('docker', ['stack', 'rm', stack()]).catch(() => undefined);
  await eventually(async () => ((await docker.listServices({ filters: { label: [`com.docker.stack.namespace=${stack()}`] } })).length === 0 ? true : undefined), 60_000).catch(() => undefined);
  // task containers and the stack network go away a little after the services
  await eventually(async () => ((await docker.listContainers({ all: true, filters: { label: [`com.docker.stack.namespace=${stack()}`] } })).length === 0 ? true : undefined), 60_000).catch(() => undefined);
  await ws.cleanup();
});

describe('single-node Docker Swarm', () => {
  it('deploys the fleet as services; every agent answers through the router', async () => {
    const r = await runCli(['deploy', '--swarm', '--stack', stack(), '--router-port', String(PORT), '--offline-router', '--json'], ws.env);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).services).toEqual([`${stack()}_data-agent`, `${stack()}_math-agent`, `${stack()}_router`]);
    const data = await eventually(async () => {
      const x = await request(`${router}/agents/data-agent/execute`, { method: 'POST', json: { tool_name: 'process_data', parameters: { data: [2, 4] } }, timeoutMs: 3000 });
      return x.status === 200 ? x : undefined;
    });
    expect(data.body).toEqual({ result: { count: 2, sum: 6, mean: 3, min: 2, max: 4 } });
    const math = await eventually(async () => {
      const x = await request(`${router}/agents/math-agent/execute`, { method: 'POST', json: { tool_name: 'evaluate_expression', parameters: { expression: '2^10' } }, timeoutMs: 3000 });
      return x.status === 200 ? x : undefined;
    });
    expect(math.body).toEqual({ result: { expression: '2^10', value: 1024 } });
    const svc = await docker.getService(`${stack()}_data-agent`).inspect();
    expect(svc.Spec.UpdateConfig).toMatchObject({ Order: 'start-first', FailureAction: 'rollback' });
    expect(svc.Spec.TaskTemplate.ContainerSpec).toMatchObject({ User: '1000:1000', ReadOnly: true });
  });

  it('scales one agent to 3 replicas and spreads requests across them', async () => {
    await run('docker', ['service', 'scale', '--detach', `${stack()}_data-agent=3`]);
    const seen = await eventually(async () => {
      const ids = new Set<string>();
      for (let i = 0; i < 30; i++) {
        const r = await request(`${router}/agents/data-agent/health`, { timeoutMs: 3000 });
        if (r.status === 200) ids.add((r.body as { instance: string }).instance);
      }
      return ids.size === 3 ? ids : undefined;
    });
    expect(seen.size).toBe(3);
  });

  it('deploy --swarm --remove tears the stack down', async () => {
    const r = await runCli(['deploy', '--swarm', '--remove', '--stack', stack()], ws.env);
    expect(r.exitCode, r.stderr).toBe(0);
    await eventually(async () => ((await docker.listServices({ filters: { label: [`com.docker.stack.namespace=${stack()}`] } })).length === 0 ? true : undefined), 60_000);
  });
});
