/**
 * The MCP side of an agent, on @modelcontextprotocol/sdk: loaded by mcp.ts on the first /mcp
 * request only, so agents nobody reaches over MCP do not pay for the SDK in memory.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { AgentDefinition } from './define.js';
import { ContractError } from './contract.js';
import type { InvokeTool } from './invoke.js';

// The SDK's Server validates only elicitation answers with this (never asked for here); its
// default builds an Ajv instance with formats per Server, i.e. per stateless request.
const noElicitationValidator = {
  getValidator: () => () => ({ valid: false as const, data: undefined, errorMessage: 'this server does not elicit input' }),
};

/** A tool result as MCP structured content (a JSON object): objects as they are, anything else as `{result}`. */
export function structuredResult(result: unknown): Record<string, unknown> {
  return result !== null && typeof result === 'object' && !Array.isArray(result) ? (result as Record<string, unknown>) : { result };
}

/**
 * Answer one MCP streamable-HTTP POST statelessly (no session; the SDK's pattern: a fresh server
 * and transport per request), with a JSON response rather than an SSE stream.
 * tools/list: the agent's tools, `parameters` as `inputSchema`. tools/call: through invokeTool;
 * the result as a JSON text block plus structuredContent (structuredResult). Invalid parameters,
 * tool failures and timeouts are tool errors (`isError: true`, text "CODE: message"); an unknown
 * tool is the JSON-RPC error -32602, as the SDK's own McpServer answers it.
 */
export async function handleMcpPost(agent: AgentDefinition, invokeTool: InvokeTool, request: Request, body: unknown): Promise<Response> {
  const server = new Server({ name: agent.name, version: agent.version }, { capabilities: { tools: {} }, jsonSchemaValidator: noElicitationValidator });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: agent.tools.map((t) => ({ name: t.name, description: t.description, inputSchema: t.parameters as { type: 'object' } })),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (req, extra): Promise<CallToolResult> => {
    try {
      const result = await invokeTool(req.params.name, req.params.arguments ?? {}, { signal: extra.signal });
      return { content: [{ type: 'text', text: result.json }], structuredContent: structuredResult(result.value()) };
    } catch (err) {
      if (!(err instanceof ContractError)) throw err;
      if (err.code === 'TOOL_NOT_FOUND') throw new McpError(ErrorCode.InvalidParams, err.message);
      return { isError: true, content: [{ type: 'text', text: `${err.code}: ${err.message}` }] };
    }
  });
  const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  await server.connect(transport);
  try {
    return await transport.handleRequest(request, { parsedBody: body });
  } finally {
    await server.close();
  }
}
