import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Handlebars from 'handlebars';
import { AppError } from '../errors.js';
import { commentText, markdownCode, markdownInline, shellWord } from '../generate/escape.js';
import { TEMPLATE_DIR } from '../paths.js';
import { TOOL_MEMORY_MIB, TOOL_SUPPORT_FILES, toolDependencies, type StarterTool } from './capabilities.js';

/** What the template needs to render one agent. */
export interface ScaffoldInput {
  name: string;
  slug: string;
  description: string;
  version: string;
  capabilities: string[];
  category: string;
  model: string;
  port: number;
  tools: StarterTool[];
}

/** The manifest written to agents/<slug>/agent.json (the agent's metadata, bundled into its image). */
export interface AgentManifest {
  name: string;
  description: string;
  version: string;
  capabilities: string[];
  category: string;
  model: string;
  /** npm packages to keep out of the bundle and ship in the node_modules layer, besides those detected (see fleet/dependencies.ts). */
  dependencies?: { external?: string[] };
  /** Container limits this agent needs above the workspace default (e.g. OCR: 256 MiB). */
  resources?: { memoryMiB?: number };
}

const hb = Handlebars.create();
// each output language gets its own quoting (src/generate/escape.ts); templates use noEscape
hb.registerHelper('json', (v: unknown) => JSON.stringify(v));
hb.registerHelper('md', (v: unknown) => markdownInline(String(v)));
hb.registerHelper('mdcode', (v: unknown) => markdownCode(String(v)));
hb.registerHelper('sh', (v: unknown) => shellWord(commentText(String(v))));
hb.registerHelper('line', (v: unknown) => commentText(String(v)));

/** `process_data` -> `processData`. */
export function toolIdent(tool: string): string {
  return tool.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Render agent-template/ for one agent into a map of relative path -> content. Pure apart from
 * reading the template files. Tools (and the support files they need) are copied verbatim from
 * agent-template/tools/; package.json lists the npm packages they import (TOOL_DEPENDENCIES) and
 * agent.json the memory an OCR agent needs (TOOL_MEMORY_MIB).
 */
export async function renderAgentFiles(input: ScaffoldInput, templateDir = TEMPLATE_DIR): Promise<Map<string, string>> {
  const memoryMiB = Math.max(0, ...input.tools.map((t) => TOOL_MEMORY_MIB[t] ?? 0)) || undefined;
  const ctx = { ...input, memoryMiB, dependencies: toolDependencies(input.tools), tools: input.tools.map((name) => ({ name, ident: toolIdent(name) })) };
  const render = async (file: string) => hb.compile(await readFile(join(templateDir, file), 'utf8'), { noEscape: true })(ctx);
  const json = async (file: string) => `${JSON.stringify(JSON.parse(await render(file)), null, 2)}\n`;
  const files = new Map<string, string>();
  files.set('agent.json', await json('agent.json.hbs'));
  files.set('package.json', await json('package.json.hbs'));
  files.set('src/index.ts', await render('src/index.ts.hbs'));
  files.set('README.md', await render('README.md.hbs'));
  for (const tool of input.tools) {
    files.set(`src/tools/${tool}.ts`, await readFile(join(templateDir, 'tools', `${tool}.ts`), 'utf8'));
    for (const f of TOOL_SUPPORT_FILES[tool] ?? []) files.set(`src/tools/${f}`, await readFile(join(templateDir, 'tools', f), 'utf8'));
  }
  return files;
}

/**
 * Write the rendered agent to `dir` all at once: files go to a hidden sibling folder that is
 * renamed into place, so a failure never leaves a half-written agent folder.
 * @throws AppError SOURCE_EXISTS when `dir` already exists (never overwrites user code).
 */
export async function writeAgentDir(dir: string, files: Map<string, string>): Promise<void> {
  if (existsSync(dir)) {
    throw new AppError('SOURCE_EXISTS', `${dir} already exists`, {
      hint: 'move or delete that folder, or choose another --name',
    });
  }
  const tmp = join(dirname(dir), `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    for (const [rel, content] of files) {
      const path = join(tmp, rel);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content);
    }
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Read and check agents/<slug>/agent.json. @throws AppError BUILD_FAILED when missing or malformed. */
export async function readManifest(dir: string): Promise<AgentManifest> {
  const path = join(dir, 'agent.json');
  let data: Partial<AgentManifest>;
  try {
    data = JSON.parse(await readFile(path, 'utf8')) as Partial<AgentManifest>;
  } catch (err) {
    throw new AppError('BUILD_FAILED', `cannot read ${path}: ${(err as Error).message}`, {
      hint: 'restore the agent manifest (agent.json) or re-create the agent',
    });
  }
  for (const k of ['name', 'description', 'version', 'category', 'model'] as const) {
    if (typeof data[k] !== 'string') throw new AppError('BUILD_FAILED', `${path}: "${k}" must be a string`, { hint: `set "${k}" in ${path}` });
  }
  if (!Array.isArray(data.capabilities)) {
    throw new AppError('BUILD_FAILED', `${path}: "capabilities" must be an array`, { hint: `fix ${path}` });
  }
  const external = data.dependencies?.external;
  if (data.dependencies !== undefined && (typeof data.dependencies !== 'object' || (external !== undefined && (!Array.isArray(external) || external.some((e) => typeof e !== 'string'))))) {
    throw new AppError('BUILD_FAILED', `${path}: "dependencies.external" must be an array of package names`, { hint: `fix ${path}` });
  }
  const mem = data.resources?.memoryMiB;
  if (data.resources !== undefined && (typeof data.resources !== 'object' || (mem !== undefined && !(Number.isInteger(mem) && mem >= 32 && mem <= 4096)))) {
    throw new AppError('BUILD_FAILED', `${path}: "resources.memoryMiB" must be an integer from 32 to 4096`, { hint: `fix ${path}` });
  }
  return data as AgentManifest;
}

