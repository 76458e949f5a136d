import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/config.js';
import type { Engine } from '../../src/engine/engine.js';
import { readExport } from '../../src/fleet/registry-transfer.js';
import { createAgent } from '../../src/fleet/manager.js';
import { LocalRegistry } from '../../src/registry/local.js';
import type { AgentRecord } from '../../src/registry/registry.js';
import { planCapabilities } from '../../src/scaffold/capabilities.js';

const good = (over: Partial<Record<keyof AgentRecord, unknown>> = {}): Record<string, unknown> => ({
  name: 'DataAgent', slug: 'data-agent', description: 'numbers', capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0',
  port: 8081, desired: 'stopped', status: 'created', createdAt: '2024-01-01T00:00:00.000Z', updatedAt: '2024-01-01T00:00:00.000Z', ...over,
});
const free = { range: { from: 9261, to: 9270 }, isHostPortFree: async () => true };

/** A workspace whose .nexus/registry.json holds `agents` (keyed by their slug unless given as [key, record] pairs). */
async function workspaceWith(agents: Record<string, unknown>): Promise<{ dir: string; file: string; text: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-records-'));
  await mkdir(join(dir, '.nexus'));
  const file = join(dir, '.nexus', 'registry.json');
  const text = JSON.stringify({ version: 1, agents }, null, 2);
  await writeFile(file, text);
  return { dir, file, text };
}

describe('records loaded from .nexus/registry.json are checked against the record schema', () => {
  it.each([
    ['a slug that is a path', { slug: '../../victim' }, 'slug', /agent "\.\.\/\.\.\/victim"|agent with slug/],
    ['a negative port', { port: -1 }, 'port', /agent 'data-agent'/],
    ['a port above 65535', { port: 70000 }, 'port', /agent 'data-agent'/],
    ['a fractional port', { port: 8081.5 }, 'port', /agent 'data-agent'/],
    ['a name with a newline', { name: 'A\n} location / { proxy_pass http://attacker.example; }' }, 'name', /agent 'data-agent'/],
    ['a version with a quote', { version: '1.0"' }, 'version', /agent 'data-agent'/],
    ['an unknown status', { status: 'dancing' }, 'status', /agent 'data-agent'/],
  ])('refuses %s with REGISTRY_CORRUPT naming the record and field, leaving the file as it was', async (_what, over, field, who) => {
    const rec = good(over);
    const key = typeof rec.slug === 'string' ? rec.slug : 'data-agent';
    const { dir, file, text } = await workspaceWith({ [key]: rec });
    const r = new LocalRegistry(dir);
    const err = await r.list().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REGISTRY_CORRUPT', exitCode: 8, details: { field } });
    expect((err as Error).message).toContain(`'${field}'`);
    expect((err as Error).message).toMatch(who);
    await expect(r.update('data-agent', { status: 'built' })).rejects.toMatchObject({ code: 'REGISTRY_CORRUPT' });
    expect(await readFile(file, 'utf8')).toBe(text);
  });

  it('names a missing required field', async () => {
    const rec = good();
    delete rec.status;
    const { dir } = await workspaceWith({ 'data-agent': rec });
    await expect(new LocalRegistry(dir).get('data-agent')).rejects.toMatchObject({ code: 'REGISTRY_CORRUPT', message: expect.stringContaining("required field 'status' is missing") });
  });

  it('refuses a record filed under a key other than its slug', async () => {
    const { dir } = await workspaceWith({ 'other-agent': good() });
    await expect(new LocalRegistry(dir).list()).rejects.toMatchObject({ code: 'REGISTRY_CORRUPT', details: { field: 'slug' } });
  });

  it('keeps marketplace fields it does not know (pending) and unknown top-level fields', async () => {
    const marketplace = { id: 'l1', key: 'k', url: 'http://m', cardHash: 'h', status: 'available', registeredAt: 'now', pending: 'unregister', extra: 1 };
    const { dir } = await workspaceWith({ 'data-agent': good({ marketplace, futureField: 'x' } as never) });
    const r = new LocalRegistry(dir);
    expect((await r.get('data-agent'))!.marketplace).toEqual(marketplace);
    const updated = await r.update('data-agent', { status: 'built' });
    expect(updated).toMatchObject({ marketplace, futureField: 'x' });
  });

  it('refuses to write a record it would refuse to read (nothing written)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-records-'));
    const r = new LocalRegistry(dir);
    await r.create({ name: 'DataAgent', slug: 'data-agent', description: '', capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0' }, free);
    await expect(r.update('data-agent', { desired: 'sideways' as never })).rejects.toMatchObject({ code: 'USAGE', details: { field: 'desired' } });
    expect((await r.get('data-agent'))!.desired).toBe('stopped');
  });

  it('answers REGISTRY_CORRUPT (exit 8), not INTERNAL, when registry.json is a directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-records-'));
    await mkdir(join(dir, '.nexus', 'registry.json'), { recursive: true });
    await expect(new LocalRegistry(dir).list()).rejects.toMatchObject({ code: 'REGISTRY_CORRUPT', exitCode: 8, message: expect.stringContaining('is a directory') });
  });
});

