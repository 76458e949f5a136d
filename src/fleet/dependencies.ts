import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { promisify } from 'node:util';
import { AppError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import { parseLdd } from '../engine/rootfs.js';
import { sha256 } from './bundle.js';

const log = logger('deps');
const run = promisify(execFile);

/**
 * An agent's npm dependencies (agents/<slug>/package.json + package-lock.json), installed on the
 * host for the container's platform. Nothing here runs inside a container build.
 */

/** The platform of every agent container: the base image is Linux x64 with glibc (Debian, or the host's libraries offline). */
export const CONTAINER_PLATFORM = { os: 'linux', cpu: 'x64', libc: 'glibc' } as const;

/**
 * Files that esbuild cannot inline: native addons, WebAssembly, and data read at run time by path.
 * A package holding one (or depending on one that does) stays external and ships in node_modules.
 */
const RUNTIME_FILE_RE = /\.(node|wasm|traineddata|traineddata\.gz|so(\.\d+)*|dylib|dll)$/i;

/** An agent's package.json, as far as the build reads it. */
export interface AgentPackage {
  dependencies: Record<string, string>;
}

/** What the dependency layer of one agent holds. */
export interface DependencySet {
  /** sha256 (hex) of the lockfile and the container platform: the layer's cache key. */
  lockHash: string;
  /** Host folder with the production install (`<workspace>/.nexus/deps/<hash>/node_modules`), for bundling. */
  nodeModules: string;
  /** Top-level packages kept external (detected, plus the manifest's `dependencies.external`), sorted. */
  external: string[];
  /** Package folders (relative to node_modules) the external packages need at run time, sorted. */
  layerPackages: string[];
}

/**
 * Read agents/<slug>/package.json. Returns undefined when there is none or it has no dependencies.
 * @throws AppError BUILD_FAILED when it is not valid JSON or `dependencies` is not an object of strings.
 */
export async function readAgentPackage(dir: string): Promise<AgentPackage | undefined> {
  const path = join(dir, 'package.json');
  if (!existsSync(path)) return undefined;
  let pkg: { dependencies?: unknown };
  try {
    pkg = JSON.parse(await readFile(path, 'utf8')) as { dependencies?: unknown };
  } catch (err) {
    throw new AppError('BUILD_FAILED', `cannot read ${path}: ${messageOf(err)}`, { hint: `fix the JSON in ${path}` });
  }
  const deps = pkg.dependencies ?? {};
  if (typeof deps !== 'object' || deps === null || Array.isArray(deps) || Object.values(deps).some((v) => typeof v !== 'string')) {
    throw new AppError('BUILD_FAILED', `${path}: "dependencies" must map package names to version ranges`, { hint: `fix ${path}` });
  }
  const entries = deps as Record<string, string>;
  return Object.keys(entries).length ? { dependencies: entries } : undefined;
}

/**
 * The package an npm error names, from its output, e.g. `notarget No matching version found for
 * sharp@0.0.1` -> `sharp@0.0.1`, `404 'nope@*' is not in this registry` -> `nope@*`. Pure.
 */
export function npmErrorPackage(output: string): string | undefined {
  const patterns = [
    /No matching version found for (\S+?)\.?$/m,
    /'([^']+)' is not in this registry/m,
    /404 Not Found - GET \S+\/(@?[^/\s]+(?:%2f[^/\s]+)?)\s/im,
    /Cannot find module '([^']+)'/m,
  ];
  for (const re of patterns) {
    const m = re.exec(output);
    if (m?.[1]) return decodeURIComponent(m[1]);
  }
  return undefined;
}

/** The first `npm error` line that says what went wrong (not the log-file pointer). Pure. */
export function npmErrorReason(output: string): string {
  const useful = output
    .split('\n')
    .filter((l) => /^npm (error|ERR!)/.test(l))
    .map((l) => l.replace(/^npm (error|ERR!)\s*(code \S+)?/, '').trim())
    .filter((l) => l && !/complete log of this run|^A complete log/.test(l));
  return useful[0] ?? (output.trim().split('\n')[0] || 'npm failed');
}

async function npm(args: string[], cwd: string): Promise<void> {
  try {
    await run('npm', args, { cwd, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, npm_config_update_notifier: 'false' } });
  } catch (err) {
    const out = `${(err as { stderr?: string }).stderr ?? ''}\n${(err as { stdout?: string }).stdout ?? ''}`;
    const pkg = npmErrorPackage(out);
    throw new AppError('BUILD_FAILED', `cannot install ${pkg ? `'${pkg}'` : 'the dependencies'} of ${cwd}: ${npmErrorReason(out) || messageOf(err)}`, {
      hint: pkg
        ? `fix or remove '${pkg}' in ${join(cwd, 'package.json')} (npm view ${pkg.replace(/@[^@/]*$/, '')} versions), then build again`
        : `run 'npm install' in ${cwd} to see the whole error`,
      details: { package: pkg, cwd },
      cause: err,
    });
  }
}

