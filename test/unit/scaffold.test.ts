import { describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleAgent } from '../../src/fleet/bundle.js';
import { readManifest, renderAgentFiles, toolIdent, writeAgentDir } from '../../src/scaffold/render.js';

const input = {
  name: 'MathAgent', slug: 'math-agent', description: 'Does "math"', version: '0.1.0', capabilities: ['math', 'data'],
  category: 'math', model: 'none', port: 8085, tools: ['evaluate_expression', 'process_data'] as const,
};

describe('scaffold', () => {
  it('renders the manifest, package.json, entry point, README and the chosen tools', async () => {
    const files = await renderAgentFiles({ ...input, tools: [...input.tools] });
    expect([...files.keys()].sort()).toEqual(['README.md', 'agent.json', 'package.json', 'src/index.ts', 'src/tools/evaluate_expression.ts', 'src/tools/process_data.ts']);
    expect(JSON.parse(files.get('package.json')!)).toEqual({
      name: 'math-agent', version: '0.1.0', description: 'Does "math"', private: true, type: 'module',
      dependencies: { jsep: '1.6.0' },
      peerDependencies: { '@nexus-delta/runtime': '*' },
      peerDependenciesMeta: { '@nexus-delta/runtime': { optional: true } },
    });
    expect(JSON.parse(files.get('agent.json')!)).toEqual({
      name: 'MathAgent', description: 'Does "math"', version: '0.1.0', capabilities: ['math', 'data'], category: 'math', model: 'none',
    });
    const index = files.get('src/index.ts')!;
    expect(index).toContain("import { evaluateExpression } from './tools/evaluate_expression.js';");
    expect(index).toContain('tools: [evaluateExpression, processData]');
    expect(files.get('README.md')).toContain('curl http://localhost:8085/health');
  });

  it('an OCR agent gets its support file, its npm packages and a larger memory limit', async () => {
    const files = await renderAgentFiles({ ...input, tools: ['extract_text'] });
    expect(files.get('src/tools/lib/image-input.ts')).toContain('export async function openImage');
    expect(JSON.parse(files.get('package.json')!).dependencies).toEqual({ '@tesseract.js-data/eng': '1.0.0', sharp: '0.35.5', 'tesseract.js': '7.0.0' });
    expect(JSON.parse(files.get('agent.json')!).resources).toEqual({ memoryMiB: 256 });
  });

  it('toolIdent camel-cases tool names', () => expect(toolIdent('evaluate_expression')).toBe('evaluateExpression'));

  it('writes all files at once and never overwrites an existing folder', async () => {
    const root = await mkdtemp(join(tmpdir(), 'nexus-scaffold-'));
    const dir = join(root, 'agents', 'math-agent');
    await mkdir(join(root, 'agents'));
    await writeAgentDir(dir, await renderAgentFiles({ ...input, tools: [...input.tools] }));
    expect(await readManifest(dir)).toMatchObject({ name: 'MathAgent' });
    await expect(writeAgentDir(dir, new Map([['x', 'y']]))).rejects.toMatchObject({ code: 'SOURCE_EXISTS' });
    expect(await readdir(join(root, 'agents'))).toEqual(['math-agent']);
  });

  it('bundles a rendered agent into one ESM file with the runtime left external', async () => {
    const root = await mkdtemp(join(tmpdir(), 'nexus-scaffold-'));
    const dir = join(root, 'math-agent');
    await writeAgentDir(dir, await renderAgentFiles({ ...input, tools: [...input.tools] }));
    const b = await bundleAgent(dir);
    const code = b.files.get('agent.mjs')!;
    expect([...b.files.keys()]).toEqual(['agent.mjs']);
    expect(code).toMatch(/from\s*"@nexus-delta\/runtime"/);
    expect(code).toContain('evaluate_expression');
    expect(code.length).toBeLessThan(200_000);
    expect(b.hash).toMatch(/^[0-9a-f]{64}$/);
    expect((await bundleAgent(dir)).hash).toBe(b.hash);
  });

  it('reports a compile error with file:line', async () => {
    const root = await mkdtemp(join(tmpdir(), 'nexus-scaffold-'));
    const dir = join(root, 'a');
    await writeAgentDir(dir, new Map([['src/index.ts', 'export default {\n  tools: [\n']]));
    await expect(bundleAgent(dir)).rejects.toMatchObject({ code: 'BUILD_FAILED', message: expect.stringMatching(/index\.ts:\d+:\d+/) });
    expect(await readFile(join(dir, 'src/index.ts'), 'utf8')).toContain('tools');
  });
});
