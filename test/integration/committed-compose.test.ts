import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { DockerEngine } from '../../src/engine/docker.js';
import { ensureOfflineRouterImage } from '../../src/engine/router-image.js';
import { workspaceId, type FleetDeps } from '../../src/fleet/context.js';
import { DEMO_AGENTS } from '../../src/fleet/demo.js';
import { request } from '../../src/fleet/http.js';
import { buildAgents, createAgent } from '../../src/fleet/manager.js';
import { LABEL } from '../../src/engine/labels.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { LocalRegistry } from '../../src/registry/local.js';
import { removeByLabel, testImageTag, testRunId, TEST_LABEL } from '../helpers/workspace.js';

const run = promisify(execFile);
const docker = new Docker();
const FILE = join(PACKAGE_ROOT, 'docker-compose-agents.yml');
let dir: string;
let env: NodeJS.ProcessEnv;
const args = () => ['-p', `nexusdemo${testRunId()}`, '-f', FILE];

beforeAll(async () => {
  // the demo's five agents, built with this run's tag (no project: the committed file's names)
  dir = await mkdtemp(join(tmpdir(), 'nexus-committed-'));
  await writeFile(join(dir, 'nexus.yaml'), yaml.dump({ ports: { range: '9151-9155' }, images: { tag: testImageTag() }, labels: { [TEST_LABEL]: testRunId() } }));
  const deps: FleetDeps = { config: loadConfig(dir, {}), registry: new LocalRegistry(dir), engine: new DockerEngine() };
  for (const a of DEMO_AGENTS) await createAgent(deps, { name: a.name, capabilities: [...a.capabilities] });
  await buildAgents(deps, 'all');
  const routerImage = (await ensureOfflineRouterImage(deps.engine)).tags[0]!;
  env = { ...process.env, NEXUS_IMAGE_TAG: testImageTag(), NEXUS_ROUTER_IMAGE: routerImage };
  await run('docker-compose', [...args(), 'up', '-d'], { env, maxBuffer: 1 << 24 });
});
afterAll(async () => {
  await run('docker-compose', [...args(), 'down', '-t', '1'], { env, maxBuffer: 1 << 24 }).catch(() => undefined);
  await removeByLabel({ [LABEL.workspace]: workspaceId(dir) });
  await rm(dir, { recursive: true, force: true });
});

describe('the committed docker-compose-agents.yml', () => {
  it('runs the five demo agents behind nginx; each answers /execute', async () => {
    for (const a of DEMO_AGENTS) {
      const slug = a.name.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase();
      const call = await a.call();
      const r = await (async () => {
        for (let i = 0; i < 120; i++) {
          const x = await request(`http://127.0.0.1:8088/agents/${slug}/execute`, { method: 'POST', json: call, timeoutMs: 30_000 }).catch(() => undefined);
          if (x?.status === 200) return x;
          await new Promise((res) => setTimeout(res, 500));
        }
        throw new Error(`${a.name} did not answer through nginx`);
      })();
      expect(r.body, a.name).toHaveProperty('result');
    }
  });

  it('scales an agent to 3 replicas without port errors', async () => {
    await run('docker-compose', [...args(), 'up', '-d', '--no-recreate', '--scale', 'data-agent=3'], { env, maxBuffer: 1 << 24 });
    const cs = await docker.listContainers({ filters: { label: [`com.docker.compose.project=nexusdemo${testRunId()}`, 'com.docker.compose.service=data-agent'] } });
    expect(cs).toHaveLength(3);
    const r = await request('http://127.0.0.1:8088/agents/data-agent/health', { timeoutMs: 3000 });
    expect(r.status).toBe(200);
  });
});
