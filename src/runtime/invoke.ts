import type { Piscina } from 'piscina';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { Counter, Histogram, type Registry as MetricsRegistry } from 'prom-client';
import { ContractError, MAX_JSON_DEPTH, nestsDeeperThan, runHandler, TOOL_WORKER_CONDITION, type ToolOutcome } from './contract.js';
import type { AgentDefinition, ToolDefinition } from './define.js';
import type { ToolTask, ToolWorkerData } from './worker.js';

const DEFAULT_TOOL_TIMEOUT_MS = 30_000;
/** Default limit of a tool's result: 4 MiB of JSON. */
export const DEFAULT_RESULT_LIMIT_BYTES = 4 * 1024 * 1024;
/** Default number of tool calls an agent holds at once, running or waiting for a worker. */
export const DEFAULT_MAX_CALLS = 64;
/**
 * Default budget of parameters (JSON text, in UTF-16 code units: ~bytes) held by calls waiting for
 * or running in a worker: 16 MiB. Small calls never meet it; 1 MiB bodies are held 16 at a time,
 * so the queue cannot fill the 64 MiB heap (issue 14 §3).
 */
export const DEFAULT_MAX_HELD_PARAMS = 16 * 1024 * 1024;

/** A tool's result: its JSON text (at most the result limit), parsed only by a door that needs the value. */
export class ToolResult {
  constructor(readonly json: string) {}
  /** The result as a value (a fresh parse of `json`). */
  value(): unknown {
    return JSON.parse(this.json);
  }
}

/**
 * Run one tool by name: the single path every door (POST /execute, A2A message:send, MCP
 * tools/call) takes, so they share lookup, validation, limits, time budget and metrics.
 * `params` is checked as it came (nesting, then the tool's JSON Schema with defaults filled in),
 * never copied before that; it reaches the handler as a fresh copy (JSON text to a worker thread).
 * `opts.signal` lets the caller withdraw the call (e.g. an A2A task canceled).
 * Resolves with the result as JSON text (ToolResult; `undefined` becomes `null`).
 * @throws ContractError TOOL_NOT_FOUND, INVALID_PARAMETERS (schema, nesting deeper than
 *   MAX_JSON_DEPTH, or the tool's ToolInputError), AGENT_BUSY (maxCalls calls, or maxHeldParams
 *   of parameters, already held),
 *   TOOL_TIMEOUT (over the tool's timeoutMs, default 30000 ms), TOOL_CANCELED, SHUTTING_DOWN,
 *   TOOL_ERROR (the tool's public message, a result over the limit or not JSON, or a generic
 *   message when its worker ran out of memory or stopped).
 */
export type InvokeTool = (name: string, params: unknown, opts?: { signal?: AbortSignal }) => Promise<ToolResult>;

/** Where and how tool handlers run. */
export interface ToolRunnerOptions {
  /**
   * The agent's module (absolute path). Given: handlers run in worker threads (piscina) that load
   * it, and a call over its time or memory budget is stopped by ending its thread. Not given:
   * handlers run on the server's own thread (tests with inline agents), where a handler that never
   * yields cannot be stopped.
   */
  modulePath?: string | undefined;
  /** Largest result, in bytes of JSON, before the call fails with TOOL_ERROR. Default 4 MiB. */
  maxResultBytes?: number;
  /** Heap limit of each worker thread in MiB (resourceLimits.maxOldGenerationSizeMb). Default 24. */
  workerMemoryMiB?: number;
  /** Most worker threads at once. Default 1: an agent has half a core, and each worker costs heap. */
  maxWorkers?: number;
  /** A worker idle this long (ms) is stopped; none run while the agent is idle. Default 10000. */
  workerIdleMs?: number;
  /** Most calls held at once, running or queued; more answer AGENT_BUSY. Default DEFAULT_MAX_CALLS. */
  maxCalls?: number;
  /**
   * With worker threads: most parameter text (code units) held by calls at once; a call that would
   * go past it answers AGENT_BUSY unless no other is held. Default DEFAULT_MAX_HELD_PARAMS.
   */
  maxHeldParams?: number;
}

export interface InvokerOptions extends ToolRunnerOptions {
  /** Where the call counters and duration histogram are registered. */
  metrics: MetricsRegistry;
  /** Aborted when the server closes: calls in flight end with SHUTTING_DOWN, worker threads stop. */
  shutdown: AbortSignal;
  /** Where tool failures are logged (warn), without parameters. */
  log: { warn(obj: object, msg: string): void };
}

