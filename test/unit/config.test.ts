import { describe, expect, it } from 'vitest';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS, loadConfig, resolveConfig } from '../../src/config/config.js';

describe('resolveConfig', () => {
  it('applies the defaults', () => {
    const c = resolveConfig('/w', {}, {});
    expect(c).toMatchObject({
      workspace: '/w',
      registry: 'local',
      ports: { range: { from: 8081, to: 8180 }, bindAddress: '127.0.0.1' },
      images: { base: DEFAULTS.baseImage, offline: 'auto', tag: 'latest' },
      resources: { memoryMiB: 128, cpus: 0.5, pids: 128 },
    });
  });

  it('lets the environment override the file', () => {
    const c = resolveConfig('/w', { ports: { range: '9000-9010' }, images: { base: 'node:22-slim' } }, { NEXUS_PORT_RANGE: '9100-9110', BASE_IMAGE: 'node:20-alpine', NEXUS_OFFLINE: 'always' });
    expect(c.ports.range).toEqual({ from: 9100, to: 9110 });
    expect(c.images.base).toBe('node:20-alpine');
    expect(c.images.offline).toBe('always');
  });

  it('reads autoscale by agent slug with the defaults, and names a bad entry', () => {
    const c = resolveConfig('/w', { autoscale: { 'data-agent': { max: 4, target_inflight_per_replica: 8 } } }, {});
    expect(c.autoscale).toEqual({ 'data-agent': { min: 1, max: 4, target_inflight_per_replica: 8, scale_in_cooldown_s: 300, scale_out_window_s: 30 } });
    expect(resolveConfig('/w', {}, {}).autoscale).toBeUndefined();
    expect(() => resolveConfig('/w', { autoscale: { 'data-agent': { min: 3, max: 2, target_inflight_per_replica: 1 } } }, {})).toThrow(/nexus.yaml: autoscale.data-agent.max: max must be >= min/);
    expect(() => resolveConfig('/w', { autoscale: { 'data-agent': { max: 2, target_inflight_per_replica: 0 } } }, {})).toThrow(/autoscale.data-agent.target_inflight_per_replica/);
    expect(() => resolveConfig('/w', { autoscale: { '../x': { max: 2, target_inflight_per_replica: 1 } } }, {})).toThrow(/autoscale/);
  });

  it('names the bad field', () => {
    expect(() => resolveConfig('/w', { ports: { rnage: '1-2' } }, {})).toThrow(/nexus.yaml: ports/);
    expect(() => resolveConfig('/w', { resources: { memoryMiB: 4 } }, {})).toThrow(/resources.memoryMiB/);
    expect(() => resolveConfig('/w', {}, { NEXUS_REGISTRY: 'redis' })).toThrow(/NEXUS_REGISTRY/);
  });

  it('reports unreadable YAML with the file path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-cfg-'));
    await writeFile(join(dir, 'nexus.yaml'), 'ports: [unclosed');
    expect(() => loadConfig(dir, {})).toThrow(/nexus.yaml: not valid YAML/);
  });
});
