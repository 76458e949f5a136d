import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import * as esbuild from 'esbuild';
import { AppError } from '../errors.js';
import { NODE_MODULES, RUNTIME_DEFINE_ENTRY, RUNTIME_ENTRY, RUNTIME_WORKER_ENTRY } from '../paths.js';

/** One bundled JavaScript file and the sha256 (hex) of its content. */
export interface Bundle {
  code: string;
  hash: string;
}

const RUNTIME_PACKAGE = '@nexus-delta/runtime';
// CommonJS dependencies bundled into ESM still call require() for Node built-ins.
const ESM_REQUIRE_BANNER = "import { createRequire as __nexusCreateRequire } from 'node:module'; const require = __nexusCreateRequire(import.meta.url);";

export function sha256(...parts: (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

function formatEsbuildError(err: unknown): string {
  const errors = (err as { errors?: esbuild.Message[] }).errors;
  const first = errors?.[0];
  if (!first) return (err as Error).message;
  const loc = first.location ? `${first.location.file}:${first.location.line}:${first.location.column}: ` : '';
  return `${loc}${first.text}`;
}

/** esbuild options shared by the runtime and agent bundles: Node 20 ESM, in memory, whitespace and syntax minified. */
const BUNDLE_OPTIONS = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  write: false,
  logLevel: 'silent',
  legalComments: 'none',
  minifyWhitespace: true,
  minifySyntax: true,
} as const satisfies esbuild.BuildOptions;

async function bundle(opts: esbuild.BuildOptions): Promise<Bundle> {
  const out = await esbuild.build({ ...BUNDLE_OPTIONS, ...opts });
  const code = out.outputFiles![0]!.text;
  return { code, hash: sha256(code) };
}

/** npm packages bundled into the runtime: their versions are part of its source hash. */
const RUNTIME_DEPENDENCIES = ['fastify', 'ajv', 'prom-client', '@modelcontextprotocol/sdk', 'piscina', 'ws'];
/**
 * npm packages the runtime loads from node_modules instead of its bundle: piscina starts its
 * workers from its own dist/worker.js, which a bundle would not have.
 */
export const RUNTIME_EXTERNAL_PACKAGES = ['piscina'];

/**
 * sha256 of everything the runtime bundle is made from (src/runtime/** and the versions of the
 * packages bundled in), without bundling: cheap enough to check on every start.
 */
export async function runtimeSourceHash(): Promise<string> {
  const root = dirname(RUNTIME_ENTRY);
  const files = (await readdir(root, { recursive: true, withFileTypes: true }))
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath ?? (d as unknown as { path: string }).path, d.name))
    .sort();
  const parts: string[] = [];
  for (const f of files) parts.push(relative(root, f), await readFile(f, 'utf8'));
  for (const dep of RUNTIME_DEPENDENCIES) {
    const pkg = JSON.parse(await readFile(join(NODE_MODULES, dep, 'package.json'), 'utf8')) as { version: string };
    parts.push(dep, pkg.version);
  }
  return sha256(...parts);
}

/**
 * The agent runtime for the base image: src/runtime (with fastify, ajv, prom-client; the MCP SDK loaded lazily) as one ESM
 * file (`code`, the package's index.mjs), its tool worker (`worker`, worker.mjs beside it), and
 * `define` (define.mjs: defineAgent, defineTool, ToolInputError only), what agent modules get in a
 * tool worker so each worker does not load fastify, ajv and prom-client.
 * piscina stays external (RUNTIME_EXTERNAL_PACKAGES). `hash` covers both.
 */
export async function bundleRuntime(): Promise<Bundle & { worker: string; define: string }> {
  try {
    const main = await bundle({ entryPoints: [RUNTIME_ENTRY], banner: { js: ESM_REQUIRE_BANNER }, external: RUNTIME_EXTERNAL_PACKAGES });
    const worker = await bundle({ entryPoints: [RUNTIME_WORKER_ENTRY], banner: { js: ESM_REQUIRE_BANNER } });
    const define = await bundle({ entryPoints: [RUNTIME_DEFINE_ENTRY] });
    return { code: main.code, worker: worker.code, define: define.code, hash: sha256(main.hash, worker.hash, define.hash) };
  } catch (err) {
    throw new AppError('BASE_IMAGE_FAILED', `cannot bundle the agent runtime: ${formatEsbuildError(err)}`, {
      hint: 'reinstall the tool (npm ci)',
    });
  }
}

/** One agent bundled: output files by path relative to /app/agent (agent.mjs, chunks/*.mjs) and the sha256 over all of them. */
export interface AgentBundle {
  files: Map<string, string>;
  hash: string;
}

/** What an agent's bundle leaves out: packages shipped in its node_modules layer, and where its dependencies are installed. */
export interface AgentBundleOptions {
  /** Package names kept external (resolved at run time from /app/agent/node_modules). */
  external?: readonly string[];
  /** The host folder holding the agent's installed dependencies (searched before the tool's own). */
  nodeModules?: string;
}

/**
 * One agent's source (`<dir>/src/index.ts` and what it imports, its npm dependencies included,
 * except `opts.external`) as ESM: `agent.mjs` plus one chunk per dynamic `import()`, so a tool that
 * loads a heavy module on its first call keeps it out of the idle agent's memory. The runtime
 * package stays external (the base image provides it).
 * @throws AppError BUILD_FAILED with the first compile error as file:line:col.
 */
export async function bundleAgent(dir: string, opts: AgentBundleOptions = {}): Promise<AgentBundle> {
  try {
    const out = await esbuild.build({
      ...BUNDLE_OPTIONS,
      entryPoints: { agent: join(dir, 'src', 'index.ts') },
      splitting: true,
      outdir: '/out',
      chunkNames: 'chunks/[name]-[hash]',
      outExtension: { '.js': '.mjs' },
      // error locations read agents/<slug>/src/... from the workspace
      absWorkingDir: join(dir, '..', '..'),
      external: [RUNTIME_PACKAGE, ...(opts.external ?? [])],
      nodePaths: [...(opts.nodeModules ? [opts.nodeModules] : []), NODE_MODULES],
      banner: { js: ESM_REQUIRE_BANNER },
      // CommonJS packages bundled in (typescript) read these; only free uses are replaced (Node >= 20.11)
      define: { __filename: 'import.meta.filename', __dirname: 'import.meta.dirname' },
    });
    const files = new Map<string, string>();
    for (const f of [...out.outputFiles].sort((a, b) => a.path.localeCompare(b.path))) files.set(relative('/out', f.path), f.text);
    return { files, hash: sha256(...[...files].flat()) };
  } catch (err) {
    throw new AppError('BUILD_FAILED', `cannot bundle ${dir}: ${formatEsbuildError(err)}`, {
      hint: 'fix the error in the agent source, then build again',
    });
  }
}