describe('registry import files are checked against the record schema', () => {
  const exportFile = async (agents: unknown[]) => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-import-'));
    const path = join(dir, 'export.json');
    await writeFile(path, JSON.stringify({ version: 1, registry: 'local', exportedAt: 'now', agents }));
    return path;
  };

  it('reads a good export', async () => {
    const doc = await readExport(await exportFile([good()]));
    expect(doc.agents.map((a) => a.slug)).toEqual(['data-agent']);
  });

  it.each([
    ['a slug with a path', good({ slug: '../../victim' }), 'slug', '#2'],
    ['port -1', good({ slug: 'b-agent', port: -1 }), 'port', "agent 'b-agent'"],
    ['a backtick slug', good({ slug: 'x`) || PathPrefix(`/' }), 'slug', '#2'],
    ['a missing field', (() => { const r = good({ slug: 'c-agent' }); delete r.createdAt; return r; })(), 'createdAt', "agent 'c-agent'"],
  ])('refuses %s with USAGE naming the record and the field', async (_what, bad, field, who) => {
    const err = await readExport(await exportFile([good(), bad])).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'USAGE', details: { field } });
    expect((err as Error).message).toContain(who);
    expect((err as Error).message).toContain(`'${field}'`);
  });
});

describe('lookups never hit Object.prototype', () => {
  it("creates an agent named Constructor (slug 'constructor') instead of answering NAME_TAKEN", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-records-'));
    const config = resolveConfig(dir, { ports: { range: '9271-9280' } }, {});
    const registry = new LocalRegistry(dir);
    expect(await registry.get('constructor')).toBeUndefined();
    const r = await createAgent({ config, registry, engine: {} as Engine }, { name: 'Constructor', port: 9271 });
    expect(r.agent).toMatchObject({ name: 'Constructor', slug: 'constructor', port: 9271 });
    expect((await registry.list()).map((a) => a.slug)).toEqual(['constructor']);
    await expect(createAgent({ config, registry, engine: {} as Engine }, { name: 'Constructor' })).rejects.toMatchObject({ code: 'NAME_TAKEN', message: expect.stringContaining("'Constructor'") });
    expect(await registry.remove('constructor')).toBe(true);
  });

  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty'])('refuses capability %j as unknown (not a crash)', (cap) => {
    expect(() => planCapabilities([cap])).toThrow(expect.objectContaining({ code: 'CAPABILITY_UNKNOWN' }));
  });
});

describe('create --agent-version', () => {
  it.each(['1.0"', '1\n2', 'latest', '1.0.0 beta', ''])('refuses %j with USAGE and writes nothing', async (version) => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-records-'));
    const config = resolveConfig(dir, { ports: { range: '9271-9280' } }, {});
    const registry = new LocalRegistry(dir);
    const err = await createAgent({ config, registry, engine: {} as Engine }, { name: 'DataAgent', version }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'USAGE', message: expect.stringContaining('--agent-version') });
    expect(await registry.list()).toEqual([]);
  });
});
