import { pino, type Logger } from 'pino';

/**
 * Namespaced logs on stderr (stdout belongs to command output and --json).
 * Level: NEXUS_LOG_LEVEL (trace|debug|info|warn|error|silent), default `warn`; `--verbose` sets debug.
 * Never pass secrets (API keys, credentials) as log fields.
 */
const root: Logger = pino(
  {
    level: process.env.NEXUS_LOG_LEVEL ?? 'warn',
    base: undefined,
    redact: { paths: ['*.apiKey', '*.token', '*.password', '*.credentials', 'env'], censor: '[redacted]' },
  },
  pino.destination({ fd: 2, sync: true }),
);

/** A child logger named `nexus:<ns>`, e.g. logger('engine'). */
export function logger(ns: string): Logger {
  return root.child({ name: `nexus:${ns}` });
}

export function setLogLevel(level: string): void {
  root.level = level;
}
