import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { isoNow, systemClock } from '../clock.js';
import { AppError } from '../errors.js';
import { logger } from '../log.js';
import { findRecord } from './replicas.js';
import type { FleetDeps } from './context.js';
import type { AgentRecord } from '../registry/registry.js';

/**
 * Per-agent connection tokens (issue 10 §5): what an agent presents in its HELLO on `/ws/agent`.
 *
 * - A token is 32 random bytes, base64url, prefixed `nxa_` (43 + 4 characters). It is shown once
 *   (the `create` result, `token rotate-agent`) and never logged.
 * - The registry keeps only its hash: `record.agentToken = {scheme: 'sha256', hash, issuedAt}`.
 *   A plain sha256 (no salt, no KDF) is enough for 256 random bits: nothing to brute-force, as
 *   for GitHub or npm access tokens; the scheme is named in the record so it can change later.
 * - The fleet must hand the token to the containers it starts, so the clear token also lives in
 *   `<workspace>/.nexus/agent-tokens/<slug>`: never in the registry, generated files, logs or a
 *   container's environment. Containers get the file mounted read-only (NEXUS_AGENT_TOKEN_FILE,
 *   src/fleet/containers.ts). The folder is 0700 (only its owner reaches the files on the host);
 *   the file is 0644 so the agent's user inside the container (uid 1000, or a mapped uid under
 *   rootless Docker, neither of which owns it) can read its mount. An agent on another host gets
 *   the token from the operator (NEXUS_AGENT_TOKEN or NEXUS_AGENT_TOKEN_FILE).
 * - Revoking removes the hash (and the file): no token of that agent is accepted any more.
 */

const log = logger('fleet');

/** How a record stores its connection token: the scheme and the hex digest, never the token. */
export interface AgentTokenHash {
  scheme: 'sha256';
  /** Lowercase hex, 64 characters. */
  hash: string;
  /** ISO-8601. */
  issuedAt: string;
}

/** The shape of a per-agent token: `nxa_` + 43 base64url characters (32 bytes). */
export const AGENT_TOKEN_RE = /^nxa_[A-Za-z0-9_-]{43}$/;

/** A fresh token: 32 bytes from the CSPRNG, base64url, `nxa_` prefix. */
export function newAgentToken(): string {
  return `nxa_${randomBytes(32).toString('base64url')}`;
}

/** sha256 (hex) of a token, what the record keeps. */
export function hashAgentToken(token: string, issuedAt: string): AgentTokenHash {
  return { scheme: 'sha256', hash: createHash('sha256').update(token, 'utf8').digest('hex'), issuedAt };
}

/** True when `token` matches the stored hash (constant-time compare of the digests); false when the record has none. */
export function agentTokenMatches(stored: AgentTokenHash | undefined, token: string): boolean {
  if (!stored || stored.scheme !== 'sha256' || typeof token !== 'string' || !AGENT_TOKEN_RE.test(token)) return false;
  const got = createHash('sha256').update(token, 'utf8').digest();
  const want = Buffer.from(stored.hash, 'hex');
  return want.length === got.length && timingSafeEqual(got, want);
}

/** `<workspace>/.nexus/agent-tokens/<slug>`: the clear token the fleet mounts into the containers it starts (0644 in a 0700 folder). */
export const agentTokenFile = (workspace: string, slug: string): string => join(workspace, '.nexus', 'agent-tokens', slug);

/** Mode of a token file: readable by the container's user through its read-only mount; the 0700 folder keeps other host users out. */
export const AGENT_TOKEN_FILE_MODE = 0o644;

async function writeTokenFile(workspace: string, slug: string, token: string): Promise<void> {
  const dir = join(workspace, '.nexus', 'agent-tokens');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  await writeFileAtomic(agentTokenFile(workspace, slug), `${token}\n`, { mode: AGENT_TOKEN_FILE_MODE });
}

/**
 * Before a container mounts `file` (a token file of `.nexus/agent-tokens/`): true when it holds a
 * token, after setting the modes above (files written before containers mounted them were 0600);
 * false when it is missing or holds no token (the container then starts without a link).
 */
export async function prepareTokenMount(file: string): Promise<boolean> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (!text || !AGENT_TOKEN_RE.test(text.trim())) return false;
  await chmod(dirname(file), 0o700);
  await chmod(file, AGENT_TOKEN_FILE_MODE);
  return true;
}

/** The clear token kept for the containers of `slug`, or undefined (none issued, revoked, or an agent created before tokens). */
export async function readAgentToken(workspace: string, slug: string): Promise<string | undefined> {
  const text = await readFile(agentTokenFile(workspace, slug), 'utf8').catch(() => undefined);
  const token = text?.trim();
  return token && AGENT_TOKEN_RE.test(token) ? token : undefined;
}

/**
 * Issue a new token for `slug` (create, rotate): writes the token file first, then the hash to the
 * registry, so a crash in between leaves an unusable file rather than a hash nobody holds.
 * Returns the clear token (show it once).
 */
export async function issueAgentToken(deps: Pick<FleetDeps, 'config' | 'registry' | 'clock'>, slug: string): Promise<string> {
  const token = newAgentToken();
  await writeTokenFile(deps.config.workspace, slug, token);
  await deps.registry.update(slug, { agentToken: hashAgentToken(token, isoNow(deps.clock ?? systemClock)) });
  log.debug({ agent: slug }, 'agent token issued');
  return token;
}

async function recordOf(deps: Pick<FleetDeps, 'registry'>, name: string): Promise<AgentRecord> {
  const rec = findRecord(await deps.registry.list(), name);
  if (!rec) throw new AppError('AGENT_NOT_FOUND', `no agent named '${name}'`, { hint: 'see `agent list`' });
  return rec;
}

/** What rotate returns: the new token, once. */
export interface RotatedAgentToken {
  agent: string;
  token: string;
  issuedAt: string;
}

/**
 * `agent token rotate-agent --name X` / `POST /api/v1/agents/{name}/token`: a new token replaces
 * the old one at once (connections already open stay until they close; a reconnect with the old
 * token is refused 4401). Restart the agent's containers to hand them the new one.
 * @throws AppError AGENT_NOT_FOUND.
 */
export async function rotateAgentToken(deps: Pick<FleetDeps, 'config' | 'registry' | 'clock'>, opts: { name: string }): Promise<RotatedAgentToken> {
  const rec = await recordOf(deps, opts.name);
  const token = await issueAgentToken(deps, rec.slug);
  const after = await deps.registry.get(rec.slug);
  return { agent: rec.slug, token, issuedAt: after?.agentToken?.issuedAt ?? '' };
}

/**
 * `agent token revoke-agent --name X` / `DELETE /api/v1/agents/{name}/token`: no token of this
 * agent is accepted any more (the hash and the token file are removed).
 * @throws AppError AGENT_NOT_FOUND.
 */
export async function revokeAgentToken(deps: Pick<FleetDeps, 'config' | 'registry'>, opts: { name: string }): Promise<{ agent: string; revoked: boolean }> {
  const rec = await recordOf(deps, opts.name);
  const had = rec.agentToken !== undefined;
  await deps.registry.update(rec.slug, { agentToken: undefined });
  await rm(agentTokenFile(deps.config.workspace, rec.slug), { force: true });
  return { agent: rec.slug, revoked: had };
}
