import { mkdtemp, readFile, writeFile, mkdir, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalRegistry } from '../../src/registry/local.js';
import { registryContract } from '../helpers/registry-contract.js';

registryContract(
  'local',
  async () => new LocalRegistry(await mkdtemp(join(tmpdir(), 'nexus-reg-'))),
  async (first) => new LocalRegistry(join((first as LocalRegistry).path, '..', '..')),
);

describe('LocalRegistry on disk', () => {
  it('keeps a corrupt file untouched and says so', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-reg-'));
    await mkdir(join(dir, '.nexus'));
    await writeFile(join(dir, '.nexus/registry.json'), '{"version": 1, "agents": {');
    const r = new LocalRegistry(dir);
    await expect(r.list()).rejects.toMatchObject({ code: 'REGISTRY_CORRUPT' });
    await expect(r.create({ name: 'A', slug: 'a', description: '', capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0' }, { range: { from: 1, to: 2 }, isHostPortFree: async () => true })).rejects.toMatchObject({ code: 'REGISTRY_CORRUPT' });
    expect(await readFile(join(dir, '.nexus/registry.json'), 'utf8')).toBe('{"version": 1, "agents": {');
  });

  it('writes atomically (no temp files left) with owner-only permissions', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-reg-'));
    const r = new LocalRegistry(dir);
    await r.create({ name: 'A', slug: 'a', description: '', capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0' }, { range: { from: 9600, to: 9601 }, isHostPortFree: async () => true });
    // the record and its lifecycle history (the 'created' entry, written under the same lock): no temp files
    expect((await readdir(join(dir, '.nexus'))).sort()).toEqual(['history.json', 'registry.json']);
    const { stat } = await import('node:fs/promises');
    for (const f of ['registry.json', 'history.json']) expect((await stat(join(dir, '.nexus', f))).mode & 0o777).toBe(0o600);
  });
});
