/** What an A2A card is built from: an AgentDefinition, or an agent record with its tools. */
export interface CardSource {
  name: string;
  description: string;
  version: string;
  capabilities?: string[] | undefined;
  tools: readonly { name: string; description: string; parameters?: Record<string, unknown> | undefined }[];
}

/**
 * The parameter a tool "takes text" through: its schema's only required property, when that
 * property is a string. Undefined for any other schema. Pure.
 */
export function textParameter(parameters: Record<string, unknown> | undefined): string | undefined {
  const required = parameters?.required;
  if (!Array.isArray(required) || required.length !== 1 || typeof required[0] !== 'string') return undefined;
  const prop = (parameters?.properties as Record<string, { type?: unknown }> | undefined)?.[required[0]];
  return prop?.type === 'string' ? required[0] : undefined;
}

/**
 * The tool an A2A text part goes to, and the parameter it fills: defined only when exactly one
 * of the agent's tools takes text (textParameter). Pure.
 */
export function textTool(tools: CardSource['tools']): { tool: string; parameter: string } | undefined {
  const takers = tools.flatMap((t) => {
    const parameter = textParameter(t.parameters);
    return parameter ? [{ tool: t.name, parameter }] : [];
  });
  return takers.length === 1 ? takers[0] : undefined;
}

/**
 * The A2A AgentCard (protocol 1.0) an agent serves at /.well-known/agent-card.json.
 * Field names follow the A2A specification's AgentCard message (a2a.proto, v1.0): skills are the
 * agent's tools. `url` is where callers reach the agent (AGENT_PUBLIC_URL, else the request's host);
 * the interface is HTTP+JSON 1.0 (src/runtime/a2a.ts), without streaming or push notifications.
 * The one tool that takes text (textTool), if any, also lists text/plain among its input modes.
 */
export function buildA2aCard(agent: CardSource, url: string): Record<string, unknown> {
  const text = textTool(agent.tools);
  return {
    name: agent.name,
    description: agent.description,
    version: agent.version,
    supportedInterfaces: [{ url, protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' }],
    capabilities: { streaming: false, pushNotifications: false },
    defaultInputModes: ['application/json'],
    defaultOutputModes: ['application/json'],
    skills: agent.tools.map((t) => ({
      id: t.name,
      name: t.name,
      description: t.description,
      tags: [...(agent.capabilities ?? []), t.name],
      ...(text?.tool === t.name ? { inputModes: ['application/json', 'text/plain'] } : {}),
    })),
  };
}
