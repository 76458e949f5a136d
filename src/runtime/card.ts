/** What an A2A card is built from: an AgentDefinition, or an agent record with its tools. */
export interface CardSource {
  name: string;
  description: string;
  version: string;
  capabilities?: string[] | undefined;
  tools: readonly { name: string; description: string }[];
}

/**
 * The A2A AgentCard (protocol 1.0) an agent serves at /.well-known/agent-card.json.
 * Field names follow the A2A specification's AgentCard message (a2a.proto, v1.0): skills are the
 * agent's tools. `url` is where callers reach the agent (AGENT_PUBLIC_URL, else the request's host).
 */
export function buildA2aCard(agent: CardSource, url: string): Record<string, unknown> {
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
    })),
  };
}
