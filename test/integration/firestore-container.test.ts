import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteApp, initializeApp, type App } from 'firebase-admin/app';
import { getFirestore } from 'firebase-admin/firestore';
import type { StartedTestContainer } from 'testcontainers';
import { FirestoreRegistry } from '../../src/registry/firestore.js';
import { runCli } from '../helpers/cli.js';
import { buildEmulatorImage, startEmulatorContainer } from '../helpers/firestore-container.js';
import { registryContract } from '../helpers/registry-contract.js';
import { makeWorkspace, workspaceContainers, type TestWorkspace } from '../helpers/workspace.js';

let container: StartedTestContainer;
let host: string;

beforeAll(async () => {
  const image = await buildEmulatorImage();
  ({ container, host } = await startEmulatorContainer(image));
  process.env.FIRESTORE_EMULATOR_HOST = host;
});
afterAll(async () => {
  await container?.stop();
});

registryContract(
  'firestore (emulator container, testcontainers)',
  async () => new FirestoreRegistry({ projectId: 'demo-nexus', collectionPrefix: `c${randomBytes(4).toString('hex')}_`, timeoutMs: 15_000 }),
  async (first) => new FirestoreRegistry({ projectId: 'demo-nexus', collectionPrefix: (first as FirestoreRegistry).prefix, timeoutMs: 15_000 }),
);

describe('the main job with the firestore registry', () => {
  let ws: TestWorkspace;
  let env: Record<string, string>;
  let admin: App;
  const prefix = `demo${randomBytes(3).toString('hex')}_`;

  beforeAll(async () => {
    ws = await makeWorkspace('9161-9180');
    env = { ...ws.env, NEXUS_REGISTRY: 'firestore', GOOGLE_CLOUD_PROJECT: 'demo-nexus', FIRESTORE_EMULATOR_HOST: host, NEXUS_FIRESTORE_PREFIX: prefix };
    admin = initializeApp({ projectId: 'demo-nexus' }, `reader-${prefix}`);
  });
  afterAll(async () => {
    await runCli(['stop-all', '--timeout', '1'], env);
    await deleteApp(admin);
    await ws.cleanup();
  });

  it('demo runs on the firestore registry; agents, ports and history are documents', async () => {
    const r = await runCli(['demo', '--json'], env);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).calls.map((c: { status: number }) => c.status)).toEqual([200, 200, 200, 200, 200]);

    const db = getFirestore(admin);
    const agents = await db.collection(`${prefix}agents`).orderBy('port').get();
    expect(agents.docs.map((d) => d.id)).toEqual(['data-agent', 'text-agent', 'image-agent', 'code-agent', 'math-agent']);
    const data = agents.docs[0]!.data();
    expect(data).toMatchObject({ name: 'DataAgent', slug: 'data-agent', port: 9161, status: 'running', health: 'healthy', endpoint: 'http://127.0.0.1:9161', capabilities: ['data', 'analytics'] });
    expect(data.tools.map((t: { name: string }) => t.name)).toEqual(['process_data']);
    expect(data.createdAt.toDate()).toBeInstanceOf(Date);
    const ports = await db.collection(`${prefix}ports`).get();
    expect(ports.docs.map((d) => [Number(d.id), d.data().agent]).sort()).toEqual(agents.docs.map((d) => [d.data().port, d.id]).sort());
    const history = await db.collection(`${prefix}agents`).doc('math-agent').collection('history').orderBy('at').get();
    expect(history.docs.map((d) => d.data().event)).toEqual(['created', 'started']);
  });

  it('execute, list and stop-all work the same; stop is recorded in the history', async () => {
    const list = JSON.parse((await runCli(['list', '--json'], env)).stdout);
    expect(list.agents.map((a: { health: string }) => a.health)).toEqual(Array(5).fill('healthy'));
    const res = await fetch('http://127.0.0.1:9161/execute', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"tool_name":"process_data","parameters":{"data":[1,2,3,4,5]}}' });
    expect(await res.json()).toEqual({ result: { count: 5, sum: 15, mean: 3, min: 1, max: 5 } });
    expect((await runCli(['stop-all'], env)).exitCode).toBe(0);
    expect(await workspaceContainers(ws.dir)).toEqual([]);
    const history = await getFirestore(admin).collection(`${prefix}agents`).doc('data-agent').collection('history').orderBy('at').get();
    expect(history.docs.map((d) => d.data().event)).toEqual(['created', 'started', 'stopped']);
  });

  it('migrate copies firestore -> local once (idempotent), export/import round-trips', async () => {
    const m1 = await runCli(['registry', 'migrate', '--to', 'local', '--json'], env);
    expect(m1.exitCode, m1.stderr).toBe(0);
    expect(JSON.parse(m1.stdout)).toMatchObject({ from: 'firestore', to: 'local', copied: ['data-agent', 'text-agent', 'image-agent', 'code-agent', 'math-agent'], skipped: [] });
    const m2 = JSON.parse((await runCli(['registry', 'migrate', '--to', 'local', '--json'], env)).stdout);
    expect(m2.copied).toEqual([]);
    expect(m2.skipped).toHaveLength(5);
    const local = JSON.parse((await runCli(['list', '--json'], { ...ws.env })).stdout);
    expect(local.agents.map((a: { name: string; port: number }) => [a.name, a.port])).toEqual([
      ['DataAgent', 9161], ['TextAgent', 9162], ['ImageAgent', 9163], ['CodeAgent', 9164], ['MathAgent', 9165],
    ]);
    // and back into a fresh firestore prefix, from an export file
    const file = `${ws.dir}/export.json`;
    expect((await runCli(['registry', 'export', '--output', file], ws.env)).exitCode).toBe(0);
    const otherPrefix = { ...env, NEXUS_FIRESTORE_PREFIX: `${prefix}copy_` };
    const imp = JSON.parse((await runCli(['registry', 'import', '--input', file, '--json'], otherPrefix)).stdout);
    expect(imp.copied).toHaveLength(5);
    const copied = JSON.parse((await runCli(['list', '--json'], otherPrefix)).stdout);
    expect(copied.agents.map((a: { tools: string[] }) => a.tools[0])).toEqual(['process_data', 'analyze_text', 'image_info', 'analyze_code', 'evaluate_expression']);
  });

  it('a firestore registry without a project id is a one-line config error (exit 2)', async () => {
    const r = await runCli(['list'], { ...env, GOOGLE_CLOUD_PROJECT: '', GCLOUD_PROJECT: '' });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/needs a Google Cloud project id\nhint: set GOOGLE_CLOUD_PROJECT/);
  });

  it('an unreachable Firestore fails the CLI within the deadline (exit 8)', async () => {
    const r = await runCli(['list'], { ...env, FIRESTORE_EMULATOR_HOST: '127.0.0.1:9', NEXUS_FIRESTORE_TIMEOUT_MS: '1500' });
    expect(r.exitCode).toBe(8);
    expect(r.stderr).toMatch(/Firestore emulator at 127.0.0.1:9 (did not answer within 1500 ms|kept failing)/);
  });
});