/** Whether package-lock.json records exactly the dependencies package.json asks for. */
async function lockfileCurrent(dir: string, pkg: AgentPackage): Promise<boolean> {
  const lockPath = join(dir, 'package-lock.json');
  if (!existsSync(lockPath)) return false;
  try {
    const lock = JSON.parse(await readFile(lockPath, 'utf8')) as { packages?: Record<string, { dependencies?: Record<string, string> }> };
    const locked = lock.packages?.['']?.dependencies ?? {};
    const want = pkg.dependencies;
    return Object.keys(locked).length === Object.keys(want).length && Object.entries(want).every(([k, v]) => locked[k] === v);
  } catch {
    return false;
  }
}

/**
 * Make agents/<slug>/package-lock.json match package.json (npm on the host, from its cache when
 * it can; no install scripts). Returns the lockfile's content.
 * @throws AppError BUILD_FAILED naming the package npm could not resolve.
 */
export async function ensureLockfile(dir: string, pkg: AgentPackage): Promise<string> {
  if (!(await lockfileCurrent(dir, pkg))) {
    log.debug({ dir }, 'writing package-lock.json');
    await npm(['install', '--package-lock-only', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], dir);
  }
  return readFile(join(dir, 'package-lock.json'), 'utf8');
}

/** The folder of package `name` as Node resolves it from the package folder `from` (both relative to node_modules). */
function resolvePackage(root: string, from: string, name: string): string | undefined {
  let at = from;
  for (;;) {
    const candidate = at ? join(at, 'node_modules', name) : name;
    if (existsSync(join(root, candidate, 'package.json'))) return candidate;
    if (!at) return undefined;
    // from a/node_modules/b up to a, then to the top
    const idx = at.lastIndexOf(`${sep}node_modules${sep}`);
    at = idx >= 0 ? at.slice(0, idx) : '';
  }
}

