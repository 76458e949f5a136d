/**
 * What agent authors write against: tools with JSON-Schema parameters, and the agent that lists them.
 * These helpers only check and return their input; the runtime (server.ts) serves the result.
 */

/** A JSON Schema (draft-07 / 2020-12 subset Ajv understands) for a tool's `parameters` object. */
export type JsonSchema = Record<string, unknown>;

export interface ToolContext {
  /** Aborted when the tool's time budget (timeoutMs) runs out or the server shuts down. */
  signal: AbortSignal;
}

export interface ToolDefinition<P = any, R = unknown> {
  /** snake_case name used as `tool_name` in POST /execute. */
  name: string;
  description: string;
  /** JSON Schema of `parameters`; must describe an object. */
  parameters: JsonSchema;
  /** Time budget in ms before the call answers 504 (default 30000). */
  timeoutMs?: number;
  handler: (params: P, ctx: ToolContext) => R | Promise<R>;
}

export interface AgentDefinition {
  name: string;
  description: string;
  version: string;
  capabilities?: string[];
  category?: string;
  model?: string;
  tools: ToolDefinition[];
}

/**
 * Thrown by a tool for bad input it can only detect while running (e.g. division by zero):
 * the caller gets 400 INVALID_PARAMETERS with this message instead of 500.
 */
export class ToolInputError extends Error {
  override name = 'ToolInputError';
}

const TOOL_NAME_RE = /^[a-z][a-z0-9_]{0,63}$/;

/** Declare a tool. @throws Error when the name or schema is malformed. */
export function defineTool<P = any, R = unknown>(tool: ToolDefinition<P, R>): ToolDefinition<P, R> {
  if (!TOOL_NAME_RE.test(tool.name)) throw new Error(`tool name '${tool.name}' must be snake_case (a-z, 0-9, _)`);
  if (tool.parameters?.type !== 'object') throw new Error(`tool '${tool.name}': parameters schema must have type "object"`);
  if (typeof tool.handler !== 'function') throw new Error(`tool '${tool.name}': handler must be a function`);
  return tool;
}

/** Declare an agent. @throws Error on duplicate tool names or an empty tool list. */
export function defineAgent(agent: AgentDefinition): AgentDefinition {
  if (!agent.tools?.length) throw new Error(`agent '${agent.name}' has no tools`);
  const seen = new Set<string>();
  for (const t of agent.tools) {
    if (seen.has(t.name)) throw new Error(`agent '${agent.name}': tool '${t.name}' is defined twice`);
    seen.add(t.name);
  }
  return agent;
}
