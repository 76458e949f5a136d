import { AppError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import type { ContainerInfo, ContainerState, EngineInfo } from './engine.js';

/**
 * What every Docker engine client shares, without loading one: the one error path (an engine
 * failure -> AppError), the one logging wrapper of engine calls, and the Engine API answers ->
 * our shapes. Used by DockerEngine (dockerode, ./docker.ts) and by the light read-only client
 * (node:http, ./light.ts), so both answer and fail alike. Source of the shapes: Docker Engine API
 * (GET /version, GET /containers/json).
 */

const log = logger('engine');
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ETIMEDOUT', 'EHOSTUNREACH', 'ECONNRESET', 'EPIPE']);
/** How long a ping waits for the engine's GET /version before ENGINE_UNREACHABLE (ETIMEDOUT), ms. */
export const PING_TIMEOUT_MS = 5000;

/** What the engine answered when it refused: HTTP status (API calls) and message, read once from the error. */
export interface EngineFault {
  /** HTTP status of the Engine API answer; undefined for socket errors and the docker CLI. */
  status?: number | undefined;
  /** Socket error code (ECONNREFUSED, EACCES, ...) when the engine was not reached. */
  code?: string | undefined;
  message: string;
}

/**
 * Read an engine client's error once: status, socket code, the engine's message. Errors of the
 * Engine API carry `statusCode` and the parsed body as `json` (docker-modem's shape, which the
 * light client copies); the docker CLI's carry `stderr`. Pure.
 */
export function faultOf(err: unknown): EngineFault {
  const e = err as { code?: unknown; statusCode?: number; json?: { message?: string } | string; stderr?: string };
  const json = typeof e?.json === 'object' ? e.json?.message : undefined;
  const message = (json ?? (e?.stderr ? e.stderr.trim().split('\n').slice(-3).join(' ') : undefined) ?? messageOf(err)).trim();
  return { status: e?.statusCode, code: typeof e?.code === 'string' ? e.code : undefined, message };
}

// Docker's words for a host port that cannot be bound: the port allocator ("port is already
// allocated", another container holds it) and the kernel via docker-proxy ("address already in use").
const PORT_TAKEN = /port is already allocated|address already in use/i;

/** Whether the engine refused because a host port is taken (by a container or another process). Pure. */
export function isPortConflict(f: EngineFault): boolean {
  return (f.status === undefined || f.status >= 500) && PORT_TAKEN.test(f.message);
}

/** Ids in logs and messages: 12 hex digits of a container/image id, names as they are. */
export function shortId(ref: string): string {
  const hex = /^(?:sha256:)?([0-9a-f]{64})$/.exec(ref);
  return hex ? hex[1]!.slice(0, 12) : ref;
}

export interface CallOptions<T> {
  /** Answers that are not failures (404 on remove, 304 on start): the value to return instead. */
  tolerate?: (f: EngineFault) => { value: T } | undefined;
  /** A more precise error than ENGINE_ERROR for some answers (409 on create -> NAME_TAKEN). */
  refine?: (f: EngineFault, err: unknown) => AppError | undefined;
}

/**
 * The one error path: an engine failure as AppError. ENGINE_UNREACHABLE (socket codes, naming
 * `endpoint`), the call's refinement, PORT_IN_USE, else ENGINE_ERROR with the engine's message and
 * HTTP status in details.statusCode. AppErrors pass through.
 */
export function wrapEngineError(endpoint: string, err: unknown, what: string, refine?: CallOptions<unknown>['refine']): AppError {
  if (err instanceof AppError) return err;
  const f = faultOf(err);
  if (f.code && UNREACHABLE_CODES.has(f.code)) {
    const hint =
      f.code === 'EACCES'
        ? 'run as root or add your user to the docker group (then log in again)'
        : 'start Docker (sudo bash scripts/ensure-docker.sh, or systemctl start docker), or set DOCKER_HOST';
    return new AppError('ENGINE_UNREACHABLE', `cannot reach the Docker engine at ${endpoint} (${f.code})`, { hint, cause: err });
  }
  const refined = refine?.(f, err);
  if (refined) return refined;
  if (isPortConflict(f)) {
    return new AppError('PORT_IN_USE', `${what}: its host port is taken (${f.message})`, {
      hint: 'free the port, or remove the agent and create it again to get another port',
      cause: err,
    });
  }
  return new AppError('ENGINE_ERROR', `${what}: ${f.message}`, {
    hint: 'see the Docker engine message above',
    cause: err,
    details: f.status ? { statusCode: f.status } : undefined,
  });
}

/**
 * Run one engine call: log start / ok (with the time taken, ms) / failed with the short id under
 * `nexus:engine`, tolerate what is fine, wrap the rest (wrapEngineError).
 * @throws AppError ENGINE_UNREACHABLE | PORT_IN_USE | ENGINE_ERROR | the call's refinement
 */
export async function engineCall<T>(endpoint: string, op: string, target: string | undefined, fn: () => Promise<T>, opts: CallOptions<T> = {}): Promise<T> {
  const id = target === undefined ? undefined : shortId(target);
  const what = id === undefined ? op : `${op} ${id}`;
  const started = Date.now();
  log.debug({ op, id }, 'start');
  try {
    const out = await fn();
    log.debug({ op, id, ms: Date.now() - started }, 'ok');
    return out;
  } catch (err) {
    const f = faultOf(err);
    const fine = err instanceof AppError ? undefined : opts.tolerate?.(f);
    if (fine) {
      log.debug({ op, id, ms: Date.now() - started, status: f.status, tolerated: f.message }, 'ok');
      return fine.value;
    }
    const wrapped = wrapEngineError(endpoint, err, what, opts.refine);
    log.debug({ op, id, ms: Date.now() - started, status: f.status, code: wrapped.code, err: f.message }, 'failed');
    throw wrapped;
  }
}

/** `work`, or a socket-like ETIMEDOUT error after `ms` (the ping's bound). */
export async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Label filters of the Engine API (`filters={"label":["k=v",...]}`). Pure. */
export function labelFilters(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`);
}

/** GET /version's answer (the fields read). */
export interface RawVersion {
  Version: string;
  ApiVersion: string;
  Os: string;
  Arch: string;
}

/** GET /version -> EngineInfo. Pure. */
export function engineInfoOf(v: RawVersion): EngineInfo {
  return { version: v.Version, apiVersion: v.ApiVersion, os: v.Os, arch: v.Arch };
}

/** One item of GET /containers/json (the fields read). */
export interface RawContainer {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  State: string;
  Status: string;
  Labels?: Record<string, string> | null;
  NetworkSettings?: { Networks?: Record<string, { IPAddress?: string }> | null } | null;
}

/** One item of GET /containers/json -> ContainerInfo (name without its leading slash, addresses by network). Pure. */
export function containerInfoOf(c: RawContainer): ContainerInfo {
  return {
    id: c.Id,
    name: (c.Names[0] ?? '').replace(/^\//, ''),
    image: c.Image,
    imageId: c.ImageID,
    state: c.State as ContainerState,
    status: c.Status,
    labels: c.Labels ?? {},
    health: healthOfStatus(c.Status),
    addresses: Object.fromEntries(Object.entries(c.NetworkSettings?.Networks ?? {}).flatMap(([net, n]) => (n.IPAddress ? [[net, n.IPAddress]] : []))),
  };
}

/** The health in a container list's status text ("Up 3 minutes (unhealthy)", "(health: starting)"). */
export function healthOfStatus(status: string): NonNullable<ContainerInfo['health']> {
  const m = /\((healthy|unhealthy|health: starting)\)/.exec(status);
  return !m ? 'none' : m[1] === 'health: starting' ? 'starting' : (m[1] as 'healthy' | 'unhealthy');
}
