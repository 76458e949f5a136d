import { createServer, type Server } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { DockerEngine } from '../../src/engine/docker.js';
import { createAgent, startAgents } from '../../src/fleet/manager.js';
import { makeWorkspace, workspaceContainers, type TestWorkspace } from '../helpers/workspace.js';

let ws: TestWorkspace;
beforeAll(async () => {
  ws = await makeWorkspace('9111-9120', { start: { healthTimeoutS: 4 } });
});
afterEach(async () => {
  // every failure must leave no container behind
  expect(await workspaceContainers(ws.dir)).toEqual([]);
});
afterAll(() => ws.cleanup());

async function editIndex(slug: string, fn: (src: string) => string): Promise<void> {
  const p = join(ws.dir, 'agents', slug, 'src/index.ts');
  await writeFile(p, fn(await readFile(p, 'utf8')));
}

describe('start failures leave nothing behind', () => {
  it('an agent that crashes at start fails fast with its last log lines; the container is removed', async () => {
    await createAgent(ws.deps, { name: 'CrashAgent', capabilities: ['data'] });
    await editIndex('crash-agent', (s) => `${s}\nthrow new Error('missing API settings');\n`);
    const r = await startAgents(ws.deps, ['CrashAgent']);
    const a = r.agents[0]!;
    expect(a.outcome).toBe('failed');
    expect(a.error).toMatchObject({ code: 'CONTAINER_UNHEALTHY', message: expect.stringMatching(/exited/) });
    expect(a.logs).toContain('missing API settings');
    expect(await ws.deps.registry.get('crash-agent')).toMatchObject({ status: 'unhealthy', lastError: expect.stringContaining('did not become healthy') });
  });

  it('an agent that never answers /health times out at the configured deadline', async () => {
    await createAgent(ws.deps, { name: 'SilentAgent', capabilities: ['data'] });
    // stays alive but never listens
    await editIndex('silent-agent', () => `setInterval(() => {}, 1000);\nawait new Promise(() => {});\nexport default {};\n`);
    const r = await startAgents(ws.deps, ['SilentAgent']);
    expect(r.agents[0]).toMatchObject({ outcome: 'failed', error: { code: 'CONTAINER_UNHEALTHY', message: expect.stringMatching(/within 4 s/) } });
  });

  it('a compile error fails the build with file:line and starts nothing', async () => {
    await createAgent(ws.deps, { name: 'TypoAgent', capabilities: ['data'] });
    await editIndex('typo-agent', (s) => s.replace('tools: [', 'tools: [[['));
    const r = await startAgents(ws.deps, ['TypoAgent']);
    expect(r.agents[0]).toMatchObject({ outcome: 'failed', error: { code: 'BUILD_FAILED', message: expect.stringMatching(/index\.ts:\d+:\d+/) } });
    expect(await ws.deps.registry.get('typo-agent')).toMatchObject({ status: 'failed' });
  });

  it("a host port taken by another process after create fails that agent only, with PORT_IN_USE", async () => {
    const ok = await createAgent(ws.deps, { name: 'GoodAgent', capabilities: ['math'] });
    const blocked = await createAgent(ws.deps, { name: 'BlockedAgent', capabilities: ['data'] });
    const squatter: Server = createServer();
    await new Promise<void>((r) => squatter.listen(blocked.agent.port, '127.0.0.1', r));
    try {
      const r = await startAgents(ws.deps, ['GoodAgent', 'BlockedAgent']);
      expect(r.agents.find((a) => a.name === 'BlockedAgent')).toMatchObject({ outcome: 'failed', error: { code: 'PORT_IN_USE' } });
      expect(r.agents.find((a) => a.name === 'GoodAgent')).toMatchObject({ outcome: 'started', port: ok.agent.port });
      expect(r).toMatchObject({ ok: 1, failed: 1 });
    } finally {
      squatter.close();
    }
    const { stopAgents } = await import('../../src/fleet/manager.js');
    await stopAgents(ws.deps, ['GoodAgent']);
  });

  it('a base image that cannot be built fails start with BASE_IMAGE_FAILED and creates nothing', async () => {
    const config = loadConfig(ws.dir, { NEXUS_BASE_IMAGE: 'nexus-missing.invalid/node:0', NEXUS_OFFLINE: 'never' });
    await expect(startAgents({ ...ws.deps, config }, ['GoodAgent'])).rejects.toMatchObject({
      code: 'BASE_IMAGE_FAILED',
      message: expect.stringContaining('nexus-missing.invalid/node:0'),
      hint: expect.stringContaining('offline'),
    });
  });

  it('an unreachable engine is reported with its address before anything changes', async () => {
    const before = await ws.deps.registry.list();
    const engine = new DockerEngine({ env: { DOCKER_HOST: 'unix:///tmp/nexus-no-such.sock' } });
    const deps = { ...ws.deps, engine };
    await expect(startAgents(deps, 'all')).rejects.toMatchObject({ code: 'ENGINE_UNREACHABLE', message: expect.stringContaining('unix:///tmp/nexus-no-such.sock') });
    expect(await ws.deps.registry.list()).toEqual(before);
  });
});
