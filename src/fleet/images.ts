import { copyFile, cp, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { AppError, messageOf } from '../errors.js';
import { LABEL, workspaceLabels } from '../conventions.js';
import { hostBusybox, hostNodeImageTag, hostNodeVersion } from '../engine/rootfs.js';
import type { ImageInfo } from '../engine/engine.js';
import { agentImageRef, baseImageRef, HOST_NODE_IMAGE_REPO } from '../names.js';
import { agentDir, DOCKERFILE_AGENT, NODE_MODULES, RUNTIME_IMAGE_FILES } from '../paths.js';
import type { AgentRecord } from '../registry/registry.js';
import { readManifest, type AgentManifest } from '../scaffold/render.js';
import { TOOL_WORKER_CONDITION } from '../runtime/contract.js';
import { bundleAgent, bundleRuntime, RUNTIME_EXTERNAL_PACKAGES, runtimeSourceHash, sha256, type AgentBundle } from './bundle.js';
import { copyLayer, installDependencies, missingHostLibraries, readAgentPackage, type DependencySet } from './dependencies.js';
import type { FleetDeps } from './context.js';

/** The base image in use: reference, id, what it was built FROM, and whether this call built it. */
export interface BaseImage {
  ref: string;
  id: string;
  from: string;
  built: boolean;
}

/** An agent image: reference, id, source hash, whether this call built it. */
export interface AgentImage {
  ref: string;
  id: string;
  sourceHash: string;
  built: boolean;
  /** The agent's own memory limit in MiB from agent.json `resources.memoryMiB` (default: the workspace's). */
  memoryMiB?: number;
  /** Its dependency layer, when it ships packages esbuild cannot inline. */
  dependencies?: DependencyImage;
}

/** The image holding an agent's production node_modules (base + one COPY), cached by its lockfile. */
export interface DependencyImage {
  ref: string;
  id: string;
  /** Packages kept external, e.g. ["sharp"]. */
  external: string[];
  built: boolean;
}

/** Copy what a package needs at run time (package.json and its .js/.mjs/.cjs files; no maps, no types). */
async function copyPackageFiles(from: string, to: string): Promise<void> {
  await cp(from, to, {
    recursive: true,
    filter: (src) => !/\.(?:map|d\.ts|d\.mts|d\.cts|md|ts)$/.test(src) && !src.includes(`${sep}node_modules${sep}`, from.length),
  });
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-build-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A public image to use: `wanted` when present or pullable; else, as `images.offline` says
 * (auto: fall back with a one-line notice; always: skip the pull; never: fail), the image
 * `offline.build()` makes on this host from its own binaries. Returns the reference to use.
 * @throws AppError BASE_IMAGE_FAILED (offline: never and the pull failed), ENGINE_UNREACHABLE
 */
export async function pullOrBuildOffline(deps: FleetDeps, wanted: string, offline: { build: () => Promise<string>; notice: string }): Promise<string> {
  const { engine, config } = deps;
  if (config.images.offline !== 'always') {
    if (await engine.inspectImage(wanted)) return wanted;
    try {
      deps.onProgress?.({ phase: 'pull', message: `pulling ${wanted}` });
      await engine.pullImage(wanted);
      return wanted;
    } catch (err) {
      if (err instanceof AppError && err.code === 'ENGINE_UNREACHABLE') throw err;
      if (config.images.offline === 'never') {
        throw new AppError('BASE_IMAGE_FAILED', `cannot pull ${wanted}: ${messageOf(err)}`, {
          hint: `check your registry access, or set images.offline: auto (or NEXUS_OFFLINE=auto) to build it from this host`,
          cause: err,
        });
      }
      deps.onProgress?.({ phase: 'notice', message: `could not pull ${wanted}; ${offline.notice}` });
    }
  }
  return offline.build();
}

/** The FROM image of the base: the configured public image, or the host-runtime image offline. */
async function resolveFromImage(deps: FleetDeps): Promise<string> {
  const hostRef = `${HOST_NODE_IMAGE_REPO}:${hostNodeImageTag()}`;
  return pullOrBuildOffline(deps, deps.config.images.base, {
    notice: `building the base image offline from this host's Node runtime (v${hostNodeVersion()})`,
    build: async () => {
      await deps.engine.ensureHostNodeImage(hostRef);
      return hostRef;
    },
  });
}

/**
 * Ensure the base image `nexus-delta-agent:<tag>` exists and matches the current runtime bundle,
 * Dockerfile.agent and configured FROM image (label runtime-hash); build it otherwise.
 * @throws AppError BASE_IMAGE_FAILED, ENGINE_UNREACHABLE
 */
export async function ensureBaseImage(deps: FleetDeps, opts: { force?: boolean } = {}): Promise<BaseImage> {
  const { engine, config } = deps;
  const ref = baseImageRef(config.images.tag);
  const dockerfile = await readFile(DOCKERFILE_AGENT, 'utf8');
  const start = await readFile(join(RUNTIME_IMAGE_FILES, 'start.mjs'), 'utf8');
  const hash = sha256(await runtimeSourceHash(), dockerfile, config.images.base, config.images.offline);
  const existing = await engine.inspectImage(ref);
  if (!opts.force && existing && existing.labels[LABEL.runtimeHash] === hash) {
    return { ref, id: existing.id, from: existing.labels[LABEL.baseFrom] ?? '', built: false };
  }
  const busybox = await hostBusybox();
  const from = await resolveFromImage(deps);
  const runtime = await bundleRuntime();
  deps.onProgress?.({ phase: 'build', message: `building base image ${ref} FROM ${from}` });
  const img = await withTempDir(async (ctx) => {
    const pkg = join(ctx, 'runtime/node_modules/@nexus-delta/runtime');
    await mkdir(pkg, { recursive: true });
    await writeFile(join(pkg, 'index.mjs'), runtime.code);
    await writeFile(join(pkg, 'worker.mjs'), runtime.worker);
    await writeFile(join(pkg, 'define.mjs'), runtime.define);
    for (const dep of RUNTIME_EXTERNAL_PACKAGES) await copyPackageFiles(join(NODE_MODULES, dep), join(ctx, 'runtime/node_modules', dep));
    await writeFile(
      join(pkg, 'package.json'),
      // tool workers run with --conditions=nexus-tool-worker (see src/runtime/invoke.ts)
      JSON.stringify({
        name: '@nexus-delta/runtime',
        type: 'module',
        main: 'index.mjs',
        exports: { '.': { [TOOL_WORKER_CONDITION]: './define.mjs', default: './index.mjs' } },
      }),
    );
    await writeFile(join(ctx, 'runtime/start.mjs'), start);
    await copyFile(busybox, join(ctx, 'busybox'));
    await copyFile(DOCKERFILE_AGENT, join(ctx, 'Dockerfile'));
    try {
      return await engine.buildImage({
        contextDir: ctx,
        tag: ref,
        buildArgs: { BASE_IMAGE: from },
        labels: { [LABEL.managed]: 'true', [LABEL.kind]: 'base-image', [LABEL.runtimeHash]: hash, [LABEL.baseFrom]: from },
      });
    } catch (err) {
      if (err instanceof AppError && err.code === 'BUILD_FAILED') {
        throw new AppError('BASE_IMAGE_FAILED', err.message, { hint: err.hint, cause: err });
      }
      throw err;
    }
  });
  if (existing && existing.id !== img.id) await engine.removeImage(existing.id).catch(() => undefined);
  return { ref, id: img.id, from, built: true };
}

/** Revision of the dependency layer's layout: bump it when ensureDependencyImage changes what it ships. */
const DEPS_LAYER_REVISION = 'r1';

/** `nexus-delta-agent-<slug>-deps:<tag>`: the dependency layer image of an agent. */
export function dependencyImageRef(slug: string, tag: string, project?: string): string {
  return agentImageRef(`${slug}-deps`, tag, project);
}

/**
 * Ensure the dependency image of an agent: the base plus one COPY of the production node_modules
 * its external packages need (and, on the offline base, one COPY of the host libraries their
 * native addons need besides node's), rebuilt only when the lockfile (or the base) changes: label
 * deps-hash = sha256(lockfile hash, external packages, base id).
 * @throws AppError BUILD_FAILED (docker build error)
 */
async function ensureDependencyImage(deps: FleetDeps, record: AgentRecord, base: BaseImage, set: DependencySet): Promise<DependencyImage> {
  const { engine, config } = deps;
  const ref = dependencyImageRef(record.slug, config.images.tag, config.project);
  const hash = sha256(dependencyKey(set), base.id);
  const existing = await engine.inspectImage(ref);
  if (existing && existing.labels[LABEL.depsHash] === hash) return { ref, id: existing.id, external: set.external, built: false };
  deps.onProgress?.({ agent: record.slug, phase: 'build', message: `building the dependency layer ${ref} (${set.external.join(', ')})` });
  const img = await withTempDir(async (ctx) => {
    await copyLayer(set.nodeModules, set.layerPackages, join(ctx, 'node_modules'));
    let dockerfile = `FROM ${base.ref}\nCOPY node_modules /app/agent/node_modules\n`;
    // the offline base holds only the libraries node links: add the host's others that native addons need
    if (base.from.startsWith(`${HOST_NODE_IMAGE_REPO}:`)) {
      const libs = await missingHostLibraries(join(ctx, 'node_modules'));
      for (const lib of libs) {
        await mkdir(join(ctx, 'rootfs', dirname(lib)), { recursive: true });
        await copyFile(await realpath(lib), join(ctx, 'rootfs', lib));
      }
      if (libs.length) dockerfile += 'COPY rootfs/ /\n';
    }
    await writeFile(join(ctx, 'Dockerfile'), dockerfile);
    return engine.buildImage({
      contextDir: ctx,
      tag: ref,
      labels: { ...config.labels, ...workspaceLabels(config), [LABEL.kind]: 'deps-image', [LABEL.agent]: record.slug, [LABEL.depsHash]: hash },
    });
  });
  if (existing && existing.id !== img.id) await engine.removeImage(existing.id).catch(() => undefined);
  return { ref, id: img.id, external: set.external, built: true };
}

/** What an agent's image is made from, and the hash that names it (see agentSource). */
export interface AgentSource {
  manifest: AgentManifest;
  bundle: AgentBundle;
  /** The installed dependencies, when the agent has a package.json with dependencies. */
  dependencies?: DependencySet;
  /** sha256(bundle, manifest, base id, dependency layer key): the agent image's source-hash label. */
  sourceHash: string;
}

/** Cache key of a dependency layer on a given base: layout revision, lockfile, external packages. */
function dependencyKey(set: DependencySet): string {
  return sha256(DEPS_LAYER_REVISION, set.lockHash, JSON.stringify(set.external));
}

/**
 * Everything an agent image is made from, without building an image: its manifest, its npm
 * dependencies installed on the host (cached by lockfile, see installDependencies), its bundle with
 * the packages esbuild cannot inline left external, and the source hash over all of it. The one
 * place this hash is computed (ensureAgentImage labels images with it; desire.ts compares it).
 * @throws AppError BUILD_FAILED (missing source, a dependency that cannot be installed or loaded, compile error)
 */
export async function agentSource(deps: FleetDeps, record: AgentRecord, base: { id: string }): Promise<AgentSource> {
  const { config } = deps;
  const dir = agentDir(config.workspace, record.slug);
  if (!existsSync(dir)) {
    throw new AppError('BUILD_FAILED', `source folder ${dir} of agent '${record.name}' is missing`, {
      hint: `restore it, or remove the agent: agent remove --name ${record.name}`,
    });
  }
  const manifest = await readManifest(dir);
  const pkg = await readAgentPackage(dir);
  let set: DependencySet | undefined;
  if (pkg) {
    deps.onProgress?.({ agent: record.slug, phase: 'dependencies' });
    set = await installDependencies(config.workspace, dir, pkg, manifest.dependencies?.external ?? []);
  }
  deps.onProgress?.({ agent: record.slug, phase: 'bundle' });
  const bundle = await bundleAgent(dir, set ? { external: set.external, nodeModules: set.nodeModules } : {});
  const layerKey = set?.external.length ? dependencyKey(set) : '';
  const sourceHash = sha256(bundle.hash, JSON.stringify(manifest), base.id, layerKey);
  return { manifest, bundle, ...(set ? { dependencies: set } : {}), sourceHash };
}

/**
 * Ensure the agent's image exists for its current source (agentSource): when it ships packages
 * esbuild cannot inline, their dependency layer first (ensureDependencyImage), then
 * `FROM <deps or base>` + one COPY of the code, built only when the source hash differs from the
 * existing image's source-hash label. Everything that can fail (install, load check, bundle) runs
 * before an image is tagged or a container touched.
 * @throws AppError BUILD_FAILED (missing source, a dependency that cannot be installed or loaded, compile error, docker build error)
 */
export async function ensureAgentImage(deps: FleetDeps, record: AgentRecord, base: BaseImage): Promise<AgentImage> {
  const { engine, config } = deps;
  const { manifest, bundle, dependencies: set, sourceHash } = await agentSource(deps, record, base);
  const ref = agentImageRef(record.slug, config.images.tag, config.project);
  const existing = await engine.inspectImage(ref);
  const memory = manifest.resources?.memoryMiB ? { memoryMiB: manifest.resources.memoryMiB } : {};
  if (existing && existing.labels[LABEL.sourceHash] === sourceHash) {
    return { ref, id: existing.id, sourceHash, built: false, ...memory };
  }
  const layer = set?.external.length ? await ensureDependencyImage(deps, record, base, set) : undefined;
  const parent = layer ?? base;
  deps.onProgress?.({ agent: record.slug, phase: 'build', message: `building ${ref}` });
  const img: ImageInfo = await withTempDir(async (ctx) => {
    const app = join(ctx, 'app');
    for (const [rel, code] of bundle.files) {
      await mkdir(dirname(join(app, rel)), { recursive: true });
      await writeFile(join(app, rel), code);
    }
    await writeFile(join(app, 'agent.json'), JSON.stringify(manifest, null, 2));
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${parent.ref}\nCOPY app/ /app/agent/\n`);
    return engine.buildImage({
      contextDir: ctx,
      tag: ref,
      labels: {
        ...config.labels,
        ...workspaceLabels(config),
        [LABEL.kind]: 'agent-image',
        [LABEL.agent]: record.slug,
        [LABEL.sourceHash]: sourceHash,
        ...(memory.memoryMiB ? { [LABEL.memoryMiB]: String(memory.memoryMiB) } : {}),
        'org.opencontainers.image.title': record.name,
        'org.opencontainers.image.version': manifest.version,
      },
    });
  });
  if (existing && existing.id !== img.id) await engine.removeImage(existing.id).catch(() => undefined);
  return { ref, id: img.id, sourceHash, built: true, ...memory, ...(layer ? { dependencies: layer } : {}) };
}
