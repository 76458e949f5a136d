import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AgentDefinition } from './define.js';
import type { Registry as MetricsRegistry } from 'prom-client';
import { connectToManager, type ManagerLink } from './connect.js';
import type { InvokeTool } from './invoke.js';
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
  let invoker: { invokeTool: InvokeTool; metrics: MetricsRegistry } | undefined;
  const app = await buildServer(agent, {
    onInvoker: (invokeTool, metrics) => (invoker = { invokeTool, metrics }),
    logger: { level: process.env.LOG_LEVEL ?? 'info' },
    publicUrl: process.env.AGENT_PUBLIC_URL || undefined,
    ...(bodyLimitBytes ? { bodyLimitBytes } : {}),
    tools: { modulePath, ...(maxResultBytes ? { maxResultBytes } : {}), ...(workerMemoryMiB ? { workerMemoryMiB } : {}) },
  });
  // hooks must be added before listen (Fastify refuses them after): the link comes once it listens
  let link: ManagerLink | undefined;
  app.addHook('onClose', async () => link?.close());
  await app.listen({ port, host: '0.0.0.0' });
  app.log.info({ agent: agent.name, version: agent.version, tools: agent.tools.map((t) => t.name) }, 'agent ready');
  link = linkFromEnv(agent, invoker!, app.log);
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

/** Tool call counts by tool and outcome, from the invoker's `nexus_agent_tool_calls_total`. */
export async function toolCallCounts(metrics: MetricsRegistry): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {};
  const m = await metrics.getSingleMetric('nexus_agent_tool_calls_total')?.get();
  for (const v of m?.values ?? []) {
    const tool = String(v.labels.tool ?? '');
    const outcome = String(v.labels.outcome ?? '');
    (out[tool] ??= {})[outcome] = v.value;
  }
  return out;
}

/**
 * The agent's connection token: NEXUS_AGENT_TOKEN, else the first line of the file named by
 * NEXUS_AGENT_TOKEN_FILE (what the fleet mounts read-only at /run/secrets/nexus-agent-token, so
 * the token is not in the container's environment). undefined when neither gives one; an
 * unreadable file is reported through `log.warn` (naming the file, never a token).
 */
export function agentTokenFromEnv(env: NodeJS.ProcessEnv, log: ManagerLinkLog): string | undefined {
  if (env.NEXUS_AGENT_TOKEN) return env.NEXUS_AGENT_TOKEN;
  const file = env.NEXUS_AGENT_TOKEN_FILE;
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8').split('\n')[0]!.trim() || undefined;
  } catch (err) {
    log.warn({ file, code: (err as NodeJS.ErrnoException).code }, 'cannot read NEXUS_AGENT_TOKEN_FILE; not connecting to the manager');
    return undefined;
  }
}

/**
 * The manager link of an agent (connect.ts) when NEXUS_MANAGER_URL and a token (NEXUS_AGENT_TOKEN
 * or NEXUS_AGENT_TOKEN_FILE, see agentTokenFromEnv) are both set, else undefined. Also read: NEXUS_AGENT_ID (default the agent's name), NEXUS_AGENT_SITE
 * (default the hostname), NEXUS_RECONNECT_INTERVAL_MS (first backoff, default 1000),
 * NEXUS_MAX_RECONNECT_ATTEMPTS (0 = forever, the default), NEXUS_TELEMETRY_INTERVAL_S (default:
 * the welcome's heartbeat interval).
 * @throws Error naming a malformed variable (never the token's value).
 */
export function linkFromEnv(
  agent: AgentDefinition,
  invoker: { invokeTool: InvokeTool; metrics: MetricsRegistry },
  log: ManagerLinkLog,
  env: NodeJS.ProcessEnv = process.env,
): ManagerLink | undefined {
  const url = env.NEXUS_MANAGER_URL;
  if (!url) return undefined;
  const token = agentTokenFromEnv(env, log);
  if (!token) return undefined;
  const reconnectIntervalMs = envInt('NEXUS_RECONNECT_INTERVAL_MS', 10, env);
  const maxReconnectAttempts = envInt('NEXUS_MAX_RECONNECT_ATTEMPTS', 0, env);
  const telemetryIntervalS = envInt('NEXUS_TELEMETRY_INTERVAL_S', 1, env);
  return connectToManager({
    url,
    token,
    agentId: env.NEXUS_AGENT_ID || agent.name,
    site: env.NEXUS_AGENT_SITE || hostname(),
    version: agent.version,
    capabilities: agent.capabilities ?? [],
    tools: agent.tools.map((t) => t.name),
    invokeTool: invoker.invokeTool,
    toolCalls: () => toolCallCounts(invoker.metrics),
    ...(reconnectIntervalMs !== undefined ? { reconnectIntervalMs } : {}),
    ...(maxReconnectAttempts !== undefined ? { maxReconnectAttempts } : {}),
    telemetryIntervalS,
    log,
  });
}

type ManagerLinkLog = { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
