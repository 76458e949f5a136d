/** @nexus-delta/runtime: what agents import, and what the base image runs. */
export { defineAgent, defineTool, ToolInputError } from './define.js';
export type { AgentDefinition, ToolDefinition, ToolContext, JsonSchema } from './define.js';
export { buildServer, DEFAULT_BODY_LIMIT_BYTES } from './server.js';
export { ContractError } from './contract.js';
export { DEFAULT_RESULT_LIMIT_BYTES, ToolResult } from './invoke.js';
export type { InvokeTool, ToolRunnerOptions } from './invoke.js';
export type { ServerOptions } from './server.js';
export { buildA2aCard } from './card.js';
export { runAgent } from './main.js';