async function packageJson(root: string, rel: string): Promise<{ dependencies?: Record<string, string>; optionalDependencies?: Record<string, string>; gypfile?: boolean }> {
  return JSON.parse(await readFile(join(root, rel, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
}

/** Package folders (relative to `root`) that `top` needs at run time: itself and its dependencies, transitively. */
export async function packageClosure(root: string, top: string): Promise<string[]> {
  const seen = new Set<string>();
  const queue = [top];
  while (queue.length) {
    const rel = queue.pop()!;
    if (seen.has(rel)) continue;
    seen.add(rel);
    const pkg = await packageJson(root, rel);
    // optional dependencies for other platforms are simply not installed
    for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
      const found = resolvePackage(root, rel, dep);
      if (found) queue.push(found);
    }
  }
  return [...seen].sort();
}

/** Whether a package folder holds files esbuild cannot inline (native addon, wasm, run-time data, node-gyp build). */
export async function hasRuntimeFiles(pkgDir: string): Promise<boolean> {
  const pkg = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8')) as { gypfile?: boolean };
  if (pkg.gypfile || existsSync(join(pkgDir, 'binding.gyp'))) return true;
  const entries = await readdir(pkgDir, { recursive: true, withFileTypes: true });
  return entries.some((e) => e.isFile() && RUNTIME_FILE_RE.test(e.name) && !relative(pkgDir, join(e.parentPath, e.name)).split(sep).includes('node_modules'));
}

/**
 * Which top-level dependencies must stay external, and the package folders they need: a package
 * is external when it, or anything it depends on, holds run-time files (see hasRuntimeFiles), or
 * when the manifest names it. `root` is an installed node_modules folder.
 * @throws AppError BUILD_FAILED when the manifest names a package that is not a dependency.
 */
export async function planExternal(root: string, top: readonly string[], named: readonly string[] = []): Promise<{ external: string[]; layerPackages: string[] }> {
  const unknown = named.filter((n) => !top.includes(n));
  if (unknown.length) {
    throw new AppError('BUILD_FAILED', `agent.json names external package(s) that are not dependencies: ${unknown.join(', ')}`, {
      hint: 'add them to the agent\'s package.json dependencies, or remove them from "dependencies.external" in agent.json',
    });
  }
  const flagged = new Map<string, boolean>();
  const isFlagged = async (rel: string): Promise<boolean> => {
    if (!flagged.has(rel)) flagged.set(rel, await hasRuntimeFiles(join(root, rel)));
    return flagged.get(rel)!;
  };
  const external: string[] = [];
  const layer = new Set<string>();
  for (const name of top) {
    const rel = resolvePackage(root, '', name);
    if (!rel) continue; // an optional dependency not installed for this platform
    const closure = await packageClosure(root, rel);
    let keep = named.includes(name);
    for (const p of closure) if (!keep && (await isFlagged(p))) keep = true;
    if (!keep) continue;
    external.push(name);
    for (const p of closure) layer.add(p);
  }
  return { external: external.sort(), layerPackages: [...layer].sort() };
}

/**
 * Install an agent's production dependencies on the host for the container platform, once per
 * lockfile: `npm ci --omit=dev --ignore-scripts` into `<workspace>/.nexus/deps/<hash>/` (written
 * to a temporary sibling, renamed when complete, so an interrupted install is never reused).
 * Then find the external packages and check that each loads (on a Linux x64 host).
 * @throws AppError BUILD_FAILED naming the package that cannot be installed or loaded, with npm's reason.
 */
export async function installDependencies(workspace: string, dir: string, pkg: AgentPackage, namedExternal: readonly string[] = []): Promise<DependencySet> {
  const lock = await ensureLockfile(dir, pkg);
  const lockHash = sha256(lock, JSON.stringify(CONTAINER_PLATFORM));
  const target = join(workspace, '.nexus', 'deps', lockHash.slice(0, 16));
  const nodeModules = join(target, 'node_modules');
  if (!existsSync(join(target, '.complete'))) {
    const tmp = `${target}.${process.pid}.tmp`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    try {
      await cp(join(dir, 'package.json'), join(tmp, 'package.json'));
      await writeFile(join(tmp, 'package-lock.json'), lock);
      const p = CONTAINER_PLATFORM;
      await npm(['ci', '--omit=dev', '--omit=peer', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', `--os=${p.os}`, `--cpu=${p.cpu}`, `--libc=${p.libc}`], tmp);
      await writeFile(join(tmp, '.complete'), new Date().toISOString());
      await rm(target, { recursive: true, force: true });
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }
  const { external, layerPackages } = await planExternal(nodeModules, Object.keys(pkg.dependencies), namedExternal);
  if (process.platform === CONTAINER_PLATFORM.os && process.arch === CONTAINER_PLATFORM.cpu) await checkLoads(target, external);
  return { lockHash, nodeModules, external, layerPackages };
}

/**
 * Import each external package once, in a child Node process, from the install folder: a native
 * addon that does not fit the platform, or a package that needed an install script, fails here.
 * @throws AppError BUILD_FAILED naming the first package that does not load, and why.
 */
export async function checkLoads(installDir: string, packages: readonly string[]): Promise<void> {
  for (const name of packages) {
    const code = `await import(${JSON.stringify(name)})`;
    try {
      await run(process.execPath, ['--input-type=module', '-e', code], { cwd: installDir, timeout: 60_000 });
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? messageOf(err);
      const reason = stderr.split('\n').find((l) => /Error|error:/.test(l))?.trim() ?? stderr.trim().split('\n')[0] ?? 'failed';
      throw new AppError('BUILD_FAILED', `dependency '${name}' cannot be loaded: ${reason}`, {
        hint: `'${name}' may need an install script or a prebuilt binary for linux-x64-glibc; pick a version that ships one, or remove it from the agent's package.json`,
        details: { package: name },
        cause: err,
      });
    }
  }
}

/** Copy the layer's packages from `nodeModules` into `dest` (a node_modules folder), nested folders as they were. Returns the bytes copied. */
export async function copyLayer(nodeModules: string, layerPackages: readonly string[], dest: string): Promise<number> {
  let bytes = 0;
  for (const rel of layerPackages) {
    const from = join(nodeModules, rel);
    await mkdir(dirname(join(dest, rel)), { recursive: true });
    await cp(from, join(dest, rel), {
      recursive: true,
      // nested node_modules are packages of their own: copied only when in the layer
      filter: (src) => !relative(from, src).split(sep).includes('node_modules'),
    });
  }
  for (const e of await readdir(dest, { recursive: true, withFileTypes: true })) if (e.isFile()) bytes += (await stat(join(e.parentPath, e.name))).size;
  return bytes;
}

const NATIVE_FILE_RE = /\.(node|so(\.\d+)*)$/;

/**
 * Host shared libraries the native files of a layer need that the offline base image lacks: the
 * offline base holds only what the host's `node` links (src/engine/rootfs.ts), so e.g. sharp's
 * libvips needs libresolv too. Libraries the layer ships itself are left out. Absolute host paths,
 * sorted; empty on a host that is not Linux.
 * @throws AppError BUILD_FAILED naming the native file whose library is missing on this host.
 */
export async function missingHostLibraries(layerDir: string): Promise<string[]> {
  if (process.platform !== 'linux') return [];
  const ldd = async (file: string): Promise<string[]> => parseLdd((await run('ldd', [file])).stdout);
  const inBase = new Set(await ldd(process.execPath));
  const needed = new Set<string>();
  for (const e of await readdir(layerDir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile() || !NATIVE_FILE_RE.test(e.name)) continue;
    const file = join(e.parentPath, e.name);
    let libs: string[];
    try {
      libs = await ldd(file);
    } catch (err) {
      throw new AppError('BUILD_FAILED', `native file ${relative(layerDir, file)} cannot be loaded: ${messageOf(err)}`, {
        hint: 'install the missing library on this host, or use a base image that has it (images.base)',
      });
    }
    for (const lib of libs) if (!lib.startsWith(layerDir) && !inBase.has(lib)) needed.add(lib);
  }
  return [...needed].sort();
}
