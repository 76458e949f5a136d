/**
 * The fleet's lifecycle use cases, one module each (create, build, start, stop, list, logs,
 * remove), re-exported here for existing importers. The flow of a start: desire (desire.ts) ->
 * observe (state.ts) -> plan (plan.ts) -> execute (execute.ts) -> outcomes (start.ts).
 */
export { createAgent, type CreateOptions, type CreateResult } from './create.js';
export { buildAgents, type BuildResult } from './build.js';
export { startAgents, type StartOutcome, type StartResult } from './start.js';
export { stopAgents, type StopOutcome } from './stop.js';
export { listAgents, type AgentRow } from './list.js';
export { agentLogs, findContainer, followAgentLogs } from './logs.js';
export { removeAgent } from './remove.js';
export { resolveTargets } from './targets.js';
