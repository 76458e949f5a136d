import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import yaml from 'js-yaml';
import * as z from 'zod';
import { AppError, messageOf } from '../errors.js';
import { DOCKER_TAG_RE, isImageReference, isSlug, PROJECT_RE } from '../names.js';
import { parsePortRange, type PortRange } from '../ports/allocate.js';
import { checkMarketplaceUrl } from '../marketplace/url.js';
import { AutoscaleSchema, type AutoscaleConfig } from '../supervisor/autoscale.js';

/** File name of the workspace configuration. */
export const CONFIG_FILE = 'nexus.yaml';

/** Docker label keys: reverse-DNS-like words (docs.docker.com "Docker object labels"), no spaces or `$`. */
const LABEL_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;

const portRangeSchema = z.union([
  z.string(),
  z.object({ from: z.number().int(), to: z.number().int() }),
]);

/** nexus.yaml, as users write it. Every field is optional; defaults below. */
export const configFileSchema = z
  .object({
    /** Namespaces container and image names (like a Compose project name). */
    project: z.string().regex(PROJECT_RE, 'must be 1-12 characters of a-z, 0-9 and -, starting with a letter').optional(),
    registry: z.enum(['local', 'firestore']).optional(),
    ports: z
      .object({
        range: portRangeSchema.optional(),
        bindAddress: z.string().optional(),
      })
      .strict()
      .optional(),
    images: z
      .object({
        /** Image the base image is built FROM (Dockerfile.agent's BASE_IMAGE build arg). */
        base: z.string().optional(),
        /** auto: pull BASE_IMAGE, fall back to the host's Node runtime; always: never pull; never: never fall back. */
        offline: z.enum(['auto', 'always', 'never']).optional(),
        tag: z.string().optional(),
      })
      .strict()
      .optional(),
    resources: z
      .object({
        memoryMiB: z.number().int().min(32).optional(),
        cpus: z.number().positive().max(64).optional(),
        pids: z.number().int().min(16).optional(),
      })
      .strict()
      .optional(),
    start: z
      .object({
        concurrency: z.number().int().min(1).max(64).optional(),
        healthTimeoutS: z.number().positive().max(600).optional(),
      })
      .strict()
      .optional(),
    /** Extra labels put on every container and image this workspace creates. */
    labels: z.record(z.string().regex(LABEL_KEY_RE, 'label keys are letters, digits, ".", "_", "/" and "-"'), z.string()).optional(),
    /** Where agent cards are registered. Prefer MARKETPLACE_API_KEY in the environment to apiKey here. */
    marketplace: z
      .object({ url: z.string().url().optional(), apiKey: z.string().min(1).optional(), timeoutMs: z.number().int().min(100).optional(), retries: z.number().int().min(0).max(10).optional() })
      .strict()
      .optional(),
    /** The Firestore registry (registry: firestore). */
    firestore: z
      .object({
        projectId: z.string().min(1).optional(),
        collectionPrefix: z.string().regex(/^[A-Za-z0-9_-]*$/, 'letters, digits, _ and - only').optional(),
        databaseId: z.string().min(1).optional(),
        timeoutMs: z.number().int().min(100).optional(),
      })
      .strict()
      .optional(),
    /** A router (nginx/traefik) in front of the agents: cards then advertise <url>/agents/<slug>. */
    router: z.object({ url: z.string().url() }).strict().optional(),
    /**
     * The manager the agents' containers dial (`/ws/agent`, issue 10 §5). Unset: `agent serve`
     * gives the containers it starts its own address when it listens on one they can reach.
     */
    manager: z.object({ url: z.string().optional() }).strict().optional(),
    /** Autoscaling by agent slug (the supervisor, src/supervisor/autoscale.ts); an agent's manifest may set its own. */
    autoscale: z.record(z.string().refine(isSlug, 'keys are agent slugs (a-z, 0-9 and -)'), AutoscaleSchema).optional(),
  })
  .strict();
export type ConfigFile = z.infer<typeof configFileSchema>;

