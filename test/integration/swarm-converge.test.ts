import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../src/fleet/http.js';
import { buildAgents, createAgent } from '../../src/fleet/manager.js';
import { runCli } from '../helpers/cli.js';
import { eventually } from '../helpers/wait.js';
import { makeWorkspace, testRunId, type TestWorkspace } from '../helpers/workspace.js';

// issue 14 §7: `deploy --swarm` on a host that cannot pull nginx. Ports of this file: 9304-9310.
const run = promisify(execFile);
const docker = new Docker();
const stacks = [`nxc${testRunId()}`, `nxf${testRunId()}`];
let ws: TestWorkspace;

const removeStack = async (stack: string) => {
  await run('docker', ['stack', 'rm', stack]).catch(() => undefined);
  const gone = async () => ((await docker.listContainers({ all: true, filters: { label: [`com.docker.stack.namespace=${stack}`] } })).length === 0 ? true : undefined);
  await eventually(gone, 60_000, 500).catch(() => undefined);
};

beforeAll(async () => {
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string } };
  if (info.Swarm?.LocalNodeState !== 'active') await run('docker', ['swarm', 'init']);
  ws = await makeWorkspace('9304-9306');
  await createAgent(ws.deps, { name: 'DataAgent', capabilities: ['data'] });
  await buildAgents(ws.deps, 'all');
});
afterAll(async () => {
  for (const s of stacks) await removeStack(s);
  await ws.cleanup();
});

describe('deploy --swarm waits for the stack to converge', () => {
  it('falls back to the offline router (one-line notice) when nginx cannot be pulled, and returns once every service runs healthy', async () => {
    const [stack] = stacks as [string, string];
    // this host has no registry: nginx:1.27-alpine cannot be pulled (skip the check where it can)
    const pullable = await docker.getImage('nginx:1.27-alpine').inspect().then(() => true, () => false);
    const r = await runCli(['deploy', '--swarm', '--stack', stack, '--router-port', '9307', '--json'], ws.env);
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { routerImage: string; outcomes: { service: string; outcome: string }[] };
    if (!pullable) {
      expect(r.stderr).toContain("could not pull nginx:1.27-alpine; building the router image offline from this host's nginx");
      expect(out.routerImage).toMatch(/^nexus-delta-router:/);
    }
    expect(out.outcomes).toEqual([
      { service: `${stack}_data-agent`, outcome: 'converged', running: 1, desired: 1 },
      { service: `${stack}_router`, outcome: 'converged', running: 1, desired: 1 },
    ]);
    // converged means answering: the router serves the agent now, with no further waiting
    const h = await request('http://127.0.0.1:9307/agents/data-agent/health', { timeoutMs: 3000 });
    expect(h.status).toBe(200);
    await removeStack(stack);
  });

  it('exits non-zero naming the service and the engine task error when a service cannot run', async () => {
    const [, stack] = stacks as [string, string];
    // agent images named after a registry nothing listens on: no node can get them
    const r = await runCli(['deploy', '--swarm', '--stack', stack, '--router-port', '9308', '--offline-router', '--registry', '127.0.0.1:9309'], ws.env);
    expect(r.exitCode, r.stderr).toBe(7);
    expect(r.stderr).toContain(`error: stack ${stack} did not converge: ${stack}_data-agent failed (0/1 running): No such image: 127.0.0.1:9309/`);
    expect(r.stdout).not.toContain('deployed stack');
  });
});
