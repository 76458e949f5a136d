import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { agentUrl } from '../conventions.js';
import { buildA2aCard } from '../runtime/card.js';
import type { ManagerContext } from './manager.js';
import { TOOL_SEPARATOR } from './mcp-door.js';
import { withErrors } from './schemas.js';

const Entry = Type.Object(
  {
    name: Type.String(),
    slug: Type.String(),
    available: Type.Boolean({ description: 'a replica is in the gateway rotation now' }),
    card: Type.Record(Type.String(), Type.Unknown(), { description: "the agent's A2A 1.0 card; its interface URL is the agent's own (A2A is served there)" }),
    manager: Type.Object(
      {
        url: Type.String({ description: "the manager's URL for this agent (GET: the agent; POST {url}/execute: a tool call through the gateway)" }),
        mcp: Type.String({ description: "the manager's MCP door" }),
        toolPrefix: Type.String({ description: 'the prefix of this agent’s tools on the door' }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

/**
 * `GET /.well-known/agents.json` (issue 12 §3), protected like the API with scope viewer (every
 * manager route is authenticated; an agent's own card stays public on the agent): every recorded
 * agent, sorted by slug, with its A2A card (buildA2aCard over the record's tools, the interface
 * URL the agent's own) and the manager's URLs for it: `/api/v1/agents/{slug}` (the gateway's
 * `/execute` under it) and the MCP door `/mcp` with the agent's tool prefix `<slug>__`.
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
            card: buildA2aCard({ ...r, tools: r.tools ?? [] }, agentUrl(ctx.config, r.port)),
            manager: { url: `${base}/api/v1/agents/${r.slug}`, mcp: `${base}/mcp`, toolPrefix: `${r.slug}${TOOL_SEPARATOR}` },
          })),
        );
        return { agents };
      },
    );
  };
}
