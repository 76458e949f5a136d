import Fastify, { type FastifyInstance } from 'fastify';

/** A fault to answer with instead of forwarding: a status (with headers/body), or a delay before forwarding. */
export type Fault = { status: number; headers?: Record<string, string>; body?: unknown } | { delayMs: number };

/**
 * An HTTP server on loopback that forwards every request to `target` (via inject: the real
 * server's code, no mock) unless a queued fault applies. Records each request it saw.
 */
export async function faultProxy(target: FastifyInstance): Promise<{ url: string; faults: Fault[]; seen: { method: string; url: string; auth?: string }[]; close: () => Promise<void> }> {
  const faults: Fault[] = [];
  const seen: { method: string; url: string; auth?: string }[] = [];
  const proxy = Fastify();
  proxy.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  proxy.all('/*', async (req, reply) => {
    seen.push({ method: req.method, url: req.url, ...(req.headers.authorization ? { auth: req.headers.authorization } : {}) });
    const fault = faults.shift();
    if (fault && 'status' in fault) return reply.code(fault.status).headers(fault.headers ?? {}).send(fault.body ?? { error: { code: 'INJECTED', message: `injected ${fault.status}` } });
    if (fault && 'delayMs' in fault) await new Promise((r) => setTimeout(r, fault.delayMs));
    const res = await target.inject({
      method: req.method as 'GET',
      url: req.url,
      headers: { ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), ...(req.body ? { 'content-type': 'application/json' } : {}) },
      ...(req.body ? { payload: req.body as string } : {}),
    });
    reply.code(res.statusCode);
    if (res.headers['content-type']) reply.header('content-type', res.headers['content-type']);
    return reply.send(res.body);
  });
  const url = await proxy.listen({ port: 0, host: '127.0.0.1' });
  return { url, faults, seen, close: () => proxy.close() };
}
