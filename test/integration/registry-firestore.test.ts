import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getApps } from 'firebase-admin/app';
import { FirestoreRegistry } from '../../src/registry/firestore.js';
import { startFirestoreEmulator } from '../helpers/firestore-emulator.js';
import { registryContract } from '../helpers/registry-contract.js';

let emulator: Awaited<ReturnType<typeof startFirestoreEmulator>>;
beforeAll(async () => {
  emulator = await startFirestoreEmulator();
});
afterAll(async () => {
  await emulator.stop();
});

// each test gets its own collections (a fresh prefix): the same database, like separate teams
const open = (prefix: string) => new FirestoreRegistry({ projectId: 'demo-nexus', collectionPrefix: prefix, timeoutMs: 15_000 });
registryContract(
  'firestore (emulator)',
  async () => open(`t${randomBytes(4).toString('hex')}_`),
  async (first) => open((first as FirestoreRegistry).prefix),
);

describe('FirestoreRegistry specifics', () => {
  const free = async () => true;
  const agent = { name: 'Alpha', slug: 'alpha', description: 'd', capabilities: ['data'], category: 'data', model: 'none', version: '1' };

  it('records the lifecycle history of an agent, removal included', async () => {
    const r = open(`h${randomBytes(4).toString('hex')}_`);
    await r.create(agent, { range: { from: 9700, to: 9709 }, isHostPortFree: free });
    await r.update('alpha', { status: 'built' });
    await r.update('alpha', { status: 'running', desired: 'running' });
    await r.update('alpha', { status: 'running', tools: [] });
    await r.update('alpha', { status: 'stopped', desired: 'stopped' });
    await r.remove('alpha');
    expect((await r.historyOf('alpha')).map((h) => h.event)).toEqual(['created', 'built', 'started', 'stopped', 'removed']);
    await r.close();
  });

  it('keeps tool schemas intact, nested arrays included', async () => {
    const r = open(`s${randomBytes(4).toString('hex')}_`);
    await r.create(agent, { range: { from: 9700, to: 9709 }, isHostPortFree: free });
    const parameters = { type: 'object', properties: { m: { type: 'array', items: { type: 'array', items: { type: 'number' } }, examples: [[[1, 2], [3]]] } } };
    const u = await r.update('alpha', { tools: [{ name: 't', description: 'matrix', parameters }] });
    expect(u.tools![0]!.parameters).toEqual(parameters);
    expect((await r.get('alpha'))!.tools![0]!.parameters).toEqual(parameters);
    await r.close();
  });

  it('fails within its deadline when Firestore does not answer, without hanging', async () => {
    const saved = process.env.FIRESTORE_EMULATOR_HOST;
    process.env.FIRESTORE_EMULATOR_HOST = '127.0.0.1:9';
    const r = new FirestoreRegistry({ projectId: 'demo-nexus', timeoutMs: 1500 });
    process.env.FIRESTORE_EMULATOR_HOST = saved;
    const err = await r.list().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REGISTRY_UNREACHABLE', exitCode: 8, message: expect.stringMatching(/did not answer within 1500 ms|kept failing/) });
    await r.close();
  });

  it('asks for credentials instead of probing the network when none are set', () => {
    const apps = getApps().length;
    expect(() => new FirestoreRegistry({ projectId: 'p', env: { HOME: '/nonexistent' } })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: 'no Google credentials for Firestore', hint: expect.stringContaining('GOOGLE_APPLICATION_CREDENTIALS') }),
    );
    // refused before any Firebase app (and so any Google client that could look for credentials) exists
    expect(getApps().length).toBe(apps);
  });
});
