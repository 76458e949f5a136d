import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { LABEL } from '../../src/conventions.js';
import { agentContainerSpec } from '../../src/fleet/containers.js';
import { plan, type DesiredState } from '../../src/fleet/plan.js';
import type { ObservedContainer, ObservedState } from '../../src/fleet/state.js';
import type { AgentRecord } from '../../src/registry/registry.js';

// The planner with literal states and no daemon (docker/compose's reconcile tests in small).
const config = loadConfig('/tmp/nexus-plan-ws', {});
const rec = (slug: string, port: number): AgentRecord =>
  ({ name: slug, slug, port, description: '', capabilities: ['general'], category: 'general', model: 'none', version: '0.1.0', status: 'created', desired: 'stopped', createdAt: '', updatedAt: '' }) as AgentRecord;
const A = rec('a', 8081);
const ref = 'nexus-delta-agent-a:latest';
const image = { ref, id: 'sha256:img-a', sourceHash: 'src-1' };
const hashOf = (img = image) => agentContainerSpec(config, A, img).labels[LABEL.configHash]!;
const box = (over: Partial<ObservedContainer> = {}): ObservedContainer => ({ id: 'c-a', name: 'nexus-agent-a', agent: 'a', replica: 0, configHash: hashOf(), image: ref, imageId: image.id, state: 'running', ...over });
const observed = (over: Partial<ObservedState> = {}): ObservedState => ({ records: [A], containers: [], images: { [ref]: image }, foreignNames: {}, ...over });
const running = (over: Partial<DesiredState> = {}): DesiredState => ({ config, agents: [{ record: A, state: 'running', image: { ref, sourceHash: 'src-1' } }], router: 'any', ...over });
const kinds = (p: { actions: { kind: string }[] }) => p.actions.map((a) => a.kind);

describe('plan: desired x observed -> ordered actions', () => {
  it('fresh workspace: create with the spec of the existing image, wait, record', () => {
    const p = plan(running(), observed());
    expect(kinds(p)).toEqual(['create', 'wait-healthy', 'update-record']);
    expect(p.actions[0]).toMatchObject({ kind: 'create', agent: 'a', spec: { name: 'nexus-agent-a', labels: { [LABEL.configHash]: hashOf() } } });
  });

  it('running with the same config hash: keep (nothing for the engine to do)', () => {
    expect(kinds(plan(running(), observed({ containers: [box()] })))).toEqual(['keep', 'wait-healthy', 'update-record']);
  });

  it('config-hash drift: recreate, removing the old container first', () => {
    const p = plan(running(), observed({ containers: [box({ configHash: 'old' })] }));
    expect(p.actions[0]).toMatchObject({ kind: 'recreate', remove: ['c-a'] });
  });

  it('stopped with the same hash: start it', () => {
    expect(plan(running(), observed({ containers: [box({ state: 'exited' })] })).actions[0]).toMatchObject({ kind: 'start', id: 'c-a' });
  });

  it('image missing: build, then create from the built image (no spec yet)', () => {
    const p = plan(running(), observed({ images: {} }));
    expect(kinds(p)).toEqual(['build-image', 'create', 'wait-healthy', 'update-record']);
    expect(p.actions[1]).toMatchObject({ kind: 'create', spec: undefined });
  });

  it('source changed: build, then recreate the running container', () => {
    const p = plan(running({ agents: [{ record: A, state: 'running', image: { ref, sourceHash: 'src-2' } }] }), observed({ containers: [box()] }));
    expect(kinds(p).slice(0, 2)).toEqual(['build-image', 'recreate']);
  });

  it('an extra replica is removed when scaling down; missing ones are added', () => {
    const p = plan(running({ agents: [{ record: A, state: 'running', image: { ref, sourceHash: 'src-1' }, replicas: 2 }] }), observed({ containers: [box(), box({ id: 'c-a2', name: 'nexus-agent-a-2', replica: 2 })] }));
    expect(p.actions.filter((a) => a.kind === 'remove')).toEqual([{ kind: 'remove', agent: 'a', replica: 2, id: 'c-a2' }]);
    expect(p.actions.find((a) => a.kind === 'scale')).toMatchObject({ replicas: 2, add: [1] });
  });

  it('a second primary with our labels is removed', () => {
    const p = plan(running(), observed({ containers: [box(), box({ id: 'c-dup', name: 'dup' })] }));
    expect(p.actions[0]).toEqual({ kind: 'remove', agent: 'a', replica: 0, id: 'c-dup' });
    expect(kinds(p)).toContain('keep');
  });

  it('an orphan container with our labels is reported, and removed only when pruning', () => {
    const orphan = box({ id: 'c-x', name: 'nexus-agent-x', agent: 'x' });
    const kept = plan(running(), observed({ containers: [box(), orphan] }));
    expect(kept.orphans).toEqual(['nexus-agent-x']);
    expect(kept.actions.some((a) => 'id' in a && a.id === 'c-x')).toBe(false);
    const pruned = plan(running({ pruneOrphans: true }), observed({ containers: [box(), orphan] }));
    expect(pruned.actions.filter((a) => 'id' in a && a.id === 'c-x').map((a) => a.kind)).toEqual(['stop', 'remove']);
  });

  it('an agent removed from the registry while its container runs is an orphan', () => {
    const p = plan({ config, agents: [], router: 'any', pruneOrphans: true }, observed({ records: [], containers: [box()] }));
    expect(p.actions).toEqual([
      { kind: 'stop', agent: 'a', replica: 0, id: 'c-a', timeoutS: 10 },
      { kind: 'remove', agent: 'a', replica: 0, id: 'c-a' },
    ]);
  });

  it('a foreign container holding our name blocks the create with NAME_TAKEN', () => {
    const p = plan(running(), observed({ foreignNames: { 'nexus-agent-a': 'f00' } }));
    expect(kinds(p)).toEqual(['blocked']);
    expect(p.actions[0]).toMatchObject({ code: 'NAME_TAKEN', message: expect.stringContaining('nexus-agent-a') });
  });

  it('router needed: started when absent, reloaded when running; not needed: removed; any: untouched', () => {
    expect(plan(running({ router: 'running', routerPort: 9000 }), observed()).actions.at(-1)).toEqual({ kind: 'start-router', routerPort: 9000, remove: undefined });
    const r = box({ id: 'r1', name: 'nexus-router-x', agent: undefined, state: 'running' });
    expect(plan(running({ router: 'running' }), observed({ router: r })).actions.at(-1)).toEqual({ kind: 'reload-router', routerPort: 8088, id: 'r1' });
    expect(plan(running({ router: 'running' }), observed({ router: { ...r, state: 'exited' } })).actions.at(-1)).toMatchObject({ kind: 'start-router', remove: 'r1' });
    expect(plan({ config, agents: [], router: 'absent' }, observed({ router: r })).actions).toEqual([{ kind: 'remove-router', id: 'r1' }]);
    expect(kinds(plan(running(), observed({ router: r })))).not.toContain('reload-router');
  });

  it('stopped: stop then remove every container of the agent, then record it', () => {
    const p = plan({ config, agents: [{ record: A, state: 'stopped' }], router: 'any', stopTimeoutS: 3 }, observed({ containers: [box(), box({ id: 'c-a1', replica: 1 })] }));
    expect(kinds(p)).toEqual(['stop', 'remove', 'stop', 'remove', 'update-record']);
    expect(p.actions[0]).toMatchObject({ timeoutS: 3 });
  });
});
