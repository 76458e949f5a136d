import { AppError } from '../errors.js';
import { isSlug } from '../names.js';
import type { AgentTarget } from './model.js';

/**
 * Quoting for each language the generators write. Records are checked when they enter
 * (src/registry/record.ts), but the generators do not rely on it: each value is quoted by its
 * target's grammar, and what a grammar cannot express is refused with AppError USAGE naming the
 * file kind, the agent and the field (never silently dropped or mangled).
 */

/** C0/C1 control characters, DEL, and Unicode line/paragraph separators. */
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function refuse(target: string, what: string, why: string): AppError {
  return new AppError('USAGE', `cannot write ${target}: ${what} ${why}`, {
    hint: 'fix the agent record (agent registry export / import) or rename the agent; nothing was written',
  });
}

/**
 * Check what every generator derives names, hosts and paths from: the slug must be a slug
 * (src/names.ts: DNS label, so also a Compose service name, a Traefik router name and a path
 * segment) and the path must be `/agents/<slug>`.
 * @throws AppError USAGE otherwise.
 */
export function checkTarget(target: string, a: AgentTarget): void {
  if (typeof a.slug !== 'string' || !isSlug(a.slug)) throw refuse(target, `agent slug ${JSON.stringify(String(a.slug).slice(0, 60))}`, 'is not a slug (a-z, 0-9, "-")');
  if (a.path !== `/agents/${a.slug}`) throw refuse(target, `agent '${a.slug}'`, `has path ${JSON.stringify(a.path)} instead of /agents/${a.slug}`);
}

/**
 * A value as one nginx token (the tokenizer ngx_conf_read_token in ngx_conf_file.c): bare when
 * nothing in it ends or starts a token (whitespace, `;`, `{`, `}`, quotes, `\`, `#`), else
 * double-quoted with `\` and `"` escaped. `$` starts a variable in most directives and has no escape, so a literal `$` is refused,
 * as are control characters (a newline would end the directive).
 * @throws AppError USAGE naming `what`.
 */
export function nginxToken(value: string, what: string, opts: { variables?: boolean } = {}): string {
  if (CONTROL_RE.test(value)) throw refuse('the nginx configuration', what, 'contains a control character');
  if (!opts.variables && value.includes('$')) throw refuse('the nginx configuration', what, 'contains "$", which nginx would read as a variable');
  if (/^[^\s;{}"'\\#]+$/.test(value)) return value;
  return `"${value.replace(/[\\"]/g, '\\$&')}"`;
}

/** `value` as a literal inside an nginx (PCRE) regular expression. */
export function regexLiteral(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Text for a `#` comment (nginx, YAML): one line, control characters shown as `?`. Comments carry
 * no meaning, so nothing is refused.
 */
export function commentText(value: string): string {
  return value.replace(new RegExp(CONTROL_RE.source, 'g'), '?');
}

/**
 * A string as a Traefik rule argument (doc.traefik.io, "Routers: rule"): backtick-quoted, which has
 * no escapes, so a backtick or a control character in the value is refused.
 * @throws AppError USAGE naming `what`.
 */
export function traefikString(value: string, what: string): string {
  if (value.includes('`') || CONTROL_RE.test(value)) throw refuse('the Traefik rule', what, 'contains a backtick or a control character');
  return `\`${value}\``;
}

/**
 * A value Compose (and `docker stack deploy`) must take literally: `$` escaped as `$$`, as the
 * Compose Specification's interpolation section prescribes.
 */
export function composeLiteral(value: string): string {
  return value.replace(/\$/g, '$$$$');
}

/** Every value of a label map as a Compose literal. */
export function composeLiterals(values: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, composeLiteral(v)]));
}

/**
 * Inline Markdown text (CommonMark 0.31 §2.4 backslash escapes): one line (control characters and
 * line breaks become spaces, leading spaces are dropped, so no heading, list, fence or code block can start), every ASCII punctuation
 * character that has a meaning backslash-escaped, `<` and `&` as entities (no raw HTML).
 */
export function markdownInline(value: string): string {
  return value
    .replace(new RegExp(CONTROL_RE.source, 'g'), ' ')
    // leading spaces would make an indented code block (CommonMark §4.4)
    .trimStart()
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/[\\`*_{}[\]()#+\-.!|~>"'=]/g, '\\$&');
}

/** A Markdown code span (CommonMark §6.1) holding `value`: fenced by more backticks than it contains. */
export function markdownCode(value: string): string {
  const text = value.replace(new RegExp(CONTROL_RE.source, 'g'), ' ');
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}

/** A word for a POSIX shell command line: bare when plain, else single-quoted (`'` as `'\''`). */
export function shellWord(value: string): string {
  if (/^[A-Za-z0-9_./:=@-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
