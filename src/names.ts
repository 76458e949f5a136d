import { AppError } from './errors.js';

/**
 * Naming rules for agents and the Docker objects made for them (DESIGN.md "Vocabulary").
 * Slugs are DNS labels (RFC 1123): lowercase letters, digits and '-', starting with a letter.
 * The slug is kept to 40 characters so `nexus-agent-<slug>-<n>` stays within the 63 characters
 * of a DNS label (container names double as hostnames on Docker networks).
 */
export const MAX_SLUG_LENGTH = 40;
const NAME_RE = /^[A-Za-z][A-Za-z0-9 _.-]*$/;
const SLUG_RE = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

/** `DataAgent` -> `data-agent`, `HTTPServer` -> `http-server`, `My agent_2` -> `my-agent-2`. Pure. */
export function slugify(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/** Slugs the manager's API uses as fixed paths under /api/v1/agents/ (GET /agents/health, /agents/stream). */
export const RESERVED_SLUGS: ReadonlySet<string> = new Set(['health', 'stream']);

/**
 * Validate an agent's display name and return its slug.
 * @throws AppError NAME_INVALID with the rule that failed (also for a reserved slug, RESERVED_SLUGS).
 */
export function validateAgentName(name: string): string {
  const hint = 'use letters, digits, space, "_", "-" or ".", starting with a letter (e.g. DataAgent)';
  if (!name || !NAME_RE.test(name)) {
    throw new AppError('NAME_INVALID', `invalid agent name '${name}'`, { hint });
  }
  const slug = slugify(name);
  if (!SLUG_RE.test(slug)) throw new AppError('NAME_INVALID', `invalid agent name '${name}'`, { hint });
  if (slug.length > MAX_SLUG_LENGTH) {
    throw new AppError('NAME_INVALID', `agent name '${name}' is too long (slug '${slug}' has ${slug.length} characters, max ${MAX_SLUG_LENGTH})`, {
      hint: 'choose a shorter name',
    });
  }
  if (RESERVED_SLUGS.has(slug)) {
    throw new AppError('NAME_INVALID', `agent name '${name}' is reserved: GET /api/v1/agents/${slug} is a route of the manager`, {
      hint: 'choose another name (e.g. add a word: HealthAgent)',
    });
  }
  return slug;
}

export function isSlug(s: string): boolean {
  return SLUG_RE.test(s) && s.length <= MAX_SLUG_LENGTH;
}

/** Whether `s` is a valid agent display name (the rule validateAgentName applies, slug included). */
export function isAgentName(s: string): boolean {
  return NAME_RE.test(s) && isSlug(slugify(s));
}

/**
 * An agent's version: semver-like, `1`, `1.2`, `1.2.3`, optional leading `v`, optional
 * `-prerelease` and `+build` of [0-9A-Za-z.-] (semver.org 2.0.0 §9-10, relaxed on the core), at
 * most 64 characters. No spaces, quotes or newlines: it reaches cards, images and generated files.
 */
export const VERSION_RE = /^v?\d{1,9}(?:\.\d{1,9}){0,2}(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
export function isVersion(s: string): boolean {
  return s.length <= 64 && VERSION_RE.test(s);
}

/**
 * Validate an agent version (`create --agent-version`).
 * @throws AppError USAGE naming the rule (the value is not echoed).
 */
export function validateAgentVersion(version: string): string {
  if (!isVersion(version)) {
    throw new AppError('USAGE', '--agent-version must be a version such as 1.2.3 or 1.0.0-beta.1', {
      hint: 'use digits and dots, optionally -prerelease or +build (letters, digits, "." and "-"), at most 64 characters',
    });
  }
  return version;
}

/** Docker image tag grammar (distribution/reference): `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. */
export const DOCKER_TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
// distribution/reference grammar (reference.go): [domain/]path[:tag][@digest]
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9A-Fa-f:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const IMAGE_REF_RE = new RegExp(
  `^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`,
);

/** `host[:port]` of a registry: a DNS name or IP, optional port. */
const REGISTRY_HOST_RE = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/i;

/** Whether `host` is a registry address `host[:port]` (`--registry`). */
export function isRegistryHost(host: string): boolean {
  return REGISTRY_HOST_RE.test(host);
}

/**
 * Check `--registry HOST[:PORT]` before it is put in front of image names.
 * @throws AppError USAGE (the value is not echoed).
 */
export function validateRegistryHost(host: string): string {
  if (!isRegistryHost(host)) throw new AppError('USAGE', '--registry is not a registry address', { hint: 'use HOST or HOST:PORT, e.g. localhost:5000' });
  return host;
}

/** Whether `ref` is a Docker image reference (`[registry/]repo[:tag][@digest]`, at most 255 characters). */
export function isImageReference(ref: string): boolean {
  return ref.length <= 255 && IMAGE_REF_RE.test(ref);
}

/**
 * Optional project name (nexus.yaml `project`), like Compose's project name: it namespaces
 * container and image names so two workspaces on one engine can hold agents with the same slug.
 * Up to 12 characters of [a-z0-9-], so names stay within a DNS label.
 */
export const PROJECT_RE = /^[a-z][a-z0-9-]{0,11}$/;

function scoped(slug: string, project?: string): string {
  return project ? `${project}-${slug}` : slug;
}

/** Container name of an agent: `nexus-agent-<slug>`; replica n > 0: `nexus-agent-<slug>-<n>`. */
export function containerName(slug: string, replica = 0, project?: string): string {
  const base = `nexus-agent-${scoped(slug, project)}`;
  return replica > 0 ? `${base}-${replica}` : base;
}

/** Repository of the base image (tag from config). */
export const BASE_IMAGE_REPO = 'nexus-delta-agent';
/** Repository of the offline Node runtime image made from the host's node binary. */
export const HOST_NODE_IMAGE_REPO = 'nexus-delta-node';

export function agentImageRef(slug: string, tag: string, project?: string): string {
  return `nexus-delta-agent-${scoped(slug, project)}:${tag}`;
}

export function baseImageRef(tag: string): string {
  return `${BASE_IMAGE_REPO}:${tag}`;
}
