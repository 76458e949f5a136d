import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import type { AgentRecord } from '../../src/registry/registry.js';
import { SqliteCommandStore } from '../../src/server/command-store.js';
import { CommandCenter } from '../../src/server/commands.js';
import type { AgentConnections, AgentReply } from '../../src/server/connections.js';
import { eventually } from '../helpers/wait.js';

// The command store and a CommandCenter built again over the same file: what a manager restart
// does. The connections are a stand-in (the real sockets are in test/integration/agent-connections.test.ts).

const record = (slug: string): AgentRecord => ({
  name: slug, slug, description: '', capabilities: ['data'], category: 'general', model: 'none', version: '1.0.0',
  port: 9000, desired: 'running', status: 'running', createdAt: '', updatedAt: '',
});

/** Agents "connect" with online(slug); a command to a connected agent is answered by `answer` (or never, when it returns undefined). */
class FakeConnections {
  readonly connected = new Set<string>();
  readonly requests: { slug: string; commandId: string; verb: string }[] = [];
  private readonly listeners = new Set<(slug: string) => void>();
  answer: (slug: string, verb: string) => AgentReply | undefined = (slug, verb) => ({ ok: true, result: { agent: slug, verb } });
  onOnline(fn: (slug: string) => void) {
    this.listeners.add(fn);
    return () => void this.listeners.delete(fn);
  }
  connectionOf(slug: string) {
    return this.connected.has(slug) ? { id: `conn-${slug}`, capabilities: ['data'] } : undefined;
  }
  withCapability() {
    return [];
  }
  request(slug: string, commandId: string, verb: string): Promise<AgentReply | undefined> {
    this.requests.push({ slug, commandId, verb });
    const a = this.answer(slug, verb);
    return a ? Promise.resolve(a) : new Promise(() => undefined);
  }
  online(slug: string) {
    this.connected.add(slug);
    for (const fn of this.listeners) fn(slug);
  }
}

describe('commands survive a manager restart (command store)', () => {
  let dir: string;
  const open: { close(): void }[] = [];
  beforeEach(async () => void (dir = await mkdtemp(join(tmpdir(), 'nexus-command-store-'))));
  afterEach(async () => {
    for (const o of open.splice(0)) o.close();
    await rm(dir, { recursive: true, force: true });
  });

  function center(conns: FakeConnections) {
    const store = new SqliteCommandStore(join(dir, '.nexus', 'commands.db'));
    const c = new CommandCenter({
      connections: conns as unknown as AgentConnections,
      records: async () => ['a', 'b', 'c'].map(record),
      execute: async () => {
        throw new Error('no gateway in this test');
      },
      publish: () => undefined,
      clock: systemClock,
      store,
    });
    open.push(c, store);
    return { c, store };
  }

  it('waiting and in-flight targets are delivered after the restart; finished results stay readable', async () => {
    const before = new FakeConnections();
    before.connected.add('c');
    before.answer = () => undefined; // c never answers: the manager "dies" with the command sent
    const first = center(before);
    const waiting = await first.c.submit({ verb: 'get_telemetry', agent_targets: ['a', 'b'], ttl_s: 60 });
    const inFlight = await first.c.submit({ verb: 'get_system_info', agent_targets: ['c'], ttl_s: 60, priority: 'high' });
    expect(first.c.get(inFlight.command_id).targets[0]).toMatchObject({ agent: 'c', status: 'sent', via: 'connection' });
    first.c.close();
    first.store.close();

    const after = new FakeConnections();
    const second = center(after);
    expect(second.c.get(waiting.command_id)).toMatchObject({ status: 'pending', targets: [{ agent: 'a', status: 'waiting' }, { agent: 'b', status: 'waiting' }] });
    // the answer of the first send died with the old manager: back to waiting, sent again on reconnect
    expect(second.c.get(inFlight.command_id).targets[0]).toEqual({ agent: 'c', status: 'waiting' });
    second.c.start();
    expect(after.requests).toEqual([]);

    after.online('c');
    after.online('a');
    after.online('b');
    await eventually(async () => (second.c.get(waiting.command_id).status === 'succeeded' ? true : undefined), 5000, 20);
    await eventually(async () => (second.c.get(inFlight.command_id).status === 'succeeded' ? true : undefined), 5000, 20);
    expect(after.requests.map((r) => [r.slug, r.verb])).toEqual([['c', 'get_system_info'], ['a', 'get_telemetry'], ['b', 'get_telemetry']]);
    expect(second.c.get(waiting.command_id).targets.map((t) => [t.agent, t.status, t.via, t.result])).toEqual([
      ['a', 'succeeded', 'connection', { agent: 'a', verb: 'get_telemetry' }],
      ['b', 'succeeded', 'connection', { agent: 'b', verb: 'get_telemetry' }],
    ]);
    second.c.close();
    second.store.close();

    // a third run finds the results in the store (nothing open to reload)
    const third = center(new FakeConnections());
    expect(third.store.loadOpen()).toEqual([]);
    expect(third.c.get(waiting.command_id)).toMatchObject({ status: 'succeeded', targets: [{ agent: 'a', status: 'succeeded', result: { agent: 'a', verb: 'get_telemetry' } }, { agent: 'b', status: 'succeeded' }] });
    expect(third.c.get(inFlight.command_id).targets[0]).toMatchObject({ agent: 'c', status: 'succeeded', result: { agent: 'c', verb: 'get_system_info' } });
  });

  it('a command whose agent does not come back expires at its original time, with a clear status per target, after a restart', async () => {
    const first = center(new FakeConnections());
    const cmd = await first.c.submit({ verb: 'get_telemetry', agent_targets: ['a', 'b'], ttl_s: 1 });
    first.c.close();
    first.store.close();

    const after = new FakeConnections();
    const second = center(after);
    second.c.start();
    after.online('a');
    const done = await eventually(async () => {
      const v = second.c.get(cmd.command_id);
      return v.status === 'partial' ? v : undefined;
    }, 5000, 50);
    expect(done.targets[0]).toMatchObject({ agent: 'a', status: 'succeeded' });
    expect(done.targets[1]).toMatchObject({ agent: 'b', status: 'expired', error: { code: 'COMMAND_EXPIRED', message: expect.stringContaining('was not connected') } });
    second.c.close();
    second.store.close();
    // the expiry is stored too
    const third = center(new FakeConnections());
    expect(third.c.get(cmd.command_id)).toMatchObject({ status: 'partial', targets: [{ status: 'succeeded' }, { status: 'expired' }] });
  });

  it('prune keeps the newest finished commands and every open one', async () => {
    const store = new SqliteCommandStore(':memory:');
    open.push(store);
    const view = (id: string, status: 'succeeded' | 'pending') => ({
      command_id: id, verb: 'get_telemetry' as const, priority: 'normal' as const, status, created_at: 'x', expires_at: 'y', targets: [{ agent: 'a', status: status === 'pending' ? ('waiting' as const) : ('succeeded' as const) }],
    });
    store.insert({ view: view('open-1', 'pending'), args: {}, seq: 1 });
    for (let i = 2; i <= 6; i++) store.insert({ view: view(`done-${i}`, 'succeeded'), args: {}, seq: i });
    expect(store.prune(2)).toBe(3);
    expect(['open-1', 'done-2', 'done-5', 'done-6'].map((id) => store.get(id)?.view.command_id)).toEqual(['open-1', undefined, 'done-5', 'done-6']);
    expect(store.maxSeq()).toBe(6);
  });
});