/** The resolved configuration every command receives. */
export interface Config {
  /** Absolute path of the workspace folder. */
  workspace: string;
  /** Optional project name prefixed to container and image names. */
  project: string | undefined;
  registry: 'local' | 'firestore';
  ports: { range: PortRange; bindAddress: string };
  images: { base: string; offline: 'auto' | 'always' | 'never'; tag: string };
  /** Container limits: memory in MiB, CPUs as a fraction of cores, max processes. */
  resources: { memoryMiB: number; cpus: number; pids: number };
  start: { concurrency: number; healthTimeoutS: number };
  labels: Record<string, string>;
  /** Marketplace endpoint; `apiKey` is a secret: never log, print or store it. */
  marketplace: { url: string | undefined; apiKey: string | undefined; timeoutMs: number; retries: number };
  /** Public base URL of a router in front of the agents, if any. */
  routerUrl: string | undefined;
  /** Firestore registry settings; projectId is required when registry is firestore. */
  firestore: { projectId: string | undefined; collectionPrefix: string; databaseId: string | undefined; timeoutMs: number };
  /**
   * The manager URL the fleet gives the containers it starts (NEXUS_MANAGER_URL inside them), as
   * configured (nexus.yaml manager.url or env NEXUS_MANAGER_URL) or, when unset, set by `agent serve`
   * from the address it listens on (src/server/manager.ts). undefined: containers do not dial in.
   */
  manager: { url: string | undefined };
  /** Autoscaling by agent slug from nexus.yaml (validated; defaults applied). */
  autoscale?: Record<string, AutoscaleConfig> | undefined;
}

export const DEFAULTS = {
  registry: 'local',
  portRange: '8081-8180',
  bindAddress: '127.0.0.1',
  baseImage: 'node:20-bookworm-slim',
  offline: 'auto',
  tag: 'latest',
  memoryMiB: 128,
  cpus: 0.5,
  pids: 128,
  concurrency: 8,
  healthTimeoutS: 60,
} as const;

type Env = Record<string, string | undefined>;

/**
 * Check one setting taken from the environment (`envName`) or nexus.yaml (`fileField`).
 * @throws AppError CONFIG_INVALID naming where the value came from and the rule; the value itself
 *   is never echoed (some settings are secrets, and any value may hold control characters).
 */
function checkSetting(value: string, ok: (v: string) => boolean, from: { env: Env; envName: string; fileField: string }, rule: string, example: string): string {
  if (ok(value)) return value;
  const where = from.env[from.envName] !== undefined ? from.envName : `${from.fileField} in ${CONFIG_FILE}`;
  throw new AppError('CONFIG_INVALID', `${where} ${rule}`, { hint: `set ${where} to ${example}` });
}


/**
 * Merge a parsed nexus.yaml with the environment (environment wins) and defaults. Pure.
 * Environment: NEXUS_PROJECT, NEXUS_REGISTRY, NEXUS_PORT_RANGE ("8081-8180"), NEXUS_BIND_ADDRESS, NEXUS_BASE_IMAGE
 * (or BASE_IMAGE), NEXUS_OFFLINE (auto|always|never), NEXUS_IMAGE_TAG, MARKETPLACE_URL,
 * MARKETPLACE_API_KEY, NEXUS_ROUTER_URL, GOOGLE_CLOUD_PROJECT, NEXUS_FIRESTORE_PREFIX,
 * NEXUS_FIRESTORE_TIMEOUT_MS (FIRESTORE_EMULATOR_HOST is read by the Firestore client itself),
 * NEXUS_MANAGER_URL (the manager the agents' containers dial, http(s) or ws(s)).
 * Checked: the bind address is an IP address (node:net isIP), the image tag and base image follow
 * Docker's reference grammar (src/names.ts), timeouts are whole milliseconds, the router URL is
 * http(s).
 * @throws AppError CONFIG_INVALID naming the bad field (never echoing its value).
 */
