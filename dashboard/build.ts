/**
 * Build the dashboard (issue 11): bundle dashboard/src/main.js (preact + htm) with esbuild into
 * `<outdir>/app.js` (minified, ES2020, one file), and copy index.html and styles.css beside it.
 * Run by scripts/build.ts (so `npm ci` and `npm run build` produce dist/dashboard/) and by the
 * browser tests. Returns the files written with their sizes in bytes.
 */
import { copyFile, mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const HERE = dirname(fileURLToPath(import.meta.url));

export async function buildDashboard(outdir: string): Promise<Record<string, number>> {
  await mkdir(outdir, { recursive: true });
  await build({
    entryPoints: [join(HERE, 'src', 'main.js')],
    outfile: join(outdir, 'app.js'),
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    platform: 'browser',
    legalComments: 'none',
    logLevel: 'warning',
  });
  for (const f of ['index.html', 'styles.css']) await copyFile(join(HERE, f), join(outdir, f));
  const sizes: Record<string, number> = {};
  for (const f of ['app.js', 'index.html', 'styles.css']) sizes[f] = (await stat(join(outdir, f))).size;
  return sizes;
}
