import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/config.js';
import type { Engine } from '../../src/engine/engine.js';
import { removeAgent } from '../../src/fleet/manager.js';
import { agentDirToPurge } from '../../src/paths.js';
import { LocalRegistry } from '../../src/registry/local.js';

/** An engine with no containers and no images: removeAgent's engine calls all succeed. */
const idleEngine = { ping: async () => {}, listContainers: async () => [], removeContainer: async () => {}, removeImage: async () => {} } as unknown as Engine;

const record = (slug: string) => ({
  name: 'Victim', slug, description: '', capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0',
  port: 9262, desired: 'stopped', status: 'created', createdAt: 'x', updatedAt: 'x',
});

/** <root>/ws (the workspace, with registry `agents`) and <root>/victim/keep.txt beside it. */
async function setup(agents: Record<string, unknown> = {}) {
  const root = await mkdtemp(join(tmpdir(), 'nexus-purge-'));
  const ws = join(root, 'ws');
  const victim = join(root, 'victim');
  await mkdir(join(ws, '.nexus'), { recursive: true });
  await mkdir(victim);
  await writeFile(join(victim, 'keep.txt'), 'precious');
  await writeFile(join(ws, '.nexus', 'registry.json'), JSON.stringify({ version: 1, agents }));
  const deps = { config: resolveConfig(ws, {}, {}), registry: new LocalRegistry(ws), engine: idleEngine };
  return { root, ws, victim, deps };
}

describe('remove --purge never deletes outside <workspace>/agents/', () => {
  it("refuses a record whose slug is '../../victim' and leaves the folder", async () => {
    const { victim, deps } = await setup({ '../../victim': record('../../victim') });
    await mkdir(join(deps.config.workspace, 'agents'), { recursive: true });
    const err = await removeAgent(deps, '../../victim', { purge: true }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REGISTRY_CORRUPT', details: { field: 'slug' } });
    expect(existsSync(join(victim, 'keep.txt'))).toBe(true);
  });

  it('refuses when agents/ is a symlink to a folder outside the workspace, and removes nothing', async () => {
    const { root, victim, deps, ws } = await setup({ victim: record('victim') });
    await symlink(root, join(ws, 'agents'));
    const err = await removeAgent(deps, 'victim', { purge: true }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'USAGE', message: expect.stringContaining('resolves outside') });
    expect(existsSync(join(victim, 'keep.txt'))).toBe(true);
    expect(await deps.registry.get('victim')).toBeDefined();
  });

  it("refuses when the agent's folder is a symlink pointing out", async () => {
    const { victim, deps, ws } = await setup({ victim: record('victim') });
    await mkdir(join(ws, 'agents'));
    await symlink(victim, join(ws, 'agents', 'victim'));
    const err = await removeAgent(deps, 'victim', { purge: true }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'USAGE', message: expect.stringContaining('symbolic link') });
    expect(existsSync(join(victim, 'keep.txt'))).toBe(true);
    expect(existsSync(join(ws, 'agents', 'victim'))).toBe(true);
  });

  it('deletes the folder when it is really agents/<slug>', async () => {
    const { deps, ws } = await setup({ 'data-agent': { ...record('data-agent'), name: 'DataAgent' } });
    await mkdir(join(ws, 'agents', 'data-agent', 'src'), { recursive: true });
    await writeFile(join(ws, 'agents', 'data-agent', 'src', 'index.ts'), '');
    expect(await removeAgent(deps, 'DataAgent', { purge: true })).toMatchObject({ slug: 'data-agent', purged: true });
    expect(existsSync(join(ws, 'agents', 'data-agent'))).toBe(false);
    expect(existsSync(join(ws, 'agents'))).toBe(true);
  });

  it.each(['..', '.', '', '/etc', '../x', 'a/b', 'agents/../..'])('agentDirToPurge refuses %j', async (slug) => {
    await expect(agentDirToPurge('/tmp/ws', slug)).rejects.toMatchObject({ code: 'USAGE' });
  });
});
