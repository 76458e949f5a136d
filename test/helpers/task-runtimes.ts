import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { defineAgent, defineTool } from '../../src/runtime/define.js';
import { buildServer } from '../../src/runtime/server.js';

/** What the `work` tools of a set of runtimes saw: executions per key, and overlaps (a key running twice at once). */
export interface WorkLog {
  runs: Map<number, number>;
  active: Map<number, number>;
  overlaps: number[];
}

/**
 * `count` real agent runtimes (src/runtime/server.ts) on 127.0.0.1:0, slugs w0..w{count-1}, each with
 * one tool `work` {key, ms} that waits `ms` and records the execution of `key` in the shared log.
 */
export async function startWorkRuntimes(count: number): Promise<{ runtimes: { slug: string; url: string; app: FastifyInstance }[]; log: WorkLog; close: () => Promise<void> }> {
  const log: WorkLog = { runs: new Map(), active: new Map(), overlaps: [] };
  const work = defineTool<{ key: number; ms: number }>({
    name: 'work',
    description: 'records its key, waits ms, answers the key',
    parameters: { type: 'object', required: ['key', 'ms'], properties: { key: { type: 'integer' }, ms: { type: 'integer' } } },
    handler: async ({ key, ms }) => {
      log.runs.set(key, (log.runs.get(key) ?? 0) + 1);
      const now = (log.active.get(key) ?? 0) + 1;
      log.active.set(key, now);
      if (now > 1) log.overlaps.push(key);
      await new Promise((r) => setTimeout(r, ms));
      log.active.set(key, (log.active.get(key) ?? 1) - 1);
      return { key };
    },
  });
  const runtimes: { slug: string; url: string; app: FastifyInstance }[] = [];
  for (let i = 0; i < count; i++) {
    const app = await buildServer(defineAgent({ name: `w${i}`, description: 'worker', version: '1.0.0', tools: [work] }), { processMetrics: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    runtimes.push({ slug: `w${i}`, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, app });
  }
  return { runtimes, log, close: async () => void (await Promise.all(runtimes.map((r) => r.app.close()))) };
}
