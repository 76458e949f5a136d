/**
 * One error type for the whole tool. Every failure a user can cause or meet carries a stable `code`,
 * the process exit code the CLI maps it to, an HTTP status for the (later) manager API, and a
 * one-line `hint` that says how to fix it. Codes and exit codes are documented in README.md.
 */

/** Exit codes of the CLI, by kind of failure. 0 is success; bad input is never 0. */
export const ExitCode = {
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  CONFLICT: 4,
  ENGINE: 5,
  BUILD: 6,
  UNHEALTHY: 7,
  REGISTRY: 8,
  PARTIAL: 9,
  MARKETPLACE: 10,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The error-code registry: code -> exit code and HTTP status. */
export const ErrorCodes = {
  INTERNAL: { exitCode: ExitCode.INTERNAL, httpStatus: 500 },
  USAGE: { exitCode: ExitCode.USAGE, httpStatus: 400 },
  CONFIG_INVALID: { exitCode: ExitCode.USAGE, httpStatus: 400 },
  NAME_INVALID: { exitCode: ExitCode.USAGE, httpStatus: 400 },
  CAPABILITY_UNKNOWN: { exitCode: ExitCode.USAGE, httpStatus: 400 },
  PORT_OUT_OF_RANGE: { exitCode: ExitCode.USAGE, httpStatus: 400 },
  AGENT_NOT_FOUND: { exitCode: ExitCode.NOT_FOUND, httpStatus: 404 },
  NAME_TAKEN: { exitCode: ExitCode.CONFLICT, httpStatus: 409 },
  SOURCE_EXISTS: { exitCode: ExitCode.CONFLICT, httpStatus: 409 },
  PORT_IN_USE: { exitCode: ExitCode.CONFLICT, httpStatus: 409 },
  PORT_RANGE_EXHAUSTED: { exitCode: ExitCode.CONFLICT, httpStatus: 409 },
  ENGINE_UNREACHABLE: { exitCode: ExitCode.ENGINE, httpStatus: 503 },
  ENGINE_ERROR: { exitCode: ExitCode.ENGINE, httpStatus: 502 },
  BASE_IMAGE_FAILED: { exitCode: ExitCode.BUILD, httpStatus: 500 },
  BUILD_FAILED: { exitCode: ExitCode.BUILD, httpStatus: 500 },
  CONTAINER_UNHEALTHY: { exitCode: ExitCode.UNHEALTHY, httpStatus: 502 },
  STACK_NOT_CONVERGED: { exitCode: ExitCode.UNHEALTHY, httpStatus: 502 },
  REGISTRY_LOCKED: { exitCode: ExitCode.REGISTRY, httpStatus: 503 },
  REGISTRY_CORRUPT: { exitCode: ExitCode.REGISTRY, httpStatus: 500 },
  REGISTRY_UNREACHABLE: { exitCode: ExitCode.REGISTRY, httpStatus: 503 },
  PARTIAL_FAILURE: { exitCode: ExitCode.PARTIAL, httpStatus: 207 },
  NOT_HEALTHY: { exitCode: ExitCode.UNHEALTHY, httpStatus: 409 },
  NOT_REGISTERED: { exitCode: ExitCode.NOT_FOUND, httpStatus: 404 },
  MARKETPLACE_UNREACHABLE: { exitCode: ExitCode.MARKETPLACE, httpStatus: 503 },
  MARKETPLACE_AUTH: { exitCode: ExitCode.MARKETPLACE, httpStatus: 502 },
  MARKETPLACE_REJECTED: { exitCode: ExitCode.MARKETPLACE, httpStatus: 502 },
  MARKETPLACE_ERROR: { exitCode: ExitCode.MARKETPLACE, httpStatus: 502 },
  // the manager (`agent serve`, src/server/): HTTP-facing codes and its token store
  BAD_REQUEST: { exitCode: ExitCode.USAGE, httpStatus: 400 },
  UNAUTHORIZED: { exitCode: ExitCode.USAGE, httpStatus: 401 },
  FORBIDDEN: { exitCode: ExitCode.USAGE, httpStatus: 403 },
  ROUTE_NOT_FOUND: { exitCode: ExitCode.NOT_FOUND, httpStatus: 404 },
  TOKEN_NOT_FOUND: { exitCode: ExitCode.NOT_FOUND, httpStatus: 404 },
  PAYLOAD_TOO_LARGE: { exitCode: ExitCode.USAGE, httpStatus: 413 },
  UNSUPPORTED_MEDIA_TYPE: { exitCode: ExitCode.USAGE, httpStatus: 415 },
  RATE_LIMITED: { exitCode: ExitCode.CONFLICT, httpStatus: 429 },
  MANAGER_KEY_INSECURE: { exitCode: ExitCode.USAGE, httpStatus: 500 },
  SERVE_HOST_UNPROTECTED: { exitCode: ExitCode.USAGE, httpStatus: 400 },
  // the gateway (src/server/gateway/)
  AGENT_UNAVAILABLE: { exitCode: ExitCode.UNHEALTHY, httpStatus: 503 },
  AGENT_CALL_FAILED: { exitCode: ExitCode.UNHEALTHY, httpStatus: 502 },
  AGENT_TIMEOUT: { exitCode: ExitCode.UNHEALTHY, httpStatus: 504 },
  // the local router and rollouts (src/fleet/router-sync.ts, src/fleet/rollout.ts)
  ROUTER_RELOAD_FAILED: { exitCode: ExitCode.UNHEALTHY, httpStatus: 502 },
  ROLLOUT_UNHEALTHY: { exitCode: ExitCode.UNHEALTHY, httpStatus: 502 },
  NO_PREVIOUS_VERSION: { exitCode: ExitCode.CONFLICT, httpStatus: 409 },
  ROLLOUT_IN_PROGRESS: { exitCode: ExitCode.CONFLICT, httpStatus: 409 },
  // tasks (src/tasks/)
  TASK_NOT_FOUND: { exitCode: ExitCode.NOT_FOUND, httpStatus: 404 },
  TASK_STATE_CONFLICT: { exitCode: ExitCode.CONFLICT, httpStatus: 409 },
  TASK_STORE_CORRUPT: { exitCode: ExitCode.REGISTRY, httpStatus: 500 },
  TASK_STORE_UNREACHABLE: { exitCode: ExitCode.REGISTRY, httpStatus: 503 },
  // commands (src/server/commands.ts)
  COMMAND_NOT_FOUND: { exitCode: ExitCode.NOT_FOUND, httpStatus: 404 },
  COMMAND_STORE_UNREACHABLE: { exitCode: ExitCode.REGISTRY, httpStatus: 503 },
  // the manager's MCP door (src/server/mcp-door.ts)
  MCP_SESSION_NOT_FOUND: { exitCode: ExitCode.NOT_FOUND, httpStatus: 404 },
  MCP_SESSIONS_FULL: { exitCode: ExitCode.UNHEALTHY, httpStatus: 503 },
  // the dashboard (src/server/dashboard.ts)
  DASHBOARD_NOT_BUILT: { exitCode: ExitCode.INTERNAL, httpStatus: 503 },
} as const;
export type ErrorCode = keyof typeof ErrorCodes;

export interface AppErrorOptions {
  /** One line telling the user how to fix it. */
  hint?: string;
  cause?: unknown;
  /** Structured context (agent slug, port, ...) for --json output and logs. Never secrets. */
  details?: Record<string, unknown>;
  /** Seconds after which a retry may succeed (HTTP Retry-After), e.g. on AGENT_UNAVAILABLE. */
  retryAfterS?: number;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  readonly httpStatus: number;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;
  readonly retryAfterS: number | undefined;

  constructor(code: ErrorCode, message: string, opts: AppErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.exitCode = ErrorCodes[code].exitCode;
    this.httpStatus = ErrorCodes[code].httpStatus;
    this.hint = opts.hint;
    this.details = opts.details;
    this.retryAfterS = opts.retryAfterS;
  }

  toJSON(): { code: ErrorCode; message: string; hint?: string; details?: Record<string, unknown> } {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint ? { hint: this.hint } : {}),
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/** The message of any thrown value, for wrapping. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
