/**
 * In-process replicas for gateway tests: real agent runtimes (buildServer) and small raw HTTP
 * servers that misbehave on purpose, all on 127.0.0.1 with an OS-chosen port.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { defineAgent, defineTool } from '../../src/runtime/define.js';
import { buildServer } from '../../src/runtime/server.js';
import { processData } from '../../agent-template/tools/process_data.js';

/** An agent with process_data, a tool that waits `ms` then answers, and a tool that throws. */
export const testAgent = defineAgent({
  name: 'GatewayTest',
  description: 'replica for gateway tests',
  version: '1.0.0',
  tools: [
    processData,
    defineTool<{ ms: number }>({
      name: 'wait',
      description: 'answers after ms milliseconds',
      parameters: { type: 'object', required: ['ms'], properties: { ms: { type: 'number' } } },
      handler: async ({ ms }, { signal }) => {
        await new Promise((r) => setTimeout(r, ms));
        signal.throwIfAborted();
        return { waited: ms };
      },
    }),
    defineTool({
      name: 'boom',
      description: 'always throws',
      parameters: { type: 'object' },
      handler: () => {
        throw new Error('boom');
      },
    }),
  ],
});

export interface RunningRuntime {
  app: FastifyInstance;
  url: string;
  /** POST /execute requests this runtime received (counted on arrival). */
  hits: () => number;
}

/** Start one agent runtime on 127.0.0.1:0. */
export async function startRuntime(): Promise<RunningRuntime> {
  const app = await buildServer(testAgent, { processMetrics: false });
  let hits = 0;
  app.addHook('onRequest', async (req) => {
    if (req.url === '/execute') hits++;
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}`, hits: () => hits };
}

export interface RawServer {
  server: Server;
  url: string;
  hits: () => number;
  close: () => Promise<void>;
}

/**
 * A raw server whose `handle` decides each answer after the whole request arrived
 * (e.g. destroy the socket: the call reached the replica, which died before answering).
 */
export async function startRaw(handle: (res: import('node:http').ServerResponse, socket: import('node:net').Socket) => void): Promise<RawServer> {
  let hits = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      hits++;
      handle(res, req.socket);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    hits: () => hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A loopback URL nothing listens on (a port taken from the OS, then released). */
export async function refusedUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}
