import { request } from 'node:http';
import { containerInfoOf, engineCall, engineInfoOf, labelFilters, PING_TIMEOUT_MS, withTimeout, type RawContainer, type RawVersion } from './calls.js';
import type { ContainerInfo, Engine, EngineInfo } from './engine.js';

/** Where the light client connects: a unix socket, or plain HTTP over TCP. */
export type LightTarget = { socketPath: string } | { host: string; port: number };

/**
 * The endpoint of DOCKER_HOST when the light client can speak to it, following the docker CLI
 * (and dockerOptions in ./docker.ts): unset -> /var/run/docker.sock; unix:///path; tcp://host:port
 * (default port 2375) without DOCKER_TLS_VERIFY. Undefined for TLS, ssh:// and anything else: those
 * stay with dockerode. Pure.
 */
export function lightTarget(env: Record<string, string | undefined>): LightTarget | undefined {
  const host = env.DOCKER_HOST;
  if (!host) return { socketPath: '/var/run/docker.sock' };
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) };
  if (!host.startsWith('tcp://') || env.DOCKER_TLS_VERIFY) return undefined;
  const u = new URL(host.replace(/^tcp:/, 'http:'));
  // an IPv6 literal keeps its brackets in a URL, not in a socket address
  return { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port || 2375) };
}

/** The Engine calls the light client answers; every other call loads dockerode. */
export const LIGHT_CALLS = ['ping', 'listContainers'] as const;
export type LightCall = (typeof LIGHT_CALLS)[number];

/**
 * A small read-only Docker Engine API client over node:http, for the calls a quick command makes
 * (`list`: GET /containers/json; `ping`: GET /version) without loading dockerode, whose SSH, gRPC
 * and TAR stacks take 80-200 ms to import. It answers and fails exactly as DockerEngine does: the
 * same request (unversioned path, `all=true`, label filters as JSON), the same mapping, and errors
 * in docker-modem's shape (`statusCode`, parsed body as `json`, socket codes as they are) through
 * the same wrapper (calls.ts engineCall), so ENGINE_UNREACHABLE / ENGINE_ERROR are unchanged.
 */
export class LightEngine implements Pick<Engine, LightCall | 'endpoint'> {
  constructor(
    readonly endpoint: string,
    private readonly target: LightTarget,
  ) {}

  ping(): Promise<EngineInfo> {
    return engineCall(this.endpoint, 'ping', undefined, async () => engineInfoOf(await withTimeout(this.get<RawVersion>('/version', { 500: 'server error' }), PING_TIMEOUT_MS)));
  }

  listContainers(labels: Record<string, string>): Promise<ContainerInfo[]> {
    return engineCall(this.endpoint, 'list containers', undefined, async () => {
      const q = new URLSearchParams({ all: 'true', filters: JSON.stringify({ label: labelFilters(labels) }) });
      return (await this.get<RawContainer[]>(`/containers/json?${q}`, { 400: 'bad parameter', 500: 'server error' })).map(containerInfoOf);
    });
  }

  /**
   * GET `path`; the parsed JSON body on 200. Otherwise an Error shaped as docker-modem's
   * ("(HTTP code 500) server error - <message> ", statusCode, json), or the socket error.
   */
  private get<T>(path: string, reasons: Record<number, string>): Promise<T> {
    return new Promise((resolve, reject) => {
      const req = request({ ...this.target, method: 'GET', path, headers: {} }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status === 200 && json !== undefined) return resolve(json as T);
          const body = json ?? text;
          const cause = typeof body === 'object' && body !== null ? ((body as { message?: string }).message ?? JSON.stringify(body)) : body;
          const reason = status === 200 ? 'unreadable answer' : (reasons[status] ?? 'unexpected');
          reject(Object.assign(new Error(`(HTTP code ${status}) ${reason} - ${String(cause)} `), { statusCode: status, json: body }));
        });
      });
      req.on('error', reject);
      req.end();
    });
  }
}
