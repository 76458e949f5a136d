import * as z from 'zod';
import { lazy, type UseCase } from './usecase.js';

/**
 * The manager's commands (issue 9 §1, §3): `serve` and `token create|revoke|list`. They run code of
 * src/server/ (loaded on first call, like every use case): the one place where the table reaches
 * above the fleet, because the manager is the shell these commands start or administer.
 */
const server = () => import('../server/manager.js');
const tokens = () => import('../server/tokens.js');
const agentTokens = () => import('./agent-tokens.js');
const SCOPES = ['viewer', 'operator', 'admin'] as const;

export const MANAGER_USE_CASES = [
  {
    name: 'serve',
    description: 'run the manager (API, gateway) in the foreground until SIGTERM or Ctrl-C',
    options: [
      { flags: '--port <port>', description: 'TCP port', parse: 'port', default: 8070 },
      { flags: '--host <address>', description: 'address to listen on (non-loopback needs NEXUS_MANAGER_TOKEN)', default: '127.0.0.1' },
    ],
    input: lazy(() => z.object({ port: z.number().int().min(1).max(65535), host: z.string().min(1) })),
    run: async (o, deps, io) => (await server()).serveWorkspace(deps, o, io),
  } satisfies UseCase<{ port: number; host: string }>,
  {
    name: 'token create',
    description: 'mint a manager token (JWT); printed once on stdout, stored nowhere',
    options: [
      { flags: '--scope <scope>', description: 'viewer reads; operator also starts, stops, scales, executes; admin also creates, removes, manages tokens', choices: SCOPES, required: true },
      { flags: '--ttl <duration>', description: 'lifetime, e.g. 30m, 24h, 7d (at most 365d)', default: '24h' },
      { flags: '--label <text>', description: 'a note shown by token list' },
    ],
    input: lazy(() => z.object({ scope: z.enum(SCOPES), ttl: z.string(), label: z.string().optional() })),
    run: async (o, deps) => (await tokens()).createToken(o, { workspace: deps.config.workspace }),
  } satisfies UseCase<{ scope: (typeof SCOPES)[number]; ttl: string; label?: string | undefined }>,
  {
    name: 'token revoke',
    description: 'revoke a manager token by its id (jti, see token list)',
    options: [],
    args: [{ name: 'jti', description: 'the token id' }],
    input: lazy(() => z.object({ jti: z.string() })),
    run: async (o, deps) => (await tokens()).revokeToken({ jti: o.jti }, { workspace: deps.config.workspace }),
  } satisfies UseCase<{ jti: string }>,
  {
    name: 'token list',
    description: 'live manager tokens (ids, scopes, labels, expiry; never the tokens)',
    options: [],
    input: lazy(() => z.object({})),
    run: async (_, deps) => ({ tokens: await (await tokens()).listTokens({ workspace: deps.config.workspace }) }),
  } satisfies UseCase<Record<string, never>>,
  {
    name: 'token rotate-agent',
    description: 'issue a new connection token for an agent (/ws/agent); the old one stops working; printed once',
    options: [{ flags: '--name <name>', description: 'agent name or slug', required: true }],
    input: lazy(() => z.object({ name: z.string().min(1) })),
    run: async (o, deps) => (await agentTokens()).rotateAgentToken(deps, { name: o.name }),
  } satisfies UseCase<{ name: string }>,
  {
    name: 'token revoke-agent',
    description: "revoke an agent's connection token: its HELLO is refused (4401) until a new one is issued",
    options: [{ flags: '--name <name>', description: 'agent name or slug', required: true }],
    input: lazy(() => z.object({ name: z.string().min(1) })),
    run: async (o, deps) => (await agentTokens()).revokeAgentToken(deps, { name: o.name }),
  } satisfies UseCase<{ name: string }>,
] as const;
