import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The tool's own install folder (holds agent-template/, Dockerfile.agent, src/runtime). */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
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
