import { randomBytes } from 'node:crypto';
import { deleteApp, initializeApp, type App } from 'firebase-admin/app';
import { getFirestore, type Firestore } from 'firebase-admin/firestore';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FirestoreRegistry } from '../../src/registry/firestore.js';
import { startFirestoreEmulator } from '../helpers/firestore-emulator.js';

let emulator: Awaited<ReturnType<typeof startFirestoreEmulator>>;
let raw: App;
let db: Firestore;
beforeAll(async () => {
  emulator = await startFirestoreEmulator();
  // another writer with access to the database: what it stores is not checked by this tool
  raw = initializeApp({ projectId: 'demo-nexus' }, `raw-writer-${randomBytes(3).toString('hex')}`);
  db = getFirestore(raw);
});
afterAll(async () => {
  await deleteApp(raw);
  await emulator.stop();
});

const doc = (over: Record<string, unknown>) => ({
  name: 'DataAgent', slug: 'data-agent', description: 'd', capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0',
  port: 9263, desired: 'stopped', status: 'created', image: null, tools: null, marketplace: null, lastError: null, ...over,
});

describe('FirestoreRegistry checks what it reads against the record schema', () => {
  it.each([
    ['a slug that is a path', 'data-agent', { slug: '../../victim' }, 'slug'],
    ['port -1', 'data-agent', { port: -1 }, 'port'],
    ['a name with a newline', 'data-agent', { name: 'A\n} location / { proxy_pass http://x; }' }, 'name'],
    ['a missing version', 'data-agent', { version: undefined }, 'version'],
    ['a document id other than its slug', 'other', {}, 'slug'],
  ])('refuses %s with REGISTRY_CORRUPT naming the record and the field', async (_what, id, over, field) => {
    const prefix = `r${randomBytes(4).toString('hex')}_`;
    const data = Object.fromEntries(Object.entries(doc(over)).filter(([, v]) => v !== undefined));
    await db.collection(`${prefix}agents`).doc(id).set(data);
    const r = new FirestoreRegistry({ projectId: 'demo-nexus', collectionPrefix: prefix, timeoutMs: 15_000 });
    try {
      const err = await r.list().catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'REGISTRY_CORRUPT', exitCode: 8, details: { field } });
      expect((err as Error).message).toContain(`'${field}'`);
      expect((err as Error).message).toMatch(new RegExp(`agent 'data-agent'|${prefix}agents/${id}`));
      await expect(r.get(id)).rejects.toMatchObject({ code: 'REGISTRY_CORRUPT' });
    } finally {
      await r.close();
    }
  });

  it('reads a good document, keeping marketplace.pending', async () => {
    const prefix = `g${randomBytes(4).toString('hex')}_`;
    const marketplace = { id: 'l1', key: 'k', url: 'http://m', cardHash: 'h', status: 'unavailable', registeredAt: 'now', pending: 'available' };
    await db.collection(`${prefix}agents`).doc('data-agent').set(doc({ marketplace }));
    const r = new FirestoreRegistry({ projectId: 'demo-nexus', collectionPrefix: prefix, timeoutMs: 15_000 });
    try {
      expect(await r.get('data-agent')).toMatchObject({ slug: 'data-agent', port: 9263, marketplace });
    } finally {
      await r.close();
    }
  });
});
