import { AppError } from '../errors.js';
import { inRange } from '../ports/allocate.js';
import { hostPortProbe } from '../ports/probe.js';
import { validateAgentName } from '../names.js';
import { agentUrl, type FleetDeps } from './context.js';
import { request } from './http.js';
import { createAgent } from './create.js';
import { startAgents, type StartOutcome } from './start.js';

/**
 * A PNG of black text on white, drawn by sharp (librsvg, host fonts) from an SVG: what the demo's
 * ImageAgent reads back, and the known input of the OCR tests. Sizes in pixels. sharp is imported
 * here, on use, so other commands never load its native addon.
 */
export async function drawTextPng(text: string, opts: { width?: number; height?: number; fontSize?: number } = {}): Promise<Buffer> {
  const { width = 640, height = 120, fontSize = 48 } = opts;
  const escaped = text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const baseline = Math.round(height / 2 + fontSize / 3);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="white"/><text x="20" y="${baseline}" font-family="DejaVu Sans, Liberation Sans, sans-serif" font-size="${fontSize}" fill="black">${escaped}</text></svg>`;
  const sharp = (await import('sharp')).default;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** The text the demo draws into a PNG for ImageAgent to read back. */
export const DEMO_IMAGE_TEXT = 'Nexus Delta demo';
/** A TypeScript snippet with a syntax error on line 2 (the operand after + is missing): CodeAgent finds it. */
export const DEMO_CODE_SNIPPET = 'function add(a: number, b: number) {\n  return a + ;\n}\n';

interface DemoCall {
  tool_name: string;
  parameters: Record<string, unknown>;
}

/**
 * The seed's five demo agents, with the port the seed gives each and one real tool call to show:
 * statistics, text analysis, OCR of an image the demo draws, a syntax check, a calculation.
 */
export const DEMO_AGENTS: readonly { name: string; port: number; capabilities: readonly string[]; call: () => Promise<DemoCall> }[] = [
  { name: 'DataAgent', port: 8081, capabilities: ['data', 'analytics'], call: async () => ({ tool_name: 'process_data', parameters: { data: [1, 2, 3, 4, 5] } }) },
  { name: 'TextAgent', port: 8082, capabilities: ['nlp', 'text'], call: async () => ({ tool_name: 'analyze_text', parameters: { text: 'Nexus Delta runs agents. Each agent serves tools!' } }) },
  {
    name: 'ImageAgent',
    port: 8083,
    capabilities: ['vision', 'ocr'],
    call: async () => ({ tool_name: 'extract_text', parameters: { image: (await drawTextPng(DEMO_IMAGE_TEXT)).toString('base64') } }),
  },
  { name: 'CodeAgent', port: 8084, capabilities: ['programming'], call: async () => ({ tool_name: 'analyze_code', parameters: { code: DEMO_CODE_SNIPPET, language: 'typescript' } }) },
  { name: 'MathAgent', port: 8085, capabilities: ['math', 'calculus'], call: async () => ({ tool_name: 'evaluate_expression', parameters: { expression: '2 * (3 + 4) ^ 2' } }) },
];

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
    const call = await a.call();
    // OCR starts its engine on the first call: allow it the tool's own budget
    const res = await request(`${url}/execute`, { method: 'POST', json: call, timeoutMs: 60_000 });
    calls.push({ agent: a.name, url, tool: call.tool_name, status: res.status, body: res.body });
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
