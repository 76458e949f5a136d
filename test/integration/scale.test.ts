import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../src/fleet/http.js';
import { createAgent } from '../../src/fleet/manager.js';
import { localNetworkName } from '../../src/fleet/scale.js';
import { runCli } from '../helpers/cli.js';
import { makeWorkspace, workspaceContainers, type TestWorkspace } from '../helpers/workspace.js';

const docker = new Docker();
const ROUTER = 9176;
let ws: TestWorkspace;

async function instances(n: number): Promise<{ statuses: number[]; ids: Set<string> }> {
  const statuses: number[] = [];
  const ids = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await request(`http://127.0.0.1:${ROUTER}/agents/data-agent/health`, { timeoutMs: 5000 }).catch(() => ({ status: 0, body: undefined }));
    statuses.push(r.status);
    if (r.status === 200) ids.add((r.body as { instance: string }).instance);
  }
  return { statuses, ids };
}

beforeAll(async () => {
  ws = await makeWorkspace('9173-9175');
  await createAgent(ws.deps, { name: 'DataAgent', capabilities: ['data'] });
});
afterAll(() => ws.cleanup());

describe('agent scale on the local engine', () => {
  it('runs 3 replicas behind the local router, spreading requests', async () => {
    const r = await runCli(['scale', '--name', 'DataAgent', '--replicas', '3', '--router-port', String(ROUTER), '--json'], ws.env);
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    const p = ws.config.project;
    expect(out.containers).toEqual([`nexus-agent-${p}-data-agent`, `nexus-agent-${p}-data-agent-1`, `nexus-agent-${p}-data-agent-2`]);
    let seen = new Set<string>();
    for (let i = 0; i < 20 && seen.size < 3; i++) {
      seen = new Set([...seen, ...(await instances(10)).ids]);
      if (seen.size < 3) await new Promise((res) => setTimeout(res, 500));
    }
    expect(seen.size).toBe(3);
    // the primary keeps its own port binding too
    expect((await request('http://127.0.0.1:9173/health', { timeoutMs: 2000 })).status).toBe(200);
  });

  it('skips a killed replica', async () => {
    const [victim] = await docker.listContainers({ filters: { name: [`nexus-agent-${ws.config.project}-data-agent-2`] } });
    await docker.getContainer(victim!.Id).kill();
    const { statuses } = await instances(20);
    expect(statuses).toEqual(Array(20).fill(200));
  });

  it('scales back down, and stop-all removes replicas, router and network', async () => {
    const r = await runCli(['scale', '--name', 'DataAgent', '--replicas', '1', '--router-port', String(ROUTER), '--json'], ws.env);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).containers).toEqual([`nexus-agent-${ws.config.project}-data-agent`]);
    expect((await runCli(['stop-all', '--timeout', '1'], ws.env)).exitCode).toBe(0);
    expect(await workspaceContainers(ws.dir)).toEqual([]);
    expect((await docker.listNetworks({ filters: { name: [localNetworkName(ws.dir)] } })).length).toBe(0);
  });

  it('rejects --replicas 0 with a hint to stop instead', async () => {
    const r = await runCli(['scale', '--name', 'DataAgent', '--replicas', '0'], ws.env);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--replicas must be 1 or more, got 0\nhint: to stop the agent/);
  });
});
