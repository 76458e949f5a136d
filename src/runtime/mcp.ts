/**
 * MCP on every agent: the Model Context Protocol's streamable HTTP transport at /mcp
 * (specification 2025-06-18 and later, "Transports"), stateless: each POST carries one JSON-RPC
 * message and gets its answer as JSON. The SDK (mcp-server.ts) is imported on the first request.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AgentDefinition } from './define.js';
import type { InvokeTool } from './invoke.js';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Whether a request's Origin may use /mcp (the transport's DNS-rebinding rule: servers MUST
 * validate Origin). Allowed: no Origin (not a browser), a loopback origin (localhost, *.localhost,
 * 127.0.0.1, [::1], any port), and the origin of the agent's public URL. Pure.
 */
export function originAllowed(origin: string | undefined, publicUrl?: string): boolean {
  if (origin === undefined) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (LOOPBACK_HOSTS.has(url.hostname) || url.hostname.endsWith('.localhost')) return true;
  if (!publicUrl) return false;
  try {
    return new URL(publicUrl).origin === url.origin;
  } catch {
    return false;
  }
}

/** A JSON-RPC error answer (id null: the request was not read as JSON-RPC). */
function rpcError(reply: FastifyReply, status: number, code: number, message: string): FastifyReply {
  return reply.code(status).type('application/json').send({ jsonrpc: '2.0', error: { code, message }, id: null });
}

export interface McpOptions {
  agent: AgentDefinition;
  invokeTool: InvokeTool;
  /** AGENT_PUBLIC_URL: its origin may call /mcp from a browser. */
  publicUrl?: string | undefined;
}

/**
 * Register /mcp on `app` in its own plugin scope: POST answers one JSON-RPC message
 * (mcp-server.ts handleMcpPost); GET and DELETE are 405 (no session, no server-to-client stream);
 * a foreign Origin is 403. Errors before the SDK (bad JSON, too large) are JSON-RPC errors too.
 */
export function registerMcp(app: FastifyInstance, opts: McpOptions): void {
  let loaded: Promise<typeof import('./mcp-server.js')> | undefined;
  app.register(async (scope) => {
    scope.addHook('onRequest', async (req, reply) => {
      const origin = req.headers.origin;
      if (!originAllowed(origin, opts.publicUrl)) return rpcError(reply, 403, -32000, `Forbidden: Origin ${origin} may not use this MCP server`);
    });
    scope.setErrorHandler((err: FastifyError, req, reply) => {
      const status = err.statusCode && err.statusCode < 500 ? err.statusCode : 500;
      if (status === 500) req.log.error({ err }, 'unhandled error');
      const parse = err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError;
      return rpcError(reply, status, parse ? -32700 : status === 500 ? -32603 : -32600, status === 500 ? 'internal error' : err.message);
    });
    scope.post('/mcp', async (req: FastifyRequest, reply) => {
      loaded ??= import('./mcp-server.js');
      const { handleMcpPost } = await loaded;
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v);
      const request = new Request(`http://${req.host}${req.url}`, { method: 'POST', headers });
      const res = await handleMcpPost(opts.agent, opts.invokeTool, request, req.body);
      reply.code(res.status);
      res.headers.forEach((value, key) => void reply.header(key, value));
      return reply.send(res.body ? Buffer.from(await res.arrayBuffer()) : undefined);
    });
    const notAllowed = async (_req: FastifyRequest, reply: FastifyReply) =>
      rpcError(reply.header('allow', 'POST'), 405, -32000, 'Method not allowed: this MCP server is stateless; POST JSON-RPC messages to /mcp');
    scope.get('/mcp', notAllowed);
    scope.delete('/mcp', notAllowed);
  });
}
