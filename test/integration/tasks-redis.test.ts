import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway } from '../../src/server/gateway/gateway.js';
import { Dispatcher } from '../../src/tasks/dispatcher.js';
import { RedisTaskStore } from '../../src/tasks/redis-store.js';
import { startRedis, type RunningRedis } from '../helpers/redis-server.js';
import { taskStoreContract } from '../helpers/task-store-contract.js';
import { startWorkRuntimes } from '../helpers/task-runtimes.js';
import { eventually } from '../helpers/wait.js';

let redis: RunningRedis;
beforeAll(async () => void (redis = await startRedis()));
afterAll(async () => redis?.stop());

const prefixes = new WeakMap<RedisTaskStore, string>();
async function open(prefix = `test:${randomBytes(4).toString('hex')}`): Promise<RedisTaskStore> {
  const s = new RedisTaskStore({ url: redis.url, prefix });
  prefixes.set(s, prefix);
  return s;
}

taskStoreContract('redis (shared, Lua claims)', () => open(), async (first) => open(prefixes.get(first as RedisTaskStore)));

describe('two dispatchers sharing the Redis store (issue 10 §3)', () => {
  it('share 150 tasks: each runs exactly once, never twice at once, both do work', async () => {
    const { runtimes, log, close } = await startWorkRuntimes(3);
    const gateway = new Gateway({
      resolve: (slug) => {
        const r = runtimes.find((x) => x.slug === slug);
        return r && { slug, replicas: [{ id: `${slug}-0`, url: r.url, inRotation: true }] };
      },
    });
    const prefix = `test:${randomBytes(4).toString('hex')}`;
    const stores = [await open(prefix), await open(prefix)];
    const owners = new Map<string, string>();
    const dispatchers = stores.map((store, i) => new Dispatcher({ store, gateway, owner: `m${i}`, leaseMs: 2000, pollMs: 10, perAgentLimit: 8, onEvent: (e) => e.status === 'running' && owners.set(e.task_id, `m${i}`) }));
    dispatchers.forEach((d) => d.start());
    const ids: string[] = [];
    for (let i = 0; i < 150; i++) ids.push((await dispatchers[i % 2]!.submit({ agent: `w${i % 3}`, tool_name: 'work', parameters: { key: i, ms: 10 } })).task.task_id);
    await eventually(async () => ((await stores[0]!.counts()).succeeded === 150 ? true : undefined), 60_000, 50);
    await Promise.all(dispatchers.map((d) => d.stop()));
    expect(log.overlaps).toEqual([]);
    expect([...log.runs.values()].every((n) => n === 1)).toBe(true);
    expect(log.runs.size).toBe(150);
    for (const id of ids) expect((await stores[1]!.get(id))!.attempts).toHaveLength(1);
    expect(new Set(owners.values())).toEqual(new Set(['m0', 'm1']));
    await Promise.all(stores.map((s) => s.close()));
    await gateway.close();
    await close();
  });
});
