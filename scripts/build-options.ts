import { isBuiltin } from 'node:module';
import type { BuildOptions, Plugin } from 'esbuild';

/**
 * Pure-JavaScript dependencies of quick commands, bundled into dist/ instead of loaded from
 * node_modules: the CLI's static graph (commander, zod, js-yaml), the local registry's writers
 * (proper-lockfile, write-file-atomic) and `create`'s templates (handlebars). pino is required
 * from node_modules on the first log line written (src/log.ts). Loading them from node_modules cost
 * ~100 ms per call (zod alone imports its ~50 locale files; each package is resolved, read and
 * compiled file by file); bundled, esbuild keeps only what the CLI uses. Their own dependencies
 * come with them. Every other package (dockerode, fastify, firebase-admin, native modules...)
 * stays in node_modules, loaded only by the chunk that needs it.
 */
export const BUNDLED_PACKAGES: readonly string[] = ['commander', 'zod', 'js-yaml', 'proper-lockfile', 'write-file-atomic', 'handlebars'];

/** `@scope/name/sub` -> `@scope/name`; `name/sub` -> `name`. */
function packageOf(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** Marks bare imports external, except BUNDLED_PACKAGES and whatever those packages import. */
const externals: Plugin = {
  name: 'nexus-externals',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (isBuiltin(args.path)) return { path: args.path, external: true };
      if (/[\\/]node_modules[\\/]/.test(args.importer)) return undefined; // a bundled package's own dependency
      return BUNDLED_PACKAGES.includes(packageOf(args.path)) ? undefined : { path: args.path, external: true };
    });
  },
};

/**
 * esbuild options of the bundled CLI (`dist/cli.mjs` plus one chunk per dynamic import), shared by
 * scripts/build.ts and the test that runs the bundle (test/unit/built-cli.test.ts). Dependencies stay
 * in node_modules except BUNDLED_PACKAGES. `outdir` must sit inside the package: the bundle finds
 * agent-template/ and Dockerfile.agent by walking up from its own file (src/paths.ts), and the
 * external packages in its node_modules.
 */
export function cliBuildOptions(outdir: string): BuildOptions {
  return {
    entryPoints: { cli: 'src/cli/main.ts' },
    outdir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    plugins: [externals],
    // CommonJS packages bundled into ESM still call require() for Node built-ins, and read
    // __filename / __dirname (write-file-atomic's temp names); only free uses are replaced (Node >= 20.11)
    banner: { js: "import { createRequire as __nexusCreateRequire } from 'node:module'; const require = __nexusCreateRequire(import.meta.url);" },
    define: { __filename: 'import.meta.filename', __dirname: 'import.meta.dirname' },
    // less source for V8 to scan and compile on each call; names are kept (stack traces, error names)
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: true,
    logLevel: 'warning',
  };
}
