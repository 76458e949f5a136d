import http from 'node:http';

/**
 * One HTTP request with the path sent byte for byte as given (no URL normalisation, unlike
 * fetch or inject), so tests see what a hostile client's exact request line does. A fresh
 * connection each unless `opts.agent` (a keep-alive agent) is given.
 */
export function rawRequest(base: string, method: string, path: string, opts: { headers?: Record<string, string>; body?: string; agent?: http.Agent } = {}): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, method, path, headers: { ...(opts.body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(opts.body)) } : {}), ...opts.headers }, agent: opts.agent ?? false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}