/** "parameters.data must be array" from Ajv's first error. */
function describeAjvError(e: ErrorObject): string {
  const path = e.instancePath ? 'parameters' + e.instancePath.replace(/\//g, '.') : 'parameters';
  if (e.keyword === 'required') return `${path}.${(e.params as { missingProperty: string }).missingProperty} is required`;
  if (e.keyword === 'additionalProperties') {
    return `${path}.${(e.params as { additionalProperty: string }).additionalProperty} is not allowed`;
  }
  return `${path} ${e.message ?? 'is invalid'}`;
}

const isTsSource = import.meta.url.endsWith('.ts');

/**
 * Build the agent's invokeTool: compile every tool's parameter schema (Ajv, defaults applied) and
 * register the tool metrics (nexus_agent_tool_calls_total{tool,outcome},
 * nexus_agent_tool_duration_seconds{tool}). Worker threads start on the first call (piscina,
 * minThreads 0), so an idle agent has none; they stop when `opts.shutdown` aborts.
 * @throws Error when a tool's parameter schema does not compile.
 */
export function createToolInvoker(agent: AgentDefinition, opts: InvokerOptions): InvokeTool {
  const ajv = new Ajv({ allErrors: false, strict: false, useDefaults: true, coerceTypes: false });
  const tools = new Map<string, { def: ToolDefinition; validate: ValidateFunction }>();
  for (const def of agent.tools) tools.set(def.name, { def, validate: ajv.compile(def.parameters) });
  const calls = new Counter({
    name: 'nexus_agent_tool_calls_total',
    help: 'Tool calls by tool and outcome (ok, invalid, busy, error, timeout, canceled).',
    labelNames: ['tool', 'outcome'],
    registers: [opts.metrics],
  });
  const duration = new Histogram({
    name: 'nexus_agent_tool_duration_seconds',
    help: 'Tool call duration in seconds.',
    labelNames: ['tool'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [opts.metrics],
  });
  const maxResultBytes = opts.maxResultBytes ?? DEFAULT_RESULT_LIMIT_BYTES;
  const memoryMiB = opts.workerMemoryMiB ?? 24;
  const maxCalls = opts.maxCalls ?? DEFAULT_MAX_CALLS;
  const maxHeldParams = opts.maxHeldParams ?? DEFAULT_MAX_HELD_PARAMS;
  let held = 0;
  let heldParams = 0;
  let pool: Promise<Piscina<ToolTask, ToolOutcome>> | undefined;
  opts.shutdown.addEventListener('abort', () => void pool?.then((p) => p.destroy()).catch(() => undefined), { once: true });

  const workerPool = () =>
    (pool ??= import('piscina').then(({ Piscina }) => {
      const workerData: ToolWorkerData = { modulePath: opts.modulePath!, maxResultBytes };
      return new Piscina<ToolTask, ToolOutcome>({
        filename: new URL(isTsSource ? './worker-source.mjs' : './worker.mjs', import.meta.url).href,
        workerData,
        minThreads: 0,
        maxThreads: opts.maxWorkers ?? 1,
        idleTimeout: opts.workerIdleMs ?? 10_000,
        resourceLimits: { maxOldGenerationSizeMb: memoryMiB, maxYoungGenerationSizeMb: 2, stackSizeMb: 4 },
        // in the image: the agent module's '@nexus-delta/runtime' is define.mjs, not the server
        execArgv: isTsSource ? [] : [`--conditions=${TOOL_WORKER_CONDITION}`],
      });
    }));

  /** Run the handler; rejects (with the abort reason) only when `signal` aborts. */
  async function run(def: ToolDefinition, params: Record<string, unknown>, text: string | undefined, timeoutMs: number, signal: AbortSignal): Promise<ToolOutcome> {
    if (text === undefined) {
      let onAbort: (() => void) | undefined;
      try {
        return await Promise.race([
          runHandler(def, params, signal, maxResultBytes),
          new Promise<never>((_, reject) => {
            onAbort = () => reject(signal.reason);
            if (signal.aborted) onAbort();
            else signal.addEventListener('abort', onAbort, { once: true });
          }),
        ]);
      } finally {
        if (onAbort) signal.removeEventListener('abort', onAbort);
      }
    }
    const task: ToolTask = { tool: def.name, params: text, timeoutMs };
    try {
      // an abort ends the task's worker thread (piscina terminates a running task's worker)
      return await (await workerPool()).run(task, { signal });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const oom = (err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY';
      opts.log.warn({ tool: def.name, err }, 'tool worker failed');
      return {
        ok: false,
        kind: 'error',
        message: oom ? `tool '${def.name}' ran out of memory (limit ${memoryMiB} MiB)` : `tool '${def.name}' failed: its worker stopped`,
      };
    }
  }

  return async (name, params, { signal: callerSignal } = {}) => {
    const tool = tools.get(name);
    if (!tool) {
      calls.inc({ tool: 'unknown', outcome: 'invalid' });
      throw new ContractError('TOOL_NOT_FOUND', `unknown tool '${name}'; this agent has: ${[...tools.keys()].join(', ')}`);
    }
    if (opts.shutdown.aborted) throw new ContractError('SHUTTING_DOWN', 'the agent is shutting down');
    params ??= {};
    // checked as it came: no copy of an unchecked body (structuredClone of a hostile one exhausted the heap)
    if (nestsDeeperThan(params, MAX_JSON_DEPTH)) {
      calls.inc({ tool: name, outcome: 'invalid' });
      throw new ContractError('INVALID_PARAMETERS', `parameters nest deeper than ${MAX_JSON_DEPTH} levels`);
    }
    if (!tool.validate(params)) {
      calls.inc({ tool: name, outcome: 'invalid' });
      throw new ContractError('INVALID_PARAMETERS', describeAjvError(tool.validate.errors![0]!));
    }
    // to a worker as JSON text, not a structured clone: one flat string to copy, no per-object
    // bookkeeping; the parsed parameters are not held while the call waits
    const text = opts.modulePath ? JSON.stringify(params) : undefined;
    const cost = text?.length ?? 0;
    if (held >= maxCalls || (held > 0 && heldParams + cost > maxHeldParams)) {
      calls.inc({ tool: name, outcome: 'busy' });
      throw new ContractError('AGENT_BUSY', `the agent already holds ${held} tool calls (${Math.ceil(heldParams / 1024)} KiB of parameters); retry later`);
    }
    const timeoutMs = tool.def.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
    // a timer cleared when the call ends: AbortSignal.timeout() would keep every finished call's
    // signal, listeners and parameters alive for the whole budget (30 s by default)
    const budget = new AbortController();
    const timer = setTimeout(() => budget.abort(), timeoutMs);
    const signals = [opts.shutdown, budget.signal];
    if (callerSignal) signals.push(callerSignal);
    const signal = AbortSignal.any(signals);
    const end = duration.startTimer({ tool: name });
    held++;
    heldParams += cost;
    let outcome: ToolOutcome;
    try {
      outcome = await run(tool.def, params as Record<string, unknown>, text, timeoutMs, signal);
    } catch (err) {
      if (!signal.aborted) throw err;
      if (callerSignal?.aborted) {
        calls.inc({ tool: name, outcome: 'canceled' });
        throw new ContractError('TOOL_CANCELED', `tool '${name}' was canceled`);
      }
      if (opts.shutdown.aborted) {
        calls.inc({ tool: name, outcome: 'error' });
        throw new ContractError('SHUTTING_DOWN', 'the agent is shutting down');
      }
      calls.inc({ tool: name, outcome: 'timeout' });
      throw new ContractError('TOOL_TIMEOUT', `tool '${name}' took longer than ${timeoutMs} ms`);
    } finally {
      held--;
      heldParams -= cost;
      clearTimeout(timer);
      end();
    }
    if (outcome.ok) {
      calls.inc({ tool: name, outcome: 'ok' });
      return new ToolResult(outcome.json);
    }
    if (outcome.kind === 'input') {
      calls.inc({ tool: name, outcome: 'invalid' });
      throw new ContractError('INVALID_PARAMETERS', outcome.message);
    }
    calls.inc({ tool: name, outcome: 'error' });
    opts.log.warn({ tool: name, error: outcome.message, stack: outcome.stack }, 'tool failed');
    throw new ContractError('TOOL_ERROR', outcome.message);
  };
}
