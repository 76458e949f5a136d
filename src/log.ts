import { createRequire } from 'node:module';
import type { Logger, LogFn } from 'pino';

/**
 * Namespaced logs on stderr (stdout belongs to command output and --json).
 * Level: NEXUS_LOG_LEVEL (trace|debug|info|warn|error|silent), default `warn`; `--verbose` sets debug.
 * Never pass secrets (API keys, credentials) as log fields.
 *
 * pino is loaded on the first line actually written: at the default level a quick command writes
 * none, and loading pino and its stream stack costs ~10-25 ms per call. The lines are pino's own
 * (same options, same child bindings), so the output does not change.
 */

/** pino's numeric levels (pino/lib/constants.js). */
const LEVELS: Readonly<Record<string, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

let level = process.env.NEXUS_LOG_LEVEL ?? 'warn';
let root: Logger | undefined;

function rootLogger(): Logger {
  if (!root) {
    // synchronous, as logging is: pino is CommonJS, required from node_modules on first use
    const { pino } = createRequire(import.meta.url)('pino') as typeof import('pino');
    root = pino(
      {
        level,
        base: undefined,
        redact: { paths: ['*.apiKey', '*.token', '*.password', '*.credentials', 'env'], censor: '[redacted]' },
      },
      pino.destination({ fd: 2, sync: true }),
    );
  }
  return root;
}
// a level pino does not know fails at load, as pino itself would refuse it
if (!Object.hasOwn(LEVELS, level)) rootLogger();

/** A namespaced logger: pino's methods with pino's signatures (`log.debug({ op }, 'start')`). */
export interface Log {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

/** A child logger named `nexus:<ns>`, e.g. logger('engine'); the pino child is made on its first enabled line. */
export function logger(ns: string): Log {
  let child: Logger | undefined;
  const at = (method: keyof Log): LogFn =>
    ((...args: Parameters<LogFn>) => {
      if (LEVELS[method]! < LEVELS[root ? root.level : level]!) return;
      child ??= rootLogger().child({ name: `nexus:${ns}` });
      (child[method] as (...a: unknown[]) => void)(...args);
    }) as LogFn;
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Set the level of every logger (pino level names). */
export function setLogLevel(next: string): void {
  if (root || !Object.hasOwn(LEVELS, next)) rootLogger().level = next; // pino refuses an unknown level
  level = next;
}
