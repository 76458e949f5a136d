/**
 * The tasks domain's composition: a store (embedded by default, Redis when a URL is given), a
 * dispatcher started on it, and the manager plugin over both. createManager (src/server/manager.ts)
 * calls `startTasks` and registers `tasks.plugin` in buildServer's `plugins.api`.
 */
import type { ManagerPlugin } from '../server/app.js';
import { tasksPlugin } from '../server/tasks-plugin.js';
import { Dispatcher, type DispatcherOptions } from './dispatcher.js';
import { RedisTaskStore } from './redis-store.js';
import { SqliteTaskStore } from './sqlite-store.js';
import type { TaskStore } from './store.js';

export { Dispatcher, classify, type DispatcherOptions, type TaskEvent, type TaskGateway } from './dispatcher.js';
export type { Task, NewTaskInput, TaskStatus, Priority } from './model.js';
export type { TaskStore } from './store.js';
export { SqliteTaskStore, tasksDbPath } from './sqlite-store.js';
export { RedisTaskStore } from './redis-store.js';

export interface TaskStoreConfig {
  /** The workspace: the embedded store is `<workspace>/.nexus/tasks.db`. */
  workspace: string;
  /** redis://host:port: share tasks with other manager instances (NEXUS_TASKS_REDIS_URL) instead. */
  redisUrl?: string | undefined;
  /** Redis key prefix (default `nexus:tasks`). */
  redisPrefix?: string | undefined;
}

/** The configured store: Redis when `redisUrl` is set, else the embedded SQLite file. */
export function openTaskStore(cfg: TaskStoreConfig): TaskStore {
  if (cfg.redisUrl) return new RedisTaskStore({ url: cfg.redisUrl, ...(cfg.redisPrefix ? { prefix: cfg.redisPrefix } : {}) });
  return SqliteTaskStore.forWorkspace(cfg.workspace);
}

export interface RunningTasks {
  store: TaskStore;
  dispatcher: Dispatcher;
  /** For buildServer's `plugins.api`. */
  plugin: ManagerPlugin;
  /** Stop the dispatcher (calls in flight finish and are recorded), then close the store. Idempotent. */
  close(): Promise<void>;
}

/**
 * Open the store, build a dispatcher on it (not started: call `dispatcher.start()` once its
 * gateway is ready; its first tick re-queues expired leases of a previous run) and the routes plugin.
 * @param cfg where the store is; `dispatcher` everything DispatcherOptions takes but the store
 *   (the gateway, resolveCapability, clock, limits).
 */
export function createTasks(cfg: TaskStoreConfig & { dispatcher: Omit<DispatcherOptions, 'store'> }): RunningTasks {
  const store = openTaskStore(cfg);
  const dispatcher = new Dispatcher({ ...cfg.dispatcher, store });
  let closed: Promise<void> | undefined;
  return {
    store,
    dispatcher,
    plugin: tasksPlugin({ store, dispatcher }),
    close: () =>
      (closed ??= (async () => {
        await dispatcher.stop();
        await store.close();
      })()),
  };
}
