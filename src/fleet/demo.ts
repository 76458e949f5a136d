import { AppError } from '../errors.js';
import { inRange } from '../ports/allocate.js';
import { hostPortProbe } from '../ports/probe.js';
import { validateAgentName } from '../names.js';
import { agentUrl, type FleetDeps } from './context.js';
import { request } from './http.js';
import { createAgent } from './create.js';
import { startAgents, type StartOutcome } from './start.js';

/** The seed's five demo agents, with the port the seed gives each and one tool call to show. */
export const DEMO_AGENTS = [
  { name: 'DataAgent', port: 8081, capabilities: ['data', 'analytics'], call: { tool_name: 'process_data', parameters: { data: [1, 2, 3, 4, 5] } } },
  { name: 'TextAgent', port: 8082, capabilities: ['nlp', 'text'], call: { tool_name: 'analyze_text', parameters: { text: 'Nexus Delta runs agents. Each agent serves tools!' } } },
  { name: 'ImageAgent', port: 8083, capabilities: ['vision', 'ocr'], call: { tool_name: 'echo', parameters: { message: 'image.png' } } },
  { name: 'CodeAgent', port: 8084, capabilities: ['programming'], call: { tool_name: 'echo', parameters: { message: 'print("hi")' } } },
  { name: 'MathAgent', port: 8085, capabilities: ['math', 'calculus'], call: { tool_name: 'evaluate_expression', parameters: { expression: '2 * (3 + 4) ^ 2' } } },
] as const;

export interface DemoResult {
  created: string[];
  start: StartOutcome[];
  calls: { agent: string; url: string; tool: string; status: number; body: unknown }[];
}

/**
 * `demo`: create the five seed agents (existing ones are reused; the seed port is used when it is
 * in the range and free, else the next free one), start them, and call one tool on each.
 * @throws AppError PARTIAL_FAILURE when an agent fails to start or a call does not answer 200.
 */
export async function runDemo(deps: FleetDeps): Promise<DemoResult> {
  const created: string[] = [];
  const probe = hostPortProbe(deps.config.ports.bindAddress);
  for (const a of DEMO_AGENTS) {
    if (await deps.registry.get(validateAgentName(a.name))) continue;
    const wantPort = inRange(deps.config.ports.range, a.port) && (await probe(a.port)) ? a.port : undefined;
    deps.onProgress?.({ agent: a.name, phase: 'create' });
    await createAgent(deps, { name: a.name, capabilities: [...a.capabilities], port: wantPort });
    created.push(a.name);
  }
  const names = DEMO_AGENTS.map((a) => a.name);
  const started = await startAgents(deps, names);
  const calls: DemoResult['calls'] = [];
  for (const a of DEMO_AGENTS) {
    const rec = await deps.registry.get(validateAgentName(a.name));
    if (!rec || started.agents.find((s) => s.name === a.name)?.outcome === 'failed') continue;
    const url = agentUrl(deps.config, rec.port);
    const res = await request(`${url}/execute`, { method: 'POST', json: a.call, timeoutMs: 5000 });
    calls.push({ agent: a.name, url, tool: a.call.tool_name, status: res.status, body: res.body });
  }
  const result = { created, start: started.agents, calls };
  if (started.failed > 0 || calls.some((c) => c.status !== 200) || calls.length !== DEMO_AGENTS.length) {
    throw new AppError('PARTIAL_FAILURE', `demo: ${started.failed} agent(s) failed to start`, {
      hint: "see each agent's error above; 'agent doctor' checks the engine and ports",
      details: result as unknown as Record<string, unknown>,
    });
  }
  return result;
}
