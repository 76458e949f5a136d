import * as z from 'zod';
import { VERSION_HISTORY } from '../conventions.js';
import { AppError, type ErrorCode } from '../errors.js';
import { isAgentName, isSlug, isVersion, MAX_SLUG_LENGTH } from '../names.js';
import { HISTORY_EVENTS, type AgentRecord, type HistoryEvent } from './registry.js';

/** A capability or category token: what `planCapabilities` produces (lowercase, digits, `_`). */
const TOKEN_RE = /^[a-z][a-z0-9_]{0,39}$/;
/** Tool names as the runtime's defineTool enforces them (snake_case, 1-64 characters). */
const TOOL_NAME_RE = /^[a-z][a-z0-9_]{0,63}$/;

const toolSchema = z.object({
  name: z.string().regex(TOOL_NAME_RE, 'must be snake_case (a-z, 0-9, _), 1-64 characters'),
  description: z.string(),
  parameters: z.record(z.string(), z.unknown()),
});

/** One deployed version (src/fleet/rollout.ts): the image kept under its version tag for rollbacks. */
const versionSchema = z.object({
  version: z.string().refine(isVersion, 'must be a version such as 1.2.3'),
  image: z.object({ ref: z.string().min(1), id: z.string().min(1) }),
  sourceHash: z.string(),
  deployedAt: z.string(),
});

/** The marketplace listing; loose so fields added later (e.g. `pending`) survive a read/write. */
const marketplaceSchema = z.looseObject({
  id: z.string(),
  key: z.string(),
  url: z.string(),
  cardHash: z.string(),
  status: z.enum(['available', 'unavailable']),
  registeredAt: z.string(),
  /** A change the marketplace has not taken yet, retried by the next lifecycle command. */
  pending: z.enum(['unregister', 'unavailable', 'available']).optional(),
});

/**
 * The one schema of an agent record (see AgentRecord), enforced wherever a record enters the tool:
 * `registry import` files, `.nexus/registry.json` and Firestore documents. Names and slugs follow
 * src/names.ts (so a slug is a DNS label and can never be a path like `../x`), ports are TCP ports
 * 1-65535, versions follow VERSION_RE. Unknown top-level fields are kept (loose), so a newer
 * version's additions are not dropped when this version rewrites the file.
 */
export const agentRecordSchema = z.looseObject({
  name: z.string().refine(isAgentName, 'must be letters, digits, space, "_", "-" or ".", starting with a letter'),
  slug: z.string().refine(isSlug, `must be a slug: a-z, 0-9 and single "-", starting with a letter, at most ${MAX_SLUG_LENGTH} characters`),
  description: z.string(),
  capabilities: z.array(z.string().regex(TOKEN_RE, 'must be a capability (a-z, 0-9, _)')),
  category: z.string().regex(TOKEN_RE, 'must be a category (a-z, 0-9, _)'),
  model: z.string(),
  version: z.string().refine(isVersion, 'must be a version such as 1.2.3'),
  port: z.number().int('must be an integer').min(1, 'must be a port 1-65535').max(65535, 'must be a port 1-65535'),
  desired: z.enum(['running', 'stopped']),
  status: z.enum(['created', 'built', 'running', 'stopped', 'unhealthy', 'failed']),
  image: z.object({ ref: z.string(), id: z.string(), sourceHash: z.string(), builtAt: z.string() }).optional(),
  tools: z.array(toolSchema).optional(),
  versions: z.array(versionSchema).max(VERSION_HISTORY, `keeps at most ${VERSION_HISTORY} versions`).optional(),
  marketplace: marketplaceSchema.optional(),
  lastError: z.string().optional(),
  /** The per-agent connection token's hash (src/fleet/agent-tokens.ts): sha256 hex of the token, never the token. */
  agentToken: z.strictObject({ scheme: z.literal('sha256'), hash: z.string().regex(/^[0-9a-f]{64}$/, 'must be a sha256 hex digest'), issuedAt: z.string() }).optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

/** A value quoted for an error message: JSON-quoted (no raw control characters), at most 60 characters. */
function quoted(v: unknown): string {
  return JSON.stringify(typeof v === 'string' ? (v.length > 60 ? `${v.slice(0, 57)}...` : v) : String(v));
}

/**
 * Check one record. `where` names its place for the message (e.g. `.nexus/registry.json`).
 * Returns the record (unknown top-level fields kept).
 * @throws AppError `code` (REGISTRY_CORRUPT for stored records, USAGE for import files) naming the
 *   record (its slug, or its position when the slug is unusable) and the first bad field; the
 *   message never echoes a field's value except the slug.
 */
export function parseAgentRecord(data: unknown, where: string, code: ErrorCode, hint: string, position?: string | number): AgentRecord {
  const parsed = agentRecordSchema.safeParse(data);
  if (parsed.success) return parsed.data as AgentRecord;
  const slug = (data as { slug?: unknown } | null)?.slug;
  const which = typeof slug === 'string' && isSlug(slug) ? `agent '${slug}'` : position !== undefined ? `agent ${quoted(position)}` : `agent with slug ${quoted(slug)}`;
  const issue = parsed.error.issues[0]!;
  const field = issue.path.map(String).join('.') || '(record)';
  const value = issue.path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' && Object.hasOwn(v, k) ? (v as Record<PropertyKey, unknown>)[k] : undefined), data);
  const missing = value === undefined && issue.path.length > 0;
  const what = missing ? `required field '${field}' is missing` : `field '${field}': ${issue.message}`;
  throw new AppError(code, `${where}: ${which}: ${what}`, { hint, details: { field } });
}

/**
 * Check a record before a registry writes it, so a registry never stores what it would refuse to
 * read back. @throws AppError USAGE naming the record and field; nothing is written.
 */
export function checkRecordToWrite(record: AgentRecord): AgentRecord {
  return parseAgentRecord(record, 'refusing to write the record', 'USAGE', 'nothing was written; fix the value named above');
}

/** Longest `reason` a history entry keeps (characters). */
export const HISTORY_REASON_MAX = 500;

/**
 * Check a history entry before a registry appends it: a slug (src/names.ts), a known event, a
 * one-line reason (control characters replaced, at most HISTORY_REASON_MAX characters).
 * Returns the entry to store. @throws AppError USAGE naming the bad value; nothing is written.
 */
export function checkHistoryEntry(slug: string, entry: { event: HistoryEvent; reason?: string | undefined }): { event: HistoryEvent; reason?: string } {
  if (!isSlug(slug)) throw new AppError('USAGE', `refusing to write history: agent slug ${quoted(slug)} is not a slug`, { hint: 'nothing was written' });
  if (!(HISTORY_EVENTS as readonly string[]).includes(entry.event)) {
    throw new AppError('USAGE', `refusing to write history of '${slug}': unknown event ${quoted(entry.event)}`, { hint: `events: ${HISTORY_EVENTS.join(', ')}; nothing was written` });
  }
  if (entry.reason === undefined) return { event: entry.event };
  // eslint-disable-next-line no-control-regex
  const line = entry.reason.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return { event: entry.event, reason: line.length > HISTORY_REASON_MAX ? `${line.slice(0, HISTORY_REASON_MAX - 3)}...` : line };
}
