import type { BuildOptions } from 'esbuild';

/**
 * esbuild options of the bundled CLI (`dist/cli.mjs` plus one chunk per dynamic import), shared by
 * scripts/build.ts and the test that runs the bundle (test/unit/built-cli.test.ts). Dependencies stay
 * in node_modules (`packages: 'external'`). `outdir` must sit inside the package: the bundle finds
 * agent-template/ and Dockerfile.agent by walking up from its own file (src/paths.ts).
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
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
  };
}
