import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AgentDefinition } from './define.js';
import { buildServer } from './server.js';

/**
 * A whole-number setting from the environment, or undefined when unset.
 * @throws Error naming the variable (not its value) when it is not a whole number >= `min`.
 */
export function envInt(name: string, min: number, env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < min) throw new Error(`${name} must be a whole number >= ${min}`);
  return Number(raw);
}

/**
 * Load an agent module (its default export is an AgentDefinition), serve it on PORT (default 8080)
 * on all interfaces, and stop cleanly on SIGTERM/SIGINT: stop accepting, let in-flight requests
 * finish, then exit 0. Tool handlers run in worker threads that load the same module (see
 * invoke.ts). Environment: PORT, LOG_LEVEL (default info), AGENT_PUBLIC_URL, BODY_LIMIT_BYTES
 * (default 1 MiB), RESULT_LIMIT_BYTES (default 4 MiB), TOOL_MEMORY_MIB (heap of a tool worker,
 * default 24); each checked by envInt.
 * @throws Error for a module without an agent, or a malformed setting.
 */
export async function runAgent(modulePath: string): Promise<void> {
  modulePath = resolve(modulePath);
  const bodyLimitBytes = envInt('BODY_LIMIT_BYTES', 1024);
  const maxResultBytes = envInt('RESULT_LIMIT_BYTES', 1024);
  const workerMemoryMiB = envInt('TOOL_MEMORY_MIB', 8);
  const port = envInt('PORT', 1) ?? 8080;
  const mod = (await import(pathToFileURL(modulePath).href)) as { default?: AgentDefinition };
  const agent = mod.default;
  if (!agent?.tools) throw new Error(`${modulePath} does not export an agent (export default defineAgent({...}))`);
  const app = await buildServer(agent, {
    logger: { level: process.env.LOG_LEVEL ?? 'info' },
    publicUrl: process.env.AGENT_PUBLIC_URL || undefined,
    ...(bodyLimitBytes ? { bodyLimitBytes } : {}),
    tools: { modulePath, ...(maxResultBytes ? { maxResultBytes } : {}), ...(workerMemoryMiB ? { workerMemoryMiB } : {}) },
  });
  await app.listen({ port, host: '0.0.0.0' });
  app.log.info({ agent: agent.name, version: agent.version, tools: agent.tools.map((t) => t.name) }, 'agent ready');
  let closing = false;
  const stop = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