export function resolveConfig(workspace: string, file: unknown, env: Env): Config {
  const parsed = configFileSchema.safeParse(file ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.join('.') || '(top level)';
    throw new AppError('CONFIG_INVALID', `${CONFIG_FILE}: ${where}: ${issue.message}`, {
      hint: `fix ${where} in ${join(workspace, CONFIG_FILE)}`,
    });
  }
  const f = parsed.data;
  const registry = env.NEXUS_REGISTRY ?? f.registry ?? DEFAULTS.registry;
  if (registry !== 'local' && registry !== 'firestore') {
    throw new AppError('CONFIG_INVALID', `NEXUS_REGISTRY must be local or firestore, got '${registry}'`, {
      hint: 'set NEXUS_REGISTRY=local or NEXUS_REGISTRY=firestore',
    });
  }
  const offline = env.NEXUS_OFFLINE ?? f.images?.offline ?? DEFAULTS.offline;
  if (offline !== 'auto' && offline !== 'always' && offline !== 'never') {
    throw new AppError('CONFIG_INVALID', `NEXUS_OFFLINE must be auto, always or never, got '${offline}'`, {
      hint: 'set NEXUS_OFFLINE=auto',
    });
  }
  const rawRange = env.NEXUS_PORT_RANGE ?? f.ports?.range ?? DEFAULTS.portRange;
  const range = typeof rawRange === 'string' ? parsePortRange(rawRange) : parsePortRange(`${rawRange.from}-${rawRange.to}`);
  const project = env.NEXUS_PROJECT ?? f.project;
  if (project !== undefined && !PROJECT_RE.test(project)) {
    throw new AppError('CONFIG_INVALID', `project '${project}' must be 1-12 characters of a-z, 0-9 and -, starting with a letter`, {
      hint: 'fix project in nexus.yaml or NEXUS_PROJECT',
    });
  }
  const bindAddress = checkSetting(env.NEXUS_BIND_ADDRESS ?? f.ports?.bindAddress ?? DEFAULTS.bindAddress, (v) => isIP(v) !== 0, { env, envName: 'NEXUS_BIND_ADDRESS', fileField: 'ports.bindAddress' }, 'must be an IP address', '127.0.0.1 (this machine only) or 0.0.0.0 (every interface)');
  // the tag and the base image reach a Dockerfile's FROM line: only Docker's reference grammar
  const tag = checkSetting(env.NEXUS_IMAGE_TAG ?? f.images?.tag ?? DEFAULTS.tag, (v) => DOCKER_TAG_RE.test(v), { env, envName: 'NEXUS_IMAGE_TAG', fileField: 'images.tag' }, 'must be a Docker image tag: 1-128 of A-Z a-z 0-9 _ . -, not starting with . or -', 'a tag such as latest or v2');
  const baseEnv = env.NEXUS_BASE_IMAGE !== undefined ? 'NEXUS_BASE_IMAGE' : 'BASE_IMAGE';
  const base = checkSetting(env.NEXUS_BASE_IMAGE ?? env.BASE_IMAGE ?? f.images?.base ?? DEFAULTS.baseImage, isImageReference, { env, envName: baseEnv, fileField: 'images.base' }, 'must be a Docker image reference ([registry/]name[:tag][@digest])', 'an image such as node:20-bookworm-slim');
  const firestoreTimeout = env.NEXUS_FIRESTORE_TIMEOUT_MS ?? String(f.firestore?.timeoutMs ?? 10_000);
  checkSetting(firestoreTimeout, (v) => /^\d{1,7}$/.test(v) && Number(v) >= 100, { env, envName: 'NEXUS_FIRESTORE_TIMEOUT_MS', fileField: 'firestore.timeoutMs' }, 'must be a whole number of milliseconds, 100 or more', 'a number of milliseconds such as 10000');
  const collectionPrefix = checkSetting(env.NEXUS_FIRESTORE_PREFIX ?? f.firestore?.collectionPrefix ?? 'nexus_', (v) => /^[A-Za-z0-9_-]*$/.test(v), { env, envName: 'NEXUS_FIRESTORE_PREFIX', fileField: 'firestore.collectionPrefix' }, 'must be letters, digits, _ and - only', 'a prefix such as nexus_');
  const routerUrl = env.NEXUS_ROUTER_URL ?? f.router?.url;
  if (routerUrl !== undefined) checkSetting(routerUrl, isHttpUrl, { env, envName: 'NEXUS_ROUTER_URL', fileField: 'router.url' }, 'must be an http(s) URL', 'the router\'s public URL, e.g. http://127.0.0.1:8088');
  const managerUrl = env.NEXUS_MANAGER_URL || f.manager?.url;
  if (managerUrl !== undefined) checkSetting(managerUrl, isManagerUrl, { env, envName: 'NEXUS_MANAGER_URL', fileField: 'manager.url' }, 'must be an http(s) or ws(s) URL with no query or credentials', "the manager's address as the containers reach it, e.g. http://host.docker.internal:8070");
  return {
    workspace,
    project,
    registry,
    ports: { range, bindAddress },
    images: { base, offline, tag },
    resources: {
      memoryMiB: f.resources?.memoryMiB ?? DEFAULTS.memoryMiB,
      cpus: f.resources?.cpus ?? DEFAULTS.cpus,
      pids: f.resources?.pids ?? DEFAULTS.pids,
    },
    start: {
      concurrency: f.start?.concurrency ?? DEFAULTS.concurrency,
      healthTimeoutS: f.start?.healthTimeoutS ?? DEFAULTS.healthTimeoutS,
    },
    labels: f.labels ?? {},
    marketplace: {
      url: env.MARKETPLACE_URL
        ? checkMarketplaceUrl(env.MARKETPLACE_URL, 'MARKETPLACE_URL')
        : f.marketplace?.url && checkMarketplaceUrl(f.marketplace.url, `${CONFIG_FILE} marketplace.url`),
      apiKey: env.MARKETPLACE_API_KEY ?? f.marketplace?.apiKey,
      timeoutMs: f.marketplace?.timeoutMs ?? 10_000,
      retries: f.marketplace?.retries ?? 4,
    },
    routerUrl: routerUrl?.replace(/\/+$/, ''),
    firestore: {
      projectId: f.firestore?.projectId ?? env.GOOGLE_CLOUD_PROJECT ?? env.GCLOUD_PROJECT,
      collectionPrefix,
      databaseId: f.firestore?.databaseId,
      timeoutMs: Number(firestoreTimeout),
    },
    manager: { url: managerUrl?.replace(/\/+$/, '') },
    ...(f.autoscale ? { autoscale: f.autoscale } : {}),
  };
}

