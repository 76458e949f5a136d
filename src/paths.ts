import { existsSync } from 'node:fs';
import { lstat, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppError } from './errors.js';
import { isSlug } from './names.js';

/**
 * The tool's own install folder (holds agent-template/, Dockerfile.agent, src/runtime): the nearest
 * folder above this module that has both package.json and agent-template/. Found by walking up
 * rather than a fixed `..`, because the bundled CLI runs this code from dist/chunks/ and the sources
 * from src/. @throws Error when no such folder exists (a broken install).
 */
export const PACKAGE_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'agent-template'))) return dir;
    if (dirname(dir) === dir) throw new Error(`cannot find the nexus-delta-agents install folder above ${from} (no package.json beside agent-template/)`);
  }
}
export const TEMPLATE_DIR = join(PACKAGE_ROOT, 'agent-template');
export const DOCKERFILE_AGENT = join(PACKAGE_ROOT, 'Dockerfile.agent');
export const RUNTIME_ENTRY = join(PACKAGE_ROOT, 'src', 'runtime', 'index.ts');
/** The tool worker's entry (a piscina worker thread; see src/runtime/invoke.ts). */
/** What agent modules import inside a tool worker: the authoring helpers only. */
export const RUNTIME_DEFINE_ENTRY = join(PACKAGE_ROOT, 'src', 'runtime', 'define.ts');
export const RUNTIME_WORKER_ENTRY = join(PACKAGE_ROOT, 'src', 'runtime', 'worker.ts');
export const RUNTIME_IMAGE_FILES = join(PACKAGE_ROOT, 'src', 'runtime', 'image');
export const NODE_MODULES = join(PACKAGE_ROOT, 'node_modules');

/** `<workspace>/agents/<slug>`: an agent's source folder. */
export function agentDir(workspace: string, slug: string): string {
  return join(workspace, 'agents', slug);
}

/**
 * The folder `remove --purge` may delete for `slug`: `<workspace>/agents/<slug>`, only when it is
 * strictly inside `<workspace>/agents/` once every symlink is resolved. Checked before anything is
 * removed. Returns undefined when the folder does not exist (nothing to delete).
 * @throws AppError USAGE when the slug is not a slug (`..`, `a/b`, absolute paths), or the folder is
 *   a symlink, not a folder, or resolves outside `<workspace>/agents/` (e.g. agents/ links elsewhere).
 */
export async function agentDirToPurge(workspace: string, slug: string): Promise<string | undefined> {
  const refuse = (why: string) =>
    new AppError('USAGE', `refusing to delete the source folder of agent ${JSON.stringify(slug.slice(0, 60))}: ${why}`, {
      hint: 'nothing was removed; delete the folder by hand if it really is the agent\'s, or remove the agent without --purge',
    });
  if (!isSlug(slug)) throw refuse('its slug is not a plain folder name');
  const root = resolve(workspace, 'agents');
  const dir = join(root, slug);
  const rel = relative(root, dir);
  if (rel !== slug || isAbsolute(rel)) throw refuse(`${dir} is not inside ${root}`);
  let st;
  try {
    st = await lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (st.isSymbolicLink()) throw refuse(`${dir} is a symbolic link`);
  if (!st.isDirectory()) throw refuse(`${dir} is not a folder`);
  const expected = join(await realpath(resolve(workspace)), 'agents', slug);
  if ((await realpath(dir)) !== expected) throw refuse(`${dir} resolves outside ${root}`);
  return dir;
}
