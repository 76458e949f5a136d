import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { npmErrorPackage, npmErrorReason, planExternal } from '../../src/fleet/dependencies.js';

async function pkg(root: string, rel: string, deps: Record<string, string> = {}, files: Record<string, string> = {}): Promise<void> {
  await mkdir(join(root, rel), { recursive: true });
  await writeFile(join(root, rel, 'package.json'), JSON.stringify({ name: rel.split('node_modules/').pop(), version: '1.0.0', dependencies: deps }));
  for (const [f, c] of Object.entries(files)) {
    await mkdir(join(root, rel, f, '..'), { recursive: true });
    await writeFile(join(root, rel, f), c);
  }
}

describe('which dependencies stay external', () => {
  it('keeps packages with native addons, wasm or data files (or depending on one) external, and ships what they need', async () => {
    const root = await mkdtemp(join(tmpdir(), 'nexus-nm-'));
    await pkg(root, 'native', { helper: '1' }, { 'build/Release/addon.node': 'x' });
    await pkg(root, 'helper');
    await pkg(root, 'ocr', { core: '1' }, { 'index.js': '' });
    await pkg(root, 'core', {}, { 'core.wasm': 'x' });
    await pkg(root, 'data', {}, { '4.0/eng.traineddata.gz': 'x' });
    await pkg(root, 'pure', { helper: '1' }, { 'index.js': '', 'README.md': '' });
    // a nested copy wins over the top-level one for its parent (Node resolution)
    await pkg(root, 'named', { helper: '2' }, { 'index.js': '' });
    await pkg(root, 'named/node_modules/helper');
    const plan = await planExternal(root, ['native', 'ocr', 'data', 'pure', 'named']);
    expect(plan).toEqual({ external: ['data', 'native', 'ocr'], layerPackages: ['core', 'data', 'helper', 'native', 'ocr'] });
    const withNamed = await planExternal(root, ['pure', 'named'], ['named']);
    expect(withNamed).toEqual({ external: ['named'], layerPackages: ['named', join('named', 'node_modules', 'helper')] });
    await expect(planExternal(root, ['pure'], ['sharp'])).rejects.toMatchObject({ code: 'BUILD_FAILED', message: expect.stringContaining('not dependencies: sharp') });
  });
});

describe('npm failures name the package', () => {
  it('reads the package and the reason from npm output', () => {
    const notarget = 'npm error code ETARGET\nnpm error notarget No matching version found for sharp@0.0.999-nope.\nnpm error notarget In most cases...\nnpm error A complete log of this run can be found in: /x.log\n';
    expect(npmErrorPackage(notarget)).toBe('sharp@0.0.999-nope');
    expect(npmErrorReason(notarget)).toBe('notarget No matching version found for sharp@0.0.999-nope.');
    expect(npmErrorPackage("npm error 404 Not Found - GET https://registry.npmjs.org/nope - Not found\nnpm error 404  'nope@*' is not in this registry.")).toBe('nope@*');
    expect(npmErrorPackage('npm error code ECONNRESET')).toBeUndefined();
  });
});
