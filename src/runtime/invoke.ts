import type { Piscina } from 'piscina';
import type { FastifyBaseLogger } from 'fastify';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { Counter, Histogram, type Registry as MetricsRegistry } from 'prom-client';
import { ContractError, TOOL_WORKER_CONDITION, MAX_JSON_DEPTH, nestsDeeperThan, runHandler, type ToolOutcome } from './contract.js';
import type { AgentDefinition, ToolDefinition } from './define.js';
import type { ToolTask, ToolWorkerData } from './worker.js';

const DEFAULT_TOOL_TIMEOUT_MS = 30_000;

/** Where and how tool handlers run. */
export interface ToolRunnerOptions {
  /**
   * The agent's module (absolute path). Given: handlers run in worker threads that load it, and a
   * call over its time or memory budget is stopped. Not given: handlers run on the server's own
   * thread (tests with inline agents), where a handler that never yields cannot be stopped.
   */
  modulePath?: string | undefined;
  /** Largest result, in bytes of JSON, before the call fails with TOOL_ERROR. */
  maxResultBytes: number;
  /** Heap limit of each worker thread in MiB (resourceLimits.maxOldGenerationSizeMb). Default 24. */
  workerMemoryMiB?: number;
  /** Most worker threads at once. Default 1: an agent has half a core, and each worker costs heap. */
  maxWorkers?: number;
  /** A worker idle this long (ms) is stopped; none run while the agent is idle. Default 10000. */
  workerIdleMs?: number;
}

/** The one way to run a tool call, whatever endpoint it came through (/execute, A2A, MCP). */
export interface ToolInvoker {
  /**
   * Validate `params` against the tool's schema (defaults filled in), run the tool within its
   * time budget (ToolDefinition.timeoutMs, default 30000 ms) and count it in /metrics.
   * Resolves with the result as JSON text (`JSON.parse` it for the value), at most maxResultBytes.
   * @throws ContractError TOOL_NOT_FOUND, INVALID_PARAMETERS (schema, nesting deeper than
   *   MAX_JSON_DEPTH, or a ToolInputError), TOOL_ERROR (the tool's public message, or a generic
   *   one when its worker died), TOOL_TIMEOUT, SHUTTING_DOWN.
   * @throws the reason of `opts.signal` when the caller aborts.
   */
  invokeTool(name: string, params: unknown, opts?: { signal?: AbortSignal }): Promise<{ json: string }>;
  /** Abort every call in flight (SHUTTING_DOWN) and stop the worker threads. */
  close(): Promise<void>;
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
 * Build the agent's ToolInvoker. Tool schemas compile here; worker threads start on the first call
 * (piscina, minThreads 0), so an idle agent has none.
 * @throws Error when a tool's parameter schema does not compile.
 */
export function createToolInvoker(agent: AgentDefinition, opts: ToolRunnerOptions, metrics: MetricsRegistry, log: FastifyBaseLogger): ToolInvoker {
  const ajv = new Ajv({ allErrors: false, strict: false, useDefaults: true, coerceTypes: false });
  const tools = new Map<string, { def: ToolDefinition; validate: ValidateFunction }>();
  for (const def of agent.tools) tools.set(def.name, { def, validate: ajv.compile(def.parameters) });
  const calls = new Counter({
    name: 'nexus_agent_tool_calls_total',
    help: 'Tool calls by tool and outcome (ok, invalid, error, timeout).',
    labelNames: ['tool', 'outcome'],
    registers: [metrics],
  });
  const duration = new Histogram({
    name: 'nexus_agent_tool_duration_seconds',
    help: 'Tool call duration in seconds.',
    labelNames: ['tool'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [metrics],
  });
  const shutdown = new AbortController();
  const memoryMiB = opts.workerMemoryMiB ?? 24;
  let pool: Promise<Piscina<ToolTask, ToolOutcome>> | undefined;

  const workerPool = () =>
    (pool ??= import('piscina').then(({ Piscina }) => {
      const workerData: ToolWorkerData = { modulePath: opts.modulePath!, maxResultBytes: opts.maxResultBytes };
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

  async function run(def: ToolDefinition, params: Record<string, unknown>, timeoutMs: number, signal: AbortSignal): Promise<ToolOutcome> {
    if (!opts.modulePath) {
      return Promise.race([
        runHandler(def, params, signal, opts.maxResultBytes),
        new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })),
      ]);
    }
    try {
      // JSON text, not a structured clone: one flat string to copy, no per-object bookkeeping
      return await (await workerPool()).run({ tool: def.name, params: JSON.stringify(params), timeoutMs }, { signal });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const oom = (err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY';
      log.warn({ tool: def.name, err }, 'tool worker failed');
      return {
        ok: false,
        kind: 'error',
        message: oom ? `tool '${def.name}' ran out of memory (limit ${memoryMiB} MiB)` : `tool '${def.name}' failed: its worker stopped`,
      };
    }
  }

  return {
    async invokeTool(name, params, callOpts = {}) {
      const tool = tools.get(name);
      if (!tool) {
        calls.inc({ tool: 'unknown', outcome: 'invalid' });
        throw new ContractError('TOOL_NOT_FOUND', `unknown tool '${name}'; this agent has: ${[...tools.keys()].join(', ')}`);
      }
      if (shutdown.signal.aborted) throw new ContractError('SHUTTING_DOWN', 'the agent is shutting down');
      // validated as it came: no copy of an unchecked body (structuredClone of a hostile one exhausted the heap)
      if (nestsDeeperThan(params, MAX_JSON_DEPTH)) {
        calls.inc({ tool: name, outcome: 'invalid' });
        throw new ContractError('INVALID_PARAMETERS', `parameters nest deeper than ${MAX_JSON_DEPTH} levels`);
      }
      if (!tool.validate(params)) {
        calls.inc({ tool: name, outcome: 'invalid' });
        throw new ContractError('INVALID_PARAMETERS', describeAjvError(tool.validate.errors![0]!));
      }
      const timeoutMs = tool.def.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = AbortSignal.any([timeout, shutdown.signal, ...(callOpts.signal ? [callOpts.signal] : [])]);
      const end = duration.startTimer({ tool: name });
      let outcome: ToolOutcome;
      try {
        outcome = await run(tool.def, params as Record<string, unknown>, timeoutMs, signal);
      } catch (err) {
        if (timeout.aborted) {
          calls.inc({ tool: name, outcome: 'timeout' });
          throw new ContractError('TOOL_TIMEOUT', `tool '${name}' took longer than ${timeoutMs} ms`);
        }
        calls.inc({ tool: name, outcome: 'error' });
        if (shutdown.signal.aborted) throw new ContractError('SHUTTING_DOWN', 'the agent is shutting down');
        throw err;
      } finally {
        end();
      }
      if (outcome.ok) {
        calls.inc({ tool: name, outcome: 'ok' });
        return { json: outcome.json };
      }
      if (outcome.kind === 'input') {
        calls.inc({ tool: name, outcome: 'invalid' });
        throw new ContractError('INVALID_PARAMETERS', outcome.message);
      }
      calls.inc({ tool: name, outcome: 'error' });
      log.warn({ tool: name, error: outcome.message, stack: outcome.stack }, 'tool failed');
      throw new ContractError('TOOL_ERROR', outcome.message);
    },
    async close() {
      shutdown.abort();
      if (pool) await (await pool).destroy();
    },
  };
}
