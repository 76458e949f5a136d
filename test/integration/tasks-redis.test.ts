import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { RedisTaskStore } from '../../src/tasks/redis-store.js';
import { startRedis, type RunningRedis } from '../helpers/redis-server.js';
import { taskStoreContract } from '../helpers/task-store-contract.js';

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
