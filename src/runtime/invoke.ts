import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { Counter, Histogram, type Registry as MetricsRegistry } from 'prom-client';
import { ToolInputError, type AgentDefinition, type ToolDefinition } from './define.js';

const DEFAULT_TOOL_TIMEOUT_MS = 30_000;

/** Error codes of the agent contract (DESIGN.md), with their HTTP status on POST /execute. */
export const ERR = {
  TOOL_NOT_FOUND: 404,
  NOT_FOUND: 404,
  INVALID_PARAMETERS: 400,
  INVALID_REQUEST: 400,
  INVALID_JSON: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  PAYLOAD_TOO_LARGE: 413,
  // the caller withdrew the call (an A2A task canceled); nginx's "client closed request"
  TOOL_CANCELED: 499,
  TOOL_ERROR: 500,
  TOOL_TIMEOUT: 504,
  INTERNAL: 500,
  SHUTTING_DOWN: 503,
} as const;
export type ErrCode = keyof typeof ERR;

/** A failed tool call or request, with its contract code (ERR) and a one-line message. */
export class ContractError extends Error {
  constructor(
    readonly code: ErrCode,
    message: string,
  ) {
    super(message);
  }
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

/**
 * Run one tool by name: the single path every door (POST /execute, A2A message:send, MCP
 * tools/call) takes, so they share lookup, validation, time budget and metrics.
 * `params` is validated (and defaulted) against the tool's JSON Schema on a copy.
 * `opts.signal` lets the caller withdraw the call (e.g. an A2A task canceled).
 * Resolves with the tool's result (`undefined` becomes `null`).
 * @throws ContractError TOOL_NOT_FOUND, INVALID_PARAMETERS (schema, or the tool's ToolInputError),
 *   TOOL_TIMEOUT (over `timeoutMs`, or the server is shutting down), TOOL_CANCELED, TOOL_ERROR.
 */
export type InvokeTool = (name: string, params: unknown, opts?: { signal?: AbortSignal }) => Promise<unknown>;

export interface InvokerOptions {
  /** Where the call counters and duration histogram are registered. */
  metrics: MetricsRegistry;
  /** Aborted when the server closes: in-flight tools see their signal abort. */
  shutdown: AbortSignal;
  /** Where tool failures are logged (warn), without parameters. */
  log: { warn(obj: object, msg: string): void };
}

/**
 * Compile every tool's parameter schema (Ajv, defaults applied) and register the tool metrics
 * (nexus_agent_tool_calls_total{tool,outcome}, nexus_agent_tool_duration_seconds{tool}).
 * @throws Error when a tool's parameter schema does not compile.
 */
export function createToolInvoker(agent: AgentDefinition, opts: InvokerOptions): InvokeTool {
  const ajv = new Ajv({ allErrors: false, strict: false, useDefaults: true, coerceTypes: false });
  const tools = new Map<string, { def: ToolDefinition; validate: ValidateFunction }>();
  for (const def of agent.tools) tools.set(def.name, { def, validate: ajv.compile(def.parameters) });
  const calls = new Counter({
    name: 'nexus_agent_tool_calls_total',
    help: 'Tool calls by tool and outcome (ok, invalid, error, timeout, canceled).',
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

  return async (name, rawParams, { signal: callerSignal } = {}) => {
    const tool = tools.get(name);
    if (!tool) {
      calls.inc({ tool: 'unknown', outcome: 'invalid' });
      throw new ContractError('TOOL_NOT_FOUND', `unknown tool '${name}'; this agent has: ${[...tools.keys()].join(', ')}`);
    }
    const params = structuredClone(rawParams ?? {});
    if (!tool.validate(params)) {
      calls.inc({ tool: name, outcome: 'invalid' });
      throw new ContractError('INVALID_PARAMETERS', describeAjvError(tool.validate.errors![0]!));
    }
    const timeoutMs = tool.def.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
    // a timer cleared when the call ends: AbortSignal.timeout() would keep every finished call's
    // signal, listeners and parameters alive for the whole budget (30 s by default)
    const budget = new AbortController();
    const timer = setTimeout(() => budget.abort(), timeoutMs);
    const signals = [opts.shutdown, budget.signal];
    if (callerSignal) signals.push(callerSignal);
    const signal = AbortSignal.any(signals);
    let onAbort: (() => void) | undefined;
    const end = duration.startTimer({ tool: name });
    try {
      const result = await Promise.race([
        Promise.resolve().then(() => tool.def.handler(params, { signal })),
        new Promise<never>((_, reject) => {
          onAbort = () =>
            reject(
              callerSignal?.aborted
                ? new ContractError('TOOL_CANCELED', `tool '${name}' was canceled`)
                : new ContractError('TOOL_TIMEOUT', `tool '${name}' took longer than ${timeoutMs} ms`),
            );
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
      calls.inc({ tool: name, outcome: 'ok' });
      return result ?? null;
    } catch (err) {
      if (err instanceof ContractError) {
        calls.inc({ tool: name, outcome: err.code === 'TOOL_CANCELED' ? 'canceled' : 'timeout' });
        throw err;
      }
      if (err instanceof ToolInputError) {
        calls.inc({ tool: name, outcome: 'invalid' });
        throw new ContractError('INVALID_PARAMETERS', err.message);
      }
      calls.inc({ tool: name, outcome: 'error' });
      opts.log.warn({ tool: name, err }, 'tool failed');
      throw new ContractError('TOOL_ERROR', err instanceof Error ? err.message : String(err));
    } finally {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener('abort', onAbort);
      end();
    }
  };
}
