import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/config.js';
import type { ContainerInfo } from '../../src/engine/engine.js';
import { LABEL } from '../../src/engine/labels.js';
import { agentContainerSpec, planContainer } from '../../src/fleet/containers.js';
import { imageMemoryMiB } from '../../src/conventions.js';
import type { AgentRecord } from '../../src/registry/registry.js';

const config = resolveConfig('/ws', { labels: { team: 'a' } }, {});
const rec: AgentRecord = {
  name: 'DataAgent', slug: 'data-agent', description: '', capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0',
  port: 8081, desired: 'running', status: 'built', createdAt: '', updatedAt: '',
};
const img = { ref: 'nexus-delta-agent-data-agent:latest', id: 'sha256:aaa' };

describe('agentContainerSpec', () => {
  it('is hardened and limited by default', () => {
    const s = agentContainerSpec(config, rec, img);
    expect(s).toMatchObject({
      name: 'nexus-agent-data-agent',
      user: '1000:1000',
      readOnlyRootfs: true,
      capDrop: ['ALL'],
      securityOpt: ['no-new-privileges:true'],
      memoryMiB: 128,
      cpus: 0.5,
      pidsLimit: 128,
      restartPolicy: 'unless-stopped',
      init: true,
      containerPort: 8080,
      hostPort: { address: '127.0.0.1', port: 8081 },
    });
    expect(s.labels).toMatchObject({ [LABEL.managed]: 'true', [LABEL.agent]: 'data-agent', team: 'a' });
    expect(s.healthcheck!.test).toEqual(['/usr/local/bin/busybox', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/health']);
    expect(Object.keys(s.env)).not.toContain('MARKETPLACE_API_KEY');
  });

  it('changes its config hash when the image, the port or the limits change, and only then', () => {
    const h = (r: AgentRecord, i = img, c = config) => agentContainerSpec(c, r, i).labels[LABEL.configHash];
    const base = h(rec);
    expect(base).toMatch(/^[0-9a-f]{16}$/);
    expect(h(rec, { ...img, id: 'sha256:bbb' })).not.toBe(base);
    expect(h({ ...rec, port: 8082 })).not.toBe(base);
    expect(h(rec, img, resolveConfig('/ws', { labels: { team: 'a' }, resources: { memoryMiB: 256 } }, {}))).not.toBe(base);
    // what the container does not run with: lifecycle state, health, timestamps, marketplace text
    const touched: AgentRecord = { ...rec, status: 'running', desired: 'stopped', description: 'other', createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-02T00:00:00Z' };
    expect(h(touched)).toBe(base);
  });

  it('labels the container with the hash the planner keeps, so an unchanged agent is not recreated', () => {
    const spec = agentContainerSpec(config, rec, img);
    const observed: ContainerInfo = { id: 'a', name: spec.name, image: img.ref, imageId: img.id, state: 'running', status: '', labels: spec.labels };
    const again = agentContainerSpec(config, { ...rec, status: 'running', updatedAt: 'later' }, img);
    expect(planContainer(again.labels[LABEL.configHash]!, [observed])).toEqual({ action: 'keep', id: 'a', remove: [] });
    const moved = agentContainerSpec(config, { ...rec, port: 8082 }, img);
    expect(planContainer(moved.labels[LABEL.configHash]!, [observed])).toEqual({ action: 'recreate', remove: ['a'] });
  });

  it("takes an agent's own memory limit from its image (agent.json resources.memoryMiB, kept as an image label)", () => {
    expect(agentContainerSpec(config, rec, img).memoryMiB).toBe(config.resources.memoryMiB);
    const ocr = { ...img, memoryMiB: imageMemoryMiB({ [LABEL.memoryMiB]: '256' }) };
    expect(agentContainerSpec(config, rec, ocr).memoryMiB).toBe(256);
    expect(imageMemoryMiB({})).toBeUndefined();
    expect(imageMemoryMiB({ [LABEL.memoryMiB]: 'x' })).toBeUndefined();
  });
});

const c = (id: string, state: ContainerInfo['state'], hash: string, replica = '0'): ContainerInfo => ({
  id, name: id, image: '', imageId: '', state, status: '', labels: { [LABEL.configHash]: hash, [LABEL.replica]: replica },
});

describe('planContainer', () => {
  it.each([
    ['nothing observed', [], { action: 'create', remove: [] }],
    ['same hash, running', [c('a', 'running', 'H')], { action: 'keep', id: 'a', remove: [] }],
    ['same hash, exited', [c('a', 'exited', 'H')], { action: 'start', id: 'a', remove: [] }],
    ['same hash, created', [c('a', 'created', 'H')], { action: 'start', id: 'a', remove: [] }],
    ['other hash', [c('a', 'running', 'OLD')], { action: 'recreate', remove: ['a'] }],
    ['dead', [c('a', 'dead', 'H')], { action: 'recreate', remove: ['a'] }],
    ['duplicate primaries', [c('a', 'running', 'H'), c('b', 'running', 'H')], { action: 'keep', id: 'a', remove: ['b'] }],
    ['replicas are not the primary', [c('r1', 'running', 'H', '1')], { action: 'create', remove: [] }],
  ] as const)('%s', (_, observed, plan) => {
    expect(planContainer('H', observed as unknown as ContainerInfo[])).toEqual(plan);
  });
});