/** Whether `v` is an http(s)/ws(s) URL with no credentials, query or fragment (the runtime appends /ws/agent to its path). */
function isManagerUrl(v: string): boolean {
  if (/[\s\u0000-\u001f\u007f]/.test(v)) return false;
  try {
    const u = new URL(v);
    return ['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol) && !u.username && !u.password && !u.search && !u.hash;
  } catch {
    return false;
  }
}

/** Whether `v` parses as an http: or https: URL with no control characters or spaces. */
function isHttpUrl(v: string): boolean {
  if (/[\s\u0000-\u001f\u007f]/.test(v)) return false;
  try {
    const u = new URL(v);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

/**
 * Load `<workspace>/nexus.yaml` (absent is fine) and resolve it against the environment.
 * @throws AppError CONFIG_INVALID on unreadable YAML or bad fields.
 */
export function loadConfig(workspace: string, env: Env = process.env): Config {
  const dir = resolve(workspace);
  const path = join(dir, CONFIG_FILE);
  let file: unknown = {};
  if (existsSync(path)) {
    try {
      file = yaml.load(readFileSync(path, 'utf8')) ?? {};
    } catch (err) {
      throw new AppError('CONFIG_INVALID', `${path}: not valid YAML: ${messageOf(err).split('\n')[0]}`, {
        hint: `fix the YAML syntax in ${path}`,
      });
    }
  }
  return resolveConfig(dir, file, env);
}
