import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, type Metafile } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBuildOptions } from '../../scripts/build-options.js';
import { PACKAGE_ROOT } from '../../src/paths.js';

// The README's commands run the bundled CLI (dist/, built by `npm ci`), whose modules live in
// dist/chunks/: paths to agent-template/ and Dockerfile.agent must still resolve to the package.
const out = join(PACKAGE_ROOT, 'node_modules', '.cache', `nexus-built-cli-${process.pid}`);
let ws: string;
let meta: Metafile;

function runBuilt(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = `const m = await import(${JSON.stringify(join(out, 'cli.mjs'))}); process.exitCode = await m.main(${JSON.stringify(args)});`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ws, env: { ...process.env, NEXUS_LOG_LEVEL: 'warn' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

beforeAll(async () => {
  ws = await mkdtemp(join(tmpdir(), 'nexus-built-cli-'));
  meta = (await build({ ...cliBuildOptions(out), absWorkingDir: PACKAGE_ROOT, sourcemap: false, metafile: true })).metafile;
}, 60_000);
afterAll(async () => {
  await rm(out, { recursive: true, force: true });
  await rm(ws, { recursive: true, force: true });
});

describe('the bundled CLI', () => {
  it('creates an agent from agent-template/ (its paths resolve to the package, not to dist/)', async () => {
    const r = await runBuilt(['create', '--name', 'BuiltAgent', '--capabilities', 'data', '--workspace', ws, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ agent: { name: 'BuiltAgent', slug: 'built-agent' } });
    const manifest = JSON.parse(await readFile(join(ws, 'agents', 'built-agent', 'agent.json'), 'utf8'));
    expect(manifest).toMatchObject({ name: 'BuiltAgent' });
    expect(existsSync(join(ws, 'agents', 'built-agent', 'src', 'tools', 'process_data.ts'))).toBe(true);
  }, 60_000);

  it('refuses a bad name with exit 2 and changes nothing', async () => {
    const r = await runBuilt(['create', '--name', '../evil', '--workspace', ws]);
    expect(r.code).toBe(2);
    expect(existsSync(join(ws, 'agents', 'evil'))).toBe(false);
  }, 60_000);

  it('loads only what a command uses: no dockerode, Firestore or zod locale on the way to list and create', () => {
    /** The outputs an output imports statically (what loading it loads), and the packages they leave to node_modules. */
    const closure = (start: string) => {
      const seen = new Set<string>();
      const walk = (o: string) => {
        if (seen.has(o)) return;
        seen.add(o);
        for (const i of meta.outputs[o]!.imports) if (i.kind === 'import-statement' && !i.external) walk(i.path);
      };
      walk(start);
      const inputs = [...seen].flatMap((o) => Object.keys(meta.outputs[o]!.inputs));
      const external = [...seen].flatMap((o) => meta.outputs[o]!.imports.filter((i) => i.external).map((i) => i.path));
      return { inputs, external };
    };
    const output = (re: RegExp) => Object.keys(meta.outputs).find((o) => re.test(o) && o.endsWith('.mjs'))!;
    const entry = closure(output(/\/cli\.mjs$/));
    for (const c of [entry, closure(output(/\/chunks\/list-/)), closure(output(/\/chunks\/create-/))]) {
      expect(c.external.filter((p) => /^(dockerode|firebase-admin|@google-cloud|pino)(\/|$)/.test(p))).toEqual([]);
      expect(c.inputs.filter((p) => /node_modules\/(dockerode|docker-modem|ssh2|@grpc|protobufjs)\//.test(p))).toEqual([]);
    }
    expect(entry.inputs.some((p) => p.includes('node_modules/zod/'))).toBe(true);
    expect(entry.inputs.filter((p) => /zod\/v4\/locales\/(?!en\.js)/.test(p))).toEqual([]);
  });
});
