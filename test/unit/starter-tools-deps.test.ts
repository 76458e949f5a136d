import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { analyzeCode } from '../../agent-template/tools/analyze_code.js';
import { extractText } from '../../agent-template/tools/extract_text.js';
import { formatCode } from '../../agent-template/tools/format_code.js';
import { imageInfo } from '../../agent-template/tools/image_info.js';
import { resize } from '../../agent-template/tools/resize.js';
import { drawTextPng } from '../../src/fleet/demo.js';
import { NODE_MODULES } from '../../src/paths.js';
import { CAPABILITIES, TOOL_DEPENDENCIES, planCapabilities, toolDependencies } from '../../src/scaffold/capabilities.js';
import { ToolInputError } from '../../src/runtime/define.js';

const ctx = { signal: new AbortController().signal };
const svg = (w: number, h: number) => Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="100%" height="100%" fill="red"/></svg>`).toString('base64');

describe('image tools (sharp)', () => {
  it('image_info reads format, size and channels', async () => {
    const png = await sharp({ create: { width: 40, height: 30, channels: 4, background: '#ff000080' } }).png().toBuffer();
    expect(await imageInfo.handler({ image: png.toString('base64') }, ctx)).toMatchObject({ format: 'png', width: 40, height: 30, channels: 4, has_alpha: true, bytes: png.length });
    // a data: URL prefix is accepted
    expect(await imageInfo.handler({ image: `data:image/png;base64,${png.toString('base64')}` }, ctx)).toMatchObject({ width: 40 });
  });

  it('resize makes a JPEG thumbnail inside the box, returned as base64', async () => {
    const png = await sharp({ create: { width: 400, height: 200, channels: 3, background: '#00ff00' } }).png().toBuffer();
    const r = (await resize.handler({ image: png.toString('base64'), width: 100, format: 'jpeg' }, ctx)) as { format: string; width: number; height: number; image: string };
    expect(r).toMatchObject({ format: 'jpeg', width: 100, height: 50 });
    expect(await sharp(Buffer.from(r.image, 'base64')).metadata()).toMatchObject({ format: 'jpeg', width: 100, height: 50 });
  });

  it('rejects what is not a base64 image, and images over the pixel bound, as bad input', async () => {
    await expect(imageInfo.handler({ image: 'not base64!' }, ctx)).rejects.toBeInstanceOf(ToolInputError);
    await expect(imageInfo.handler({ image: Buffer.from('hello world').toString('base64') }, ctx)).rejects.toThrow(/not an image/);
    await expect(imageInfo.handler({ image: svg(5000, 5000) }, ctx)).rejects.toThrow(/more than the 16777216 pixels allowed/);
    // the OCR bound is lower: 2048 x 2048
    await expect(extractText.handler({ image: svg(2100, 2100) }, ctx)).rejects.toThrow(/more than the 4194304 pixels allowed/);
  });
});

describe('extract_text (tesseract.js, local English data)', () => {
  it('reads back the text of a PNG drawn from an SVG', async () => {
    const png = await drawTextPng('Nexus Delta 2025');
    const r = (await extractText.handler({ image: png.toString('base64') }, ctx)) as { text: string; lines: string[]; confidence: number };
    expect(r.text).toBe('Nexus Delta 2025');
    expect(r.lines).toEqual(['Nexus Delta 2025']);
    expect(r.confidence).toBeGreaterThan(60);
  });
});

describe('code tools', () => {
  it('analyze_code reports a syntax error at its line and column', async () => {
    const code = 'const a = 1;\nfunction f(x: number) {\n  return x +;\n}\n';
    const r = (await analyzeCode.handler({ code }, ctx)) as { valid: boolean; diagnostics: { line: number; column: number; message: string }[] };
    expect(r.valid).toBe(false);
    expect(r.diagnostics[0]).toMatchObject({ line: 3, column: 13, message: 'Expression expected.' });
  });

  it('analyze_code lists top-level symbols and counts lines', async () => {
    const code = '// header\nexport interface P { x: number }\n\nexport function area(p: P): number {\n  return p.x; // inline\n}\n/* block\n   comment */\nclass Q {}\nconst k = 1, j = 2;\n';
    const r = (await analyzeCode.handler({ code }, ctx)) as Record<string, unknown>;
    expect(r.valid).toBe(true);
    expect(r.symbols).toEqual([
      { name: 'P', kind: 'interface', line: 2, exported: true },
      { name: 'area', kind: 'function', line: 4, exported: true },
      { name: 'Q', kind: 'class', line: 9, exported: false },
      { name: 'k', kind: 'const', line: 10, exported: false },
      { name: 'j', kind: 'const', line: 10, exported: false },
    ]);
    expect(r.lines).toEqual({ total: 11, code: 6, comment: 3, blank: 2 });
    expect(r.typescript_version).toBe(JSON.parse(await readFile(join(NODE_MODULES, 'typescript/package.json'), 'utf8')).version);
  });

  it('analyze_code reads JavaScript with JSX', async () => {
    const r = (await analyzeCode.handler({ code: 'export const App = () => <div>{1}</div>;\n', language: 'jsx' }, ctx)) as { valid: boolean };
    expect(r.valid).toBe(true);
  });

  it('format_code gives Prettier output, and formatting it again changes nothing', async () => {
    const r = (await formatCode.handler({ code: 'const  x = {a:1,b:[1,2,3]}\nfunction f ( ){return x}' }, ctx)) as { formatted: string; changed: boolean };
    expect(r.formatted).toBe('const x = { a: 1, b: [1, 2, 3] };\nfunction f() {\n  return x;\n}\n');
    expect(r.changed).toBe(true);
    expect(await formatCode.handler({ code: r.formatted }, ctx)).toEqual({ language: 'typescript', formatted: r.formatted, changed: false });
    expect(((await formatCode.handler({ code: '{"b":1,\n"a":[ ]}', language: 'json' }, ctx)) as { formatted: string }).formatted).toBe('{ "b": 1, "a": [] }\n');
  });

  it('format_code reports a syntax error as bad input with line and column', async () => {
    await expect(formatCode.handler({ code: 'let x = ;' }, ctx)).rejects.toThrow(/cannot format typescript: .*\(1:9\)/);
    await expect(formatCode.handler({ code: 'let x = ;' }, ctx)).rejects.toBeInstanceOf(ToolInputError);
  });
});

describe('capabilities -> tools -> npm dependencies', () => {
  it('vision, ocr and programming get real tools, echo stays for capabilities with no natural tool', () => {
    expect(planCapabilities(['vision', 'ocr']).tools).toEqual(['image_info', 'resize', 'extract_text']);
    expect(planCapabilities(['programming']).tools).toEqual(['analyze_code', 'format_code']);
    expect(planCapabilities(['search']).tools).toEqual(['echo']);
    expect(CAPABILITIES.code!.tools).toEqual(['analyze_code', 'format_code']);
  });

  it('the versions written to package.json are the ones installed (and tested) here', async () => {
    for (const pkgs of Object.values(TOOL_DEPENDENCIES)) {
      for (const [name, version] of Object.entries(pkgs!)) {
        const installed = JSON.parse(await readFile(join(NODE_MODULES, name, 'package.json'), 'utf8')) as { version: string };
        expect(`${name}@${installed.version}`).toBe(`${name}@${version}`);
      }
    }
    expect(toolDependencies(['extract_text', 'resize'])).toEqual({ '@tesseract.js-data/eng': '1.0.0', sharp: '0.35.5', 'tesseract.js': '7.0.0' });
  });
});
