import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { agentUrl } from '../conventions.js';
import { AGENT_CARD_PATH, managerA2aCard, managerA2aUrl } from './a2a-door.js';
import type { ManagerContext } from './manager.js';
import { TOOL_SEPARATOR } from './mcp-door.js';
import { withErrors } from './schemas.js';

const Entry = Type.Object(
  {
    name: Type.String(),
    slug: Type.String(),
    available: Type.Boolean({ description: 'a replica is in the gateway rotation now' }),
    card: Type.Record(Type.String(), Type.Unknown(), {
      description: "the agent's A2A 1.0 card as the manager serves it: its interface URL is the manager's A2A URL for the agent (manager.a2a), with the manager's bearer scheme",
    }),
    manager: Type.Object(
      {
        url: Type.String({ description: "the manager's URL for this agent (GET: the agent; POST {url}/execute: a tool call through the gateway)" }),
        a2a: Type.String({ description: "the manager's A2A HTTP+JSON interface for this agent (POST {a2a}/message:send, GET {a2a}/tasks...)" }),
        card: Type.String({ description: 'that A2A card, public' }),
        mcp: Type.String({ description: "the manager's MCP door" }),
        toolPrefix: Type.String({ description: 'the prefix of this agent’s tools on the door' }),
      },
      { additionalProperties: false },
    ),
    direct: Type.Object(
      {
        url: Type.String({ description: "the agent's own URL (its A2A interface, POST {url}/execute), no manager token, no gateway" }),
        card: Type.String({ description: "the agent's own A2A card" }),
        mcp: Type.String({ description: "the agent's own MCP endpoint" }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

/**
 * `GET /.well-known/agents.json` (issue 12 §3), protected like the API with scope viewer (the
 * fleet's directory; each card alone is public, a2a-door.ts): every recorded agent, sorted by
 * slug, with its A2A card as the manager serves it (managerA2aCard: the interface URL the
 * manager's `/a2a/{slug}`, the manager's bearer scheme), the manager's URLs for it
 * (`/api/v1/agents/{slug}` with the gateway's `/execute` under it, the A2A interface and card, the
 * MCP door `/mcp` with the agent's tool prefix `<slug>__`) and the agent's own URLs (`direct`).
 * The manager's base URL is the request's (protocol and Host as the client reached it).
 */
export function agentsDirectoryPlugin(ctx: ManagerContext) {
  return async function agentsDirectory(app: FastifyInstance): Promise<void> {
    app.get(
      '/.well-known/agents.json',
      {
        config: { scope: 'viewer' },
        schema: {
          summary: 'Every agent with its A2A card and the manager URL for it',
          tags: ['agents'],
          response: withErrors({ 200: Type.Object({ agents: Type.Array(Entry) }, { additionalProperties: false }) }),
        },
      },
      async (req) => {
        const base = `${req.protocol}://${req.host}`;
        const records = [...(await ctx.snapshot.get()).records].sort((a, b) => (a.slug < b.slug ? -1 : 1));
        const agents = await Promise.all(
          records.map(async (r) => ({
            name: r.name,
            slug: r.slug,
            available: (await ctx.rotation.rotation(r.slug)).some((v) => v.inRotation && v.url !== ''),
            card: managerA2aCard(r, base),
            manager: {
              url: `${base}/api/v1/agents/${r.slug}`,
              a2a: managerA2aUrl(base, r.slug),
              card: `${managerA2aUrl(base, r.slug)}${AGENT_CARD_PATH}`,
              mcp: `${base}/mcp`,
              toolPrefix: `${r.slug}${TOOL_SEPARATOR}`,
            },
            direct: direct(agentUrl(ctx.config, r.port)),
          })),
        );
        return { agents };
      },
    );
  };
}

/** An agent's own doors from its URL. Pure. */
function direct(url: string): { url: string; card: string; mcp: string } {
  return { url, card: `${url}${AGENT_CARD_PATH}`, mcp: `${url}/mcp` };
}
