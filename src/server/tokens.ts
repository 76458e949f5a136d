import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { statSync } from 'node:fs';
import { link, lstat, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import lockfile from 'proper-lockfile';
import writeFileAtomic from 'write-file-atomic';
import { systemClock, type Clock } from '../clock.js';
import { AppError, messageOf } from '../errors.js';

/**
 * Manager bearer tokens (issue 9 §3): a bootstrap admin token from `NEXUS_MANAGER_TOKEN`, and
 * signed JWTs (HS256, RFC 7519) minted by `createToken`, revocable by `revokeToken`.
 *
 * Files, all under `<workspace>/.nexus/` and all mode 0600:
 * - `manager.key`: the 32-byte HMAC key, created on first use (atomically, never overwritten);
 *   a key file readable by group or others is refused (`MANAGER_KEY_INSECURE`).
 * - `tokens.json`: what was issued (jti, scope, label, sub, issuedAt, expiresAt): never a token.
 * - `revoked-tokens.json`: the revoked jtis with their expiry.
 * Both lists are rewritten atomically under one lock (proper-lockfile, like src/registry/local.ts)
 * and pruned of expired entries on every write.
 */

/** Scopes, weakest first: viewer reads; operator also starts, stops, scales, executes; admin also creates, removes and manages tokens. */
export const SCOPES = ['viewer', 'operator', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** True when a holder of `have` may call a route that needs `need`. */
export function scopeAllows(have: Scope, need: Scope): boolean {
  return SCOPES.indexOf(have) >= SCOPES.indexOf(need);
}

/** True for `viewer`, `operator` or `admin`. */
export function isScope(s: unknown): s is Scope {
  return typeof s === 'string' && (SCOPES as readonly string[]).includes(s);
}

/** Who a request is, once its token checked out. `jti` is `bootstrap` for NEXUS_MANAGER_TOKEN. */
export interface Principal {
  jti: string;
  scope: Scope;
  sub?: string | undefined;
}

/** What `tokens.json` keeps per issued token (never the token itself). Times are ISO-8601. */
export interface TokenInfo {
  jti: string;
  scope: Scope;
  label?: string | undefined;
  sub?: string | undefined;
  issuedAt: string;
  expiresAt: string;
  revoked: boolean;
}

export interface TokenDeps {
  /** The workspace folder; files go to `<workspace>/.nexus/`. */
  workspace: string;
  /** Stamps iat/exp and decides expiry (default: the system clock). */
  clock?: Clock;
}

/** The bootstrap token's jti, in logs and rate-limit keys. */
export const BOOTSTRAP_JTI = 'bootstrap';
/** Shortest NEXUS_MANAGER_TOKEN accepted (characters): shorter ones are guessable. */
export const MIN_BOOTSTRAP_LENGTH = 16;
const ISSUER = 'nexus-manager';
const AUDIENCE = 'nexus-manager/api';
const KEY_BYTES = 32;
/** Longest --ttl: a year. */
export const MAX_TTL_MS = 365 * 24 * 3600_000;

/** `<workspace>/.nexus`: the manager's private files (key, token lists), mode 0700. */
export const nexusDir = (workspace: string): string => join(workspace, '.nexus');
/** `<workspace>/.nexus/manager.key`: the 32-byte token-signing key. */
export const keyPath = (workspace: string): string => join(nexusDir(workspace), 'manager.key');
const issuedPath = (workspace: string): string => join(nexusDir(workspace), 'tokens.json');
const revokedPath = (workspace: string): string => join(nexusDir(workspace), 'revoked-tokens.json');

const UNIT_MS = { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 } as const;

/**
 * A token lifetime like `30m`, `24h`, `7d` or `90s` in milliseconds. Strict: one positive integer
 * and one unit (s, m, h, d); at most 365 days.
 * @throws AppError USAGE on anything else (`1.5h`, `1h30m`, `100`, `-1h`, `0m`).
 */
export function parseTtl(ttl: string): number {
  const m = /^([1-9][0-9]{0,6})([smhd])$/.exec(ttl);
  const ms = m ? Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS] : NaN;
  if (!m || ms > MAX_TTL_MS) {
    throw new AppError('USAGE', `invalid token ttl '${ttl}'`, { hint: 'use a whole number and one unit, e.g. 30m, 24h or 7d (at most 365d)' });
  }
  return ms;
}

async function ensureDir(workspace: string): Promise<string> {
  const dir = nexusDir(workspace);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** Check an existing key file: a regular file of 32 bytes, no group/other permission bits. */
async function readKeyFile(file: string): Promise<Uint8Array> {
  const st = await lstat(file);
  if (!st.isFile()) throw new AppError('MANAGER_KEY_INSECURE', `${file} is not a regular file`, { hint: 'remove it; the manager creates a new key (tokens signed with the old one stop working)' });
  if ((st.mode & 0o077) !== 0) {
    throw new AppError('MANAGER_KEY_INSECURE', `${file} has mode ${(st.mode & 0o777).toString(8)}; the signing key must be 0600`, { hint: `chmod 600 ${file}` });
  }
  const key = await readFile(file);
  if (key.length !== KEY_BYTES) throw new AppError('MANAGER_KEY_INSECURE', `${file} holds ${key.length} bytes, not a ${KEY_BYTES}-byte key`, { hint: 'remove it; the manager creates a new key (tokens signed with the old one stop working)' });
  return new Uint8Array(key);
}

/**
 * The workspace's token-signing key (32 random bytes, `<workspace>/.nexus/manager.key`, 0600).
 * Created on first use: written to a temporary file with mode 0600 and hard-linked into place, so
 * a reader never sees a partial key and two processes racing end up with the same one.
 * @throws AppError MANAGER_KEY_INSECURE when the file is readable by others, not a file, or not 32 bytes.
 */
export async function loadOrCreateKey(workspace: string): Promise<Uint8Array> {
  const file = keyPath(workspace);
  try {
    return await readKeyFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const dir = await ensureDir(workspace);
  const tmp = join(dir, `.manager.key.${process.pid}.${randomUUID()}`);
  await writeFile(tmp, randomBytes(KEY_BYTES), { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  return readKeyFile(file);
}

interface IssuedFile {
  tokens: Omit<TokenInfo, 'revoked'>[];
}
interface RevokedFile {
  revoked: { jti: string; expiresAt: string }[];
}

async function readJson<T>(file: string, empty: T): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return empty;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new AppError('REGISTRY_CORRUPT', `${file} is not valid JSON: ${messageOf(err)}`, { hint: 'fix or remove the file (removing tokens.json forgets labels; removing revoked-tokens.json un-revokes tokens)' });
  }
}

/** Read-modify-write both token lists under the `.nexus` lock; expired entries are dropped. */
async function withTokenFiles<T>(deps: TokenDeps, fn: (issued: IssuedFile, revoked: RevokedFile) => T): Promise<T> {
  const dir = await ensureDir(deps.workspace);
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(dir, { lockfilePath: join(dir, 'tokens.lock'), stale: 10_000, retries: { retries: 100, factor: 1.3, minTimeout: 10, maxTimeout: 250, randomize: true } });
  } catch (err) {
    throw new AppError('REGISTRY_LOCKED', `${dir}/tokens.lock is held by another process`, { hint: 'wait for the other token command to finish, then retry', cause: err });
  }
  try {
    const now = (deps.clock ?? systemClock).now();
    const live = (e: { expiresAt: string }) => Date.parse(e.expiresAt) > now;
    const issued = await readJson<IssuedFile>(issuedPath(deps.workspace), { tokens: [] });
    const revoked = await readJson<RevokedFile>(revokedPath(deps.workspace), { revoked: [] });
    issued.tokens = issued.tokens.filter(live);
    revoked.revoked = revoked.revoked.filter(live);
    const result = fn(issued, revoked);
    await writeFileAtomic(issuedPath(deps.workspace), JSON.stringify(issued, null, 2) + '\n', { mode: 0o600 });
    await writeFileAtomic(revokedPath(deps.workspace), JSON.stringify(revoked, null, 2) + '\n', { mode: 0o600 });
    return result;
  } finally {
    await release();
  }
}

export interface CreateTokenInput {
  scope: Scope;
  /** Lifetime like `24h` or `30m` (parseTtl); default `24h`. */
  ttl?: string | undefined;
  /** A human note shown by listTokens (at most 100 characters). */
  label?: string | undefined;
  /** Who the token is for (JWT `sub`, at most 100 characters). */
  sub?: string | undefined;
}

export interface CreatedToken {
  /** The signed JWT: shown once, stored nowhere. */
  token: string;
  jti: string;
  scope: Scope;
  /** ISO-8601. */
  expiresAt: string;
}

/**
 * Mint a signed token (JWT HS256 with jti, scope, iat, exp, iss, aud and optional sub/label) and
 * record it (without the token) in `tokens.json`. For `agent token create` and POST /api/v1/tokens.
 * @throws AppError USAGE on a bad scope, ttl or label; MANAGER_KEY_INSECURE on a loose key file.
 */
export async function createToken(input: CreateTokenInput, deps: TokenDeps): Promise<CreatedToken> {
  if (!isScope(input.scope)) throw new AppError('USAGE', `unknown scope '${String(input.scope)}'`, { hint: `use one of ${SCOPES.join(', ')}` });
  for (const [k, v] of [['label', input.label], ['sub', input.sub]] as const) {
    if (v !== undefined && (typeof v !== 'string' || v.length > 100 || /[\u0000-\u001f]/.test(v))) {
      throw new AppError('USAGE', `invalid token ${k}`, { hint: `a ${k} is at most 100 printable characters` });
    }
  }
  const ttlMs = parseTtl(input.ttl ?? '24h');
  const key = await loadOrCreateKey(deps.workspace);
  const now = (deps.clock ?? systemClock).now();
  const iat = Math.floor(now / 1000);
  const exp = iat + Math.floor(ttlMs / 1000);
  const jti = randomUUID();
  const jwt = new SignJWT({ scope: input.scope, ...(input.label ? { label: input.label } : {}) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setJti(jti)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(exp);
  if (input.sub) jwt.setSubject(input.sub);
  const token = await jwt.sign(key);
  const info = { jti, scope: input.scope, label: input.label, sub: input.sub, issuedAt: new Date(iat * 1000).toISOString(), expiresAt: new Date(exp * 1000).toISOString() };
  await withTokenFiles(deps, (issued) => void issued.tokens.push(info));
  return { token, jti, scope: input.scope, expiresAt: info.expiresAt };
}

export type RevokeTokenInput = { jti: string; token?: undefined } | { token: string; jti?: undefined };

/**
 * Revoke a token by its jti or by the token itself (its signature is checked first). Revoking an
 * already revoked token is a no-op (`alreadyRevoked: true`). For `agent token revoke` and
 * DELETE /api/v1/tokens/{jti}.
 * @throws AppError TOKEN_NOT_FOUND when no live issued token has that jti; UNAUTHORIZED when the given token is not ours or has expired.
 */
export async function revokeToken(input: RevokeTokenInput, deps: TokenDeps): Promise<{ jti: string; alreadyRevoked: boolean }> {
  let jti = input.jti;
  if (input.token !== undefined) jti = (await verifySigned(input.token, await loadOrCreateKey(deps.workspace), deps.clock ?? systemClock)).principal.jti;
  if (typeof jti !== 'string' || !/^[A-Za-z0-9-]{1,64}$/.test(jti)) throw new AppError('USAGE', 'invalid token id', { hint: 'pass the jti shown by `agent token list`' });
  const id = jti;
  return withTokenFiles(deps, (issued, revoked) => {
    const known = issued.tokens.find((t) => t.jti === id);
    if (!known) throw new AppError('TOKEN_NOT_FOUND', `no live token with id ${id}`, { hint: 'list tokens with `agent token list`; expired tokens need no revoking' });
    const alreadyRevoked = revoked.revoked.some((r) => r.jti === id);
    if (!alreadyRevoked) revoked.revoked.push({ jti: id, expiresAt: known.expiresAt });
    return { jti: id, alreadyRevoked };
  });
}

/** Every live (unexpired) issued token, oldest first, with its revoked flag; never the token itself. */
export async function listTokens(deps: TokenDeps): Promise<TokenInfo[]> {
  const now = (deps.clock ?? systemClock).now();
  const issued = await readJson<IssuedFile>(issuedPath(deps.workspace), { tokens: [] });
  const revoked = new Set((await readJson<RevokedFile>(revokedPath(deps.workspace), { revoked: [] })).revoked.map((r) => r.jti));
  return issued.tokens.filter((t) => Date.parse(t.expiresAt) > now).map((t) => ({ ...t, revoked: revoked.has(t.jti) }));
}

const unauthorized = (message: string) => new AppError('UNAUTHORIZED', message, { hint: 'send Authorization: Bearer <token> with a live token (`agent token create`)' });

/** A verified JWT: who it is and when it expires (the `exp` claim, seconds since the epoch). */
interface Verified {
  principal: Principal;
  exp: number;
}

async function verifySigned(token: string, key: Uint8Array, clock: Clock): Promise<Verified> {
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: ['HS256'],
      issuer: ISSUER,
      audience: AUDIENCE,
      requiredClaims: ['jti', 'iat', 'exp'],
      currentDate: new Date(clock.now()),
    });
    if (!isScope(payload.scope) || typeof payload.jti !== 'string') throw unauthorized('the token carries no valid scope');
    return { principal: { jti: payload.jti, scope: payload.scope, sub: payload.sub }, exp: payload.exp! };
  } catch (err) {
    if (err instanceof AppError) throw err;
    // jose's messages name the failed check, never the token
    if (err instanceof joseErrors.JWTExpired) throw unauthorized('the token has expired');
    throw unauthorized('invalid token');
  }
}

/** Signed tokens remembered once verified (a bounded cache: the oldest entry goes first). */
const VERIFIED_CACHE_SIZE = 1024;

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Checks bearer tokens for the manager: the bootstrap token (timing-safe) or a signed JWT that
 * is live and not revoked. Revocations written by another process (the CLI) are seen on the next
 * check: the revoked list is re-read whenever its file changes (inode, mtime, size; one stat per
 * check, synchronous: a few µs, no thread-pool round trip on the gateway's hot path).
 * A signature is checked once per token: the last VERIFIED_CACHE_SIZE (1024) valid tokens are kept
 * with their principal and `exp`, so a token seen again costs a map lookup, an expiry check against
 * the clock (jose's rule: expired once `exp` <= now in whole seconds) and the revocation check.
 * The signing key never changes while the process runs (loadOrCreateKey never overwrites it).
 */
export class TokenVerifier {
  private readonly bootstrap: Buffer | undefined;
  private readonly clock: Clock;
  private key: Promise<Uint8Array> | undefined;
  private revoked = new Set<string>();
  private revokedStamp = '';
  private readonly verified = new Map<string, Verified>();

  /**
   * @param bootstrapToken NEXUS_MANAGER_TOKEN, if set (at least MIN_BOOTSTRAP_LENGTH characters).
   * @throws AppError CONFIG_INVALID when the bootstrap token is too short.
   */
  constructor(private readonly workspace: string, opts: { bootstrapToken?: string | undefined; clock?: Clock | undefined } = {}) {
    if (opts.bootstrapToken !== undefined && opts.bootstrapToken.length < MIN_BOOTSTRAP_LENGTH) {
      throw new AppError('CONFIG_INVALID', `NEXUS_MANAGER_TOKEN is shorter than ${MIN_BOOTSTRAP_LENGTH} characters`, { hint: 'use a random value, e.g. `openssl rand -hex 32`' });
    }
    this.bootstrap = opts.bootstrapToken ? digest(opts.bootstrapToken) : undefined;
    this.clock = opts.clock ?? systemClock;
  }

  /** Load (or create) the signing key now, so a bad key file stops the start instead of a request. */
  async init(): Promise<void> {
    await this.signingKey();
  }

  private signingKey(): Promise<Uint8Array> {
    this.key ??= loadOrCreateKey(this.workspace).catch((err: unknown) => {
      this.key = undefined;
      throw err;
    });
    return this.key;
  }

  private async refreshRevoked(): Promise<void> {
    const file = revokedPath(this.workspace);
    let stamp = 'none';
    try {
      const st = statSync(file);
      stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (stamp === this.revokedStamp) return;
    const data = await readJson<RevokedFile>(file, { revoked: [] });
    this.revoked = new Set(data.revoked.map((r) => r.jti));
    this.revokedStamp = stamp;
  }

  /**
   * The principal of a bearer token.
   * @throws AppError UNAUTHORIZED when the token is empty, unknown, badly signed, expired or revoked.
   */
  async verify(token: string): Promise<Principal> {
    if (!token) throw unauthorized('missing bearer token');
    if (this.bootstrap && timingSafeEqual(digest(token), this.bootstrap)) return { jti: BOOTSTRAP_JTI, scope: 'admin' };
    let v = this.verified.get(token);
    if (v && Math.floor(this.clock.now() / 1000) >= v.exp) {
      this.verified.delete(token);
      v = undefined;
    }
    if (!v) {
      v = await verifySigned(token, await this.signingKey(), this.clock);
      if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, v);
    }
    const principal = v.principal;
    await this.refreshRevoked();
    if (this.revoked.has(principal.jti)) throw unauthorized('the token has been revoked');
    return principal;
  }
}
