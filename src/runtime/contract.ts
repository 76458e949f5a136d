/**
 * The agent contract's error codes (DESIGN.md, "The agent contract"), the error every endpoint
 * answers with, and the input/output bounds shared by every way of calling a tool.
 */

/** Error codes of the agent contract, with their HTTP status. */
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
  // every tool-call slot is taken (running or queued): retry later
  AGENT_BUSY: 503,
} as const;
export type ErrCode = keyof typeof ERR;

/**
 * A failed tool call or request a caller is meant to see, with its contract code (ERR) and a
 * one-line message: `{"error": {"code", "message"}}` with ERR[code] as status. `statusCode` lets
 * fastify error handlers of any scope (A2A, MCP) map it like their own 4xx/5xx errors.
 */
export class ContractError extends Error {
  constructor(
    readonly code: ErrCode,
    message: string,
  ) {
    super(message);
  }
  get statusCode(): number {
    return ERR[this.code];
  }
}

/**
 * The package-exports condition tool workers run with: there `@nexus-delta/runtime` resolves to
 * its authoring helpers only (define.mjs), not the server with fastify, ajv and prom-client.
 */
export const TOOL_WORKER_CONDITION = 'nexus-tool-worker';

/** Deepest nesting of arrays/objects accepted in a request body (levels; the body itself is 1). */
export const MAX_JSON_DEPTH = 64;

/**
 * Most objects and arrays accepted in one JSON request body. A 1 MiB body of `[{},{},...]` holds
 * 350,000 objects, about 18 MB once parsed: two of them exhausted a 64 MiB heap (issue 14 §3).
 * 50,000 bounds a parsed body to a few MiB whatever its shape; numbers and strings do not count.
 */
export const MAX_JSON_CONTAINERS = 50_000;

/**
 * Check the cost of a JSON text before it is parsed into objects: one linear pass over its
 * characters (strings skipped, escapes honoured) counting `{` and `[` and their nesting. Syntax
 * is left to the parser that follows.
 * @throws ContractError INVALID_REQUEST (400) naming the limit when `text` nests deeper than
 *   `maxDepth` levels or holds more than `maxContainers` objects and arrays.
 */
export function checkJsonCost(text: string, maxDepth = MAX_JSON_DEPTH, maxContainers = MAX_JSON_CONTAINERS): void {
  let depth = 0;
  let containers = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // a string: skip to its closing quote (a backslash escapes the next character)
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) throw new ContractError('INVALID_REQUEST', `body nests deeper than ${maxDepth} levels`);
      if (++containers > maxContainers) {
        throw new ContractError('INVALID_REQUEST', `body holds more than ${maxContainers} objects and arrays`);
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
}

/**
 * True when `value` nests arrays/objects deeper than `max` levels. Iterative, level by level, so a
 * body nested 500,000 levels deep is measured without a stack overflow and a body of 500,000
 * small objects costs one array of references per level (no allocation per node).
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  let level: object[] = value !== null && typeof value === 'object' ? [value] : [];
  for (let depth = 1; level.length; depth++) {
    if (depth > max) return true;
    const next: object[] = [];
    for (const v of level) {
      if (Array.isArray(v)) {
        for (const child of v) if (child !== null && typeof child === 'object') next.push(child);
      } else {
        for (const key in v) {
          const child = (v as Record<string, unknown>)[key];
          if (child !== null && typeof child === 'object' && Object.hasOwn(v, key)) next.push(child);
        }
      }
    }
    level = next;
  }
  return false;
}

/**
 * A tool's result as JSON text, at most `maxBytes` bytes (UTF-8). `undefined` becomes `null`.
 * @throws ContractError TOOL_ERROR when the result is larger, or cannot be written as JSON
 *   (BigInt, a cycle, nesting too deep for the stack).
 */
export function serialiseResult(tool: string, value: unknown, maxBytes: number): string {
  let json: string;
  try {
    json = JSON.stringify(value ?? null) ?? 'null';
  } catch (err) {
    const why = err instanceof RangeError ? 'it nests too deeply' : 'it is not JSON (a BigInt, a cycle or a function)';
    throw new ContractError('TOOL_ERROR', `tool '${tool}' returned a result that cannot be sent: ${why}`);
  }
  // length is a lower bound of the UTF-8 size; count bytes only when it could matter
  if (json.length > maxBytes || (json.length * 3 > maxBytes && Buffer.byteLength(json) > maxBytes)) {
    throw new ContractError('TOOL_ERROR', `tool '${tool}' returned a result larger than ${maxBytes} bytes`);
  }
  return json;
}

const STACK_LINE = /^\s+at\s/m;
// absolute paths (/app/agent/agent.mjs:3:9, file:///app/...) and Node's internal module ids
const PATH = /(?:file:\/\/)?(?<![\w.~-])\/(?:[^\s/'"`()<>,;:]+\/)+[^\s/'"`()<>,;:]*(?::\d+)*|\bnode:internal\/\S+/g;
const MAX_MESSAGE_CHARS = 500;

/**
 * What a caller may see of an error a tool threw: the message its author chose, without a stack
 * (anything from the first `    at ` line on), with absolute file paths replaced by `<path>`, on
 * one line and at most 500 characters. Non-Error throws: strings as such, anything else
 * "tool failed". Rule: issue 14 §5 (never leak a stack or an internal path).
 */
export function publicToolMessage(err: unknown): string {
  let text = err instanceof Error ? err.message : typeof err === 'string' ? err : 'tool failed';
  const stackAt = text.search(STACK_LINE);
  if (stackAt >= 0) text = text.slice(0, stackAt);
  text = text.replace(PATH, '<path>').replace(/\s+/g, ' ').trim();
  if (text.length > MAX_MESSAGE_CHARS) text = `${text.slice(0, MAX_MESSAGE_CHARS - 1)}…`;
  return text || 'tool failed';
}

/** True for a ToolInputError from any copy of the runtime (the worker and the agent bundle each have one). */
export function isToolInputError(err: unknown): err is Error {
  return err instanceof Error && err.name === 'ToolInputError';
}

/** What running one handler came to, as plain data (it crosses from a worker thread). */
export type ToolOutcome =
  | { ok: true; json: string }
  | { ok: false; kind: 'input' | 'error'; message: string; stack?: string | undefined };

/**
 * Run one tool handler and turn whatever happens into a ToolOutcome: the result as JSON text
 * (bounded by `maxResultBytes`), a ToolInputError's message (kind input), or a thrown error's
 * public message (kind error; `stack` is for logs only). Never throws.
 */
export async function runHandler(
  tool: { name: string; handler: (params: any, ctx: { signal: AbortSignal }) => unknown },
  params: Record<string, unknown>,
  signal: AbortSignal,
  maxResultBytes: number,
): Promise<ToolOutcome> {
  try {
    const value = await tool.handler(params, { signal });
    return { ok: true, json: serialiseResult(tool.name, value, maxResultBytes) };
  } catch (err) {
    if (err instanceof ContractError) return { ok: false, kind: 'error', message: err.message };
    if (isToolInputError(err)) return { ok: false, kind: 'input', message: publicToolMessage(err) };
    return { ok: false, kind: 'error', message: publicToolMessage(err), stack: err instanceof Error ? err.stack : undefined };
  }
}
