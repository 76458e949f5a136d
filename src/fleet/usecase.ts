import * as z from 'zod';
import { ExitCode } from '../errors.js';
import type { FleetDeps } from './context.js';

/**
 * The shape of a use case (one command), declared once: its name, options, input schema (zod), the use case function
 * `(input, deps, io) => Promise<Result>` and how a result maps to an exit code. The CLI builds its
 * commander commands from this table (src/cli/main.ts); the HTTP API and the task queue are meant
 * to read it too. Use cases load their modules on first call, so a command pays for what it uses.
 * Thrown AppErrors map to exit codes in `main` only.
 */

/** One option, in commander's flag syntax. `parse`: port (1-65535) or count (whole number >= 0). */
export interface OptionDecl {
  flags: string;
  description: string;
  required?: boolean;
  default?: string | number | boolean;
  parse?: 'port' | 'count' | 'registry-kind';
  choices?: readonly string[];
}

/** What a use case may use besides its input and deps: where to stream, and when to stop. */
export interface UseCaseIo {
  /** Where streaming output goes (logs --follow); the CLI passes stdout. */
  out: NodeJS.WritableStream;
  /** Aborted on Ctrl-C / SIGTERM. */
  signal?: AbortSignal | undefined;
  env?: Record<string, string | undefined> | undefined;
}

export interface UseCase<I = any, R = any> {
  /** Command words, e.g. 'start' or 'registry export'. */
  name: string;
  alias?: string;
  description: string;
  options: OptionDecl[];
  /** Positional arguments, in order (each required); their values join the input under `name`. */
  args?: { name: string; description: string }[];
  /** The input schema (zod), built once on first use (`lazy`): building every command's schema cost a quick command ~5 ms. */
  input: () => z.ZodType<I>;
  run: (input: I, deps: FleetDeps, io: UseCaseIo) => Promise<R>;
  /** Exit code of a result (default 0). */
  exitCode?: (result: R) => number;
  /** Agents the progress output counts toward (default none). */
  progressTotal?: (input: I, deps: FleetDeps) => Promise<number>;
}

/** `make()` on the first call, the same value after: a use case's input schema is built once, when first used. */
export function lazy<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => (made ??= { value: make() }).value;
}

export const names = z.array(z.string()).optional();
export const or = <T>(list: T[] | undefined, fallback: 'all') => (list?.length ? list : fallback);
export const timeout: OptionDecl = { flags: '--timeout <seconds>', description: 'grace period before SIGKILL', parse: 'count', default: 10 };
export const routerPort = (description: string): OptionDecl => ({ flags: '--router-port <port>', description, parse: 'port', default: 8088 });
export const fleet = () => import('./manager.js');
export const allAgents = async (_: unknown, deps: FleetDeps) => (await deps.registry.list()).length;

/** start, restart: every agent healthy is OK; the one agent named failing is UNHEALTHY; else PARTIAL (src/errors.ts ExitCode). */
export function startExitCode(r: { agents: unknown[]; failed: number }): number {
  return r.failed === 0 ? ExitCode.OK : r.failed === r.agents.length && r.agents.length === 1 ? ExitCode.UNHEALTHY : ExitCode.PARTIAL;
}

/** register: all listed is OK; one agent refused (not healthy) is UNHEALTHY; a marketplace error on one is MARKETPLACE; else PARTIAL. */
export function registerExitCode(r: { failed: number; agents: { outcome: string; error?: { code: string } | undefined }[] }): number {
  const single = r.agents.length === 1 ? r.agents[0] : undefined;
  return r.failed === 0 ? ExitCode.OK : single?.outcome === 'refused' ? ExitCode.UNHEALTHY : single?.error?.code.startsWith('MARKETPLACE') ? ExitCode.MARKETPLACE : ExitCode.PARTIAL;
}

