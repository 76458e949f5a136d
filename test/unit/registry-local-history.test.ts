import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalRegistry } from '../../src/registry/local.js';

// The local registry writes its own lifecycle events like the Firestore one: created, each status
// change (running -> started...), removed; the supervisor's appended entries sit beside them.
let dir: string;
beforeEach(async () => void (dir = await mkdtemp(join(tmpdir(), 'nexus-history-'))));
afterEach(async () => rm(dir, { recursive: true, force: true }));

const free = async () => true;

describe('local registry history', () => {
  it('records created, status changes (not repeats) and removed, oldest first, kept after the record goes', async () => {
    const r = new LocalRegistry(dir);
    await r.create({ name: 'Alpha', slug: 'alpha', description: '', capabilities: [], category: 'general', model: 'm', version: '0.1.0' }, { range: { from: 9801, to: 9820 }, isHostPortFree: free });
    await r.update('alpha', { status: 'running', desired: 'running' });
    await r.update('alpha', { status: 'running' });
    await r.appendHistory('alpha', { event: 'restarted', reason: 'probe failed' });
    await r.update('alpha', { description: 'no status change' });
    await r.update('alpha', { status: 'stopped' });
    await r.remove('alpha');
    const h = await r.history('alpha');
    expect(h.map((e) => e.event)).toEqual(['created', 'started', 'restarted', 'stopped', 'removed']);
    expect(h[1]).toMatchObject({ event: 'started', status: 'running', at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    expect(h[2]).toMatchObject({ event: 'restarted', reason: 'probe failed' });
    expect(h[2]!.status).toBeUndefined();
  });
});
