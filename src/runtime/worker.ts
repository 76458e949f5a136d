// A tool worker (a piscina worker thread): loads the agent's module itself, finds a tool by name
// and runs it. The main thread terminates it when a call runs over its time budget, and Node ends
// it when it runs over its heap limit (resourceLimits): either way only that call fails.
import { pathToFileURL } from 'node:url';
import { workerData } from 'node:worker_threads';
import { runHandler, type ToolOutcome } from './contract.js';
import type { AgentDefinition, ToolDefinition } from './define.js';

/** What the pool gives each worker (workerData). */
export interface ToolWorkerData {
  /** Absolute path of the agent's module (its default export is an AgentDefinition). */
  modulePath: string;
  /** Largest result accepted, in bytes of JSON. */
  maxResultBytes: number;
}

/** One call: an already validated tool call, its parameters as JSON text. */
export interface ToolTask {
  tool: string;
  params: string;
  timeoutMs: number;
}

const data = workerData as ToolWorkerData;
const tools: Promise<Map<string, ToolDefinition>> = import(pathToFileURL(data.modulePath).href).then(
  (mod: { default?: AgentDefinition }) => new Map((mod.default?.tools ?? []).map((t) => [t.name, t])),
);
// an import failure is reported by the first task, not as an unhandled rejection
tools.catch(() => undefined);

/** Run one task (piscina calls the default export). Resolves with a ToolOutcome, never rejects for tool errors. */
export default async function runTask(task: ToolTask): Promise<ToolOutcome> {
  const tool = (await tools).get(task.tool);
  if (!tool) return { ok: false, kind: 'error', message: `tool '${task.tool}' is not in the agent module` };
  // cooperative tools stop on this; the main thread terminates the worker at the same deadline
  // anyway. A cleared timer, as in invoke.ts: AbortSignal.timeout would outlive the call.
  const budget = new AbortController();
  const timer = setTimeout(() => budget.abort(), task.timeoutMs);
  try {
    return await runHandler(tool, JSON.parse(task.params) as Record<string, unknown>, budget.signal, data.maxResultBytes);
  } finally {
    clearTimeout(timer);
  }
}
