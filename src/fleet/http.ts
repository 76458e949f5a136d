/** Response of `request`: status and parsed JSON body (undefined when not JSON). */
export interface HttpResult {
  status: number;
  body: unknown;
}

/**
 * One HTTP request with a hard deadline in ms, JSON in and out.
 * Why not `fetch(url, { signal: AbortSignal.timeout(ms) })`: that timer is unref'd, and a request
 * to a port published by docker-proxy while the container is still starting can stay pending
 * with no live handle, so Node exits mid-await with code 0. Here a ref'd timer both aborts the
 * request and settles the promise.
 * @throws Error (name TimeoutError, or the network error's code in `cause.code`).
 */
export function request(url: string, opts: { method?: string; json?: unknown; timeoutMs: number }): Promise<HttpResult> {
  const ac = new AbortController();
  return new Promise<HttpResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      const err = new Error(`no answer from ${url} within ${opts.timeoutMs} ms`);
      err.name = 'TimeoutError';
      ac.abort(err);
      reject(err);
    }, opts.timeoutMs);
    fetch(url, {
      method: opts.method ?? 'GET',
      signal: ac.signal,
      ...(opts.json !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(opts.json) } : {}),
    })
      .then(async (res) => {
        const text = await res.text();
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = undefined;
        }
        return { status: res.status, body };
      })
      .then(resolve, reject)
      .finally(() => clearTimeout(timer));
  });
}
