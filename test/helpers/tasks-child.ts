/**
 * A manager's task side in its own process, for the durability test: the embedded store of
 * WORKSPACE, a real Gateway to the runtimes in RUNTIMES (JSON [{slug, url}]) and a dispatcher
 * (lease LEASE_MS). With SUBMIT=n it first accepts n tasks `work` {key: i} spread over the agents,
 * from SUBMIT_CONCURRENCY submitters at once (default 1), and prints `{"accepted": "<task id>"}`
 * per task once its submit returned (the 202 point), then `{"submitted": n}`. The test kills it with SIGKILL at any moment.
 */
import { Gateway } from '../../src/server/gateway/gateway.js';
import { Dispatcher } from '../../src/tasks/dispatcher.js';
import { SqliteTaskStore } from '../../src/tasks/sqlite-store.js';

const runtimes = JSON.parse(process.env.RUNTIMES ?? '[]') as { slug: string; url: string }[];
const gateway = new Gateway({
  resolve: (slug) => {
    const r = runtimes.find((x) => x.slug === slug);
    return r && { slug, replicas: [{ id: `${slug}-0`, url: r.url, inRotation: true }] };
  },
});
const store = SqliteTaskStore.forWorkspace(process.env.WORKSPACE!);
const dispatcher = new Dispatcher({ store, gateway, leaseMs: Number(process.env.LEASE_MS ?? 1000), pollMs: 20, perAgentLimit: 10, backoff: { initialDelayMs: 20, maxDelayMs: 100 } });
const n = Number(process.env.SUBMIT ?? 0);
dispatcher.start();
// SUBMIT_CONCURRENCY submitters at once: their submits share group commits (one 202 point per batch)
let next = 0;
await Promise.all(
  Array.from({ length: Number(process.env.SUBMIT_CONCURRENCY ?? 1) }, async () => {
    for (let i = next++; i < n; i = next++) {
      const { task } = await dispatcher.submit({ agent: runtimes[i % runtimes.length]!.slug, tool_name: 'work', parameters: { key: i, ms: 15 }, max_attempts: 5 });
      process.stdout.write(`${JSON.stringify({ accepted: task.task_id })}\n`);
    }
  }),
);
process.stdout.write(`${JSON.stringify({ submitted: n })}\n`);
