import { isIP } from 'node:net';
import { AppError } from '../errors.js';
import { buildServer, type ManagerApp, type ServerDeps } from './app.js';

/** Default port of `agent serve`. */
export const DEFAULT_MANAGER_PORT = 8070;

/** True for addresses only this machine can reach: `localhost`, 127.0.0.0/8, `::1` (and its IPv4-mapped form). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

export interface ServeOptions extends Omit<ServerDeps, 'bootstrapToken'> {
  /** Address to listen on (default 127.0.0.1). A non-loopback address needs NEXUS_MANAGER_TOKEN. */
  host?: string | undefined;
  /** TCP port (default 8070; 0 picks a free one). */
  port?: number | undefined;
  /** Where NEXUS_MANAGER_TOKEN is read from (default process.env). */
  env?: NodeJS.ProcessEnv | undefined;
  /** Prints the listening line (default: stdout). */
  print?: ((line: string) => void) | undefined;
  /** Stop on SIGTERM and SIGINT (default true). */
  handleSignals?: boolean | undefined;
  /** Builds the app from the checked deps (default buildServer; `agent serve` passes createManager's, src/server/manager.ts). */
  build?: ((deps: ServerDeps) => Promise<ManagerApp>) | undefined;
}

export interface RunningManager {
  /** `http://host:port`, the address the manager listens on. */
  url: string;
  app: ManagerApp;
  /** Stop: refuse new requests (503), let in-flight ones finish, run onClose hooks. Idempotent. */
  close(): Promise<void>;
  /** Settles once the manager has stopped (after close() or a signal). */
  closed: Promise<void>;
}

/**
 * `agent serve`: build the manager (buildServer) and listen on `host:port`, printing
 * `manager listening on <url>`. SIGTERM/SIGINT stop it cleanly: in-flight requests finish, new
 * ones get 503, plugins' onClose hooks run; the returned `closed` settles then (the CLI awaits it
 * and returns; nothing here calls process.exit).
 * @throws AppError SERVE_HOST_UNPROTECTED for a non-loopback host without NEXUS_MANAGER_TOKEN
 *   (nothing is started); USAGE for a bad port; CONFIG_INVALID / MANAGER_KEY_INSECURE from buildServer.
 */
export async function serveManager(opts: ServeOptions): Promise<RunningManager> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? DEFAULT_MANAGER_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new AppError('USAGE', `invalid port ${String(port)}`, { hint: 'use a whole number from 0 to 65535' });
  const bootstrapToken = (opts.env ?? process.env).NEXUS_MANAGER_TOKEN || undefined;
  if (!isLoopbackHost(host) && !bootstrapToken) {
    throw new AppError('SERVE_HOST_UNPROTECTED', `refusing to listen on ${host} without NEXUS_MANAGER_TOKEN`, {
      hint: 'set NEXUS_MANAGER_TOKEN to a long random value (e.g. `openssl rand -hex 32`), or listen on 127.0.0.1',
    });
  }
  const app = await (opts.build ?? buildServer)({ ...opts, bootstrapToken });
  let address: string;
  try {
    address = await app.listen({ host, port });
  } catch (err) {
    await app.close();
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new AppError('PORT_IN_USE', `port ${port} on ${host} is in use`, { hint: 'pick another with --port', cause: err });
    throw err;
  }
  (opts.print ?? ((l: string) => process.stdout.write(l + '\n')))(`manager listening on ${address}`);

  let closing: Promise<void> | undefined;
  let stopped!: () => void;
  const closed = new Promise<void>((resolve) => (stopped = resolve));
  const onSignal = (): void => void close().catch((err: unknown) => app.log.error({ err }, 'close failed'));
  const close = (): Promise<void> => {
    closing ??= (async () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      await app.close();
      stopped();
    })();
    return closing;
  };
  if (opts.handleSignals ?? true) {
    // `on`, not `once` (removed in close): signal-exit 3, loaded by proper-lockfile, kills the
    // process when its listener is the only one left when the signal arrives
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  return { url: address, app, close, closed };
}
