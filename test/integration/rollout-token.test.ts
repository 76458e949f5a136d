import { chmod, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABEL } from '../../src/conventions.js';
import { agentTokenFile } from '../../src/fleet/agent-tokens.js';
import { AGENT_TOKEN_MOUNT } from '../../src/fleet/containers.js';
import { createAgent } from '../../src/fleet/manager.js';
import { rollbackAgent, rolloutAgent } from '../../src/fleet/rollout.js';
import { scaleAgent } from '../../src/fleet/scale.js';
import { workspaceLabels } from '../../src/conventions.js';
import { makeWorkspace, type TestWorkspace } from '../helpers/workspace.js';

// Rollout and rollback create the agent's containers through the same token-mount preparation as
// start (src/fleet/agent-tokens.ts prepareSpecMounts), on the real engine: a token file left 0600
// (as files written before containers mounted them were) is readable by the container's user
// (uid 1000) in the new replicas, and a missing token file gives containers without the link
// instead of Docker refusing the bind mount. The manager URL points at a port nothing listens on
// (the agents keep retrying in the background; their health does not depend on it).
// Ports: agents 9861-9862, router 9863, manager URL 9870 (this file's band).
const ROUTER = 9863;
let ws: TestWorkspace;
let token: string;

async function setManifestVersion(version: string): Promise<void> {
  const path = join(ws.dir, 'agents/data-agent/agent.json');
  const m = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  await writeFile(path, JSON.stringify({ ...m, version }, null, 2));
}

const running = async () => (await ws.deps.engine.listContainers({ ...workspaceLabels(ws.config), [LABEL.agent]: 'data-agent' })).filter((c) => c.state === 'running');
/** What the container's own user reads at the mount (docker exec runs as the container's user). */
const readMount = (id: string) => ws.deps.engine.execContainer(id, ['node', '-e', `process.stdout.write(require('fs').readFileSync(${JSON.stringify(AGENT_TOKEN_MOUNT)}, 'utf8'))`], 10_000);

beforeAll(async () => {
  ws = await makeWorkspace('9861-9862', { manager: { url: 'http://127.0.0.1:9870' } });
  await createAgent(ws.deps, { name: 'DataAgent', capabilities: ['data'] });
  token = (await readFile(agentTokenFile(ws.dir, 'data-agent'), 'utf8')).trim();
  await scaleAgent(ws.deps, 'DataAgent', 2, { routerPort: ROUTER });
}, 180_000);
afterAll(() => ws.cleanup());

describe('rollout and the manager link on the real engine', () => {
  it('a 0600 token file is made readable before the new replicas mount it; without the file rollback starts them unlinked', async () => {
    const file = agentTokenFile(ws.dir, 'data-agent');
    await chmod(file, 0o600);
    await setManifestVersion('0.2.0');
    await rolloutAgent(ws.deps, 'DataAgent', { routerPort: ROUTER, stopTimeoutS: 2 });
    expect((await stat(file)).mode & 0o777).toBe(0o644);
    const after = await running();
    expect(after).toHaveLength(2);
    for (const c of after) {
      expect(c.labels[LABEL.version]).toBe('0.2.0');
      const r = await readMount(c.id);
      expect(r, `${c.name}: ${r.output}`).toMatchObject({ exitCode: 0 });
      expect(r.output.trim()).toBe(token);
    }

    await rm(file);
    ws.events.length = 0;
    await rollbackAgent(ws.deps, 'DataAgent', { routerPort: ROUTER, stopTimeoutS: 2 });
    const back = await running();
    expect(back.map((c) => c.labels[LABEL.version])).toEqual(['0.1.0', '0.1.0']);
    for (const c of back) {
      const d = await ws.deps.engine.inspectContainer(c.id);
      expect(d?.state).toBe('running');
      expect((await readMount(c.id)).exitCode).not.toBe(0);
    }
  });
});
