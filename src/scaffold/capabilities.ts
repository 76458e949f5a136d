import { AppError } from '../errors.js';

/** Starter tools in agent-template/tools/ (file name = tool name). */
export type StarterTool =
  | 'process_data' | 'analyze_text' | 'evaluate_expression' | 'echo'
  | 'image_info' | 'resize' | 'extract_text' | 'analyze_code' | 'format_code';

/**
 * npm packages each starter tool imports, with the exact versions the tool itself is tested with
 * (its own package-lock; a unit test keeps them equal): they go into agents/<slug>/package.json.
 * typescript is the version this project pins (package.json "typescript": "5.9").
 */
export const TOOL_DEPENDENCIES: Readonly<Partial<Record<StarterTool, Readonly<Record<string, string>>>>> = {
  evaluate_expression: { jsep: '1.6.0' },
  image_info: { sharp: '0.35.5' },
  resize: { sharp: '0.35.5' },
  extract_text: { sharp: '0.35.5', 'tesseract.js': '7.0.0', '@tesseract.js-data/eng': '1.0.0' },
  analyze_code: { typescript: '5.9.3' },
  format_code: { prettier: '3.10.1' },
};

/** Files besides tools/<tool>.ts a starter tool needs (paths under agent-template/tools/). */
export const TOOL_SUPPORT_FILES: Readonly<Partial<Record<StarterTool, readonly string[]>>> = {
  image_info: ['lib/image-input.ts'],
  resize: ['lib/image-input.ts'],
  extract_text: ['lib/image-input.ts'],
};

/**
 * Memory limit (MiB) a starter tool needs above the 128 MiB default: OCR peaks above it on one
 * call (see BENCHMARKS.md), written to agent.json resources.memoryMiB.
 */
export const TOOL_MEMORY_MIB: Readonly<Partial<Record<StarterTool, number>>> = { extract_text: 256 };

/** The npm dependencies of a set of starter tools, sorted by name. Pure. */
export function toolDependencies(tools: readonly StarterTool[]): Record<string, string> {
  const all: Record<string, string> = {};
  for (const t of tools) Object.assign(all, TOOL_DEPENDENCIES[t]);
  return Object.fromEntries(Object.entries(all).sort(([a], [b]) => a.localeCompare(b)));
}

interface CapabilityInfo {
  tools: StarterTool[];
  category: string;
}

/**
 * Known capabilities: what starter tools each brings and the marketplace category it implies.
 * The seed's examples (data_processing, analytics, nlp, text, vision, ocr, programming, math,
 * calculus) are all here; anything not listed gets a clear error with this list.
 */
export const CAPABILITIES: Readonly<Record<string, CapabilityInfo>> = {
  data: { tools: ['process_data'], category: 'data' },
  data_processing: { tools: ['process_data'], category: 'data' },
  analytics: { tools: ['process_data'], category: 'data' },
  statistics: { tools: ['process_data'], category: 'data' },
  text: { tools: ['analyze_text'], category: 'language' },
  nlp: { tools: ['analyze_text'], category: 'language' },
  language: { tools: ['analyze_text'], category: 'language' },
  summarization: { tools: ['analyze_text'], category: 'language' },
  math: { tools: ['evaluate_expression'], category: 'math' },
  calculus: { tools: ['evaluate_expression'], category: 'math' },
  vision: { tools: ['image_info', 'resize'], category: 'vision' },
  image: { tools: ['image_info', 'resize'], category: 'vision' },
  ocr: { tools: ['extract_text'], category: 'vision' },
  programming: { tools: ['analyze_code', 'format_code'], category: 'development' },
  code: { tools: ['analyze_code', 'format_code'], category: 'development' },
  search: { tools: ['echo'], category: 'research' },
  research: { tools: ['echo'], category: 'research' },
  automation: { tools: ['echo'], category: 'automation' },
  general: { tools: ['echo'], category: 'general' },
};

export interface CapabilityPlan {
  /** Normalised capabilities (lowercase, '-' -> '_', deduplicated, in the given order). */
  capabilities: string[];
  tools: StarterTool[];
  category: string;
}

/**
 * Resolve the capabilities given to `create` into starter tools and a category. Pure.
 * No capabilities -> `general` (echo). The category is the first capability's.
 * @throws AppError CAPABILITY_UNKNOWN listing the known ones.
 */
export function planCapabilities(input: readonly string[]): CapabilityPlan {
  const caps = [...new Set(input.map((c) => c.trim().toLowerCase().replace(/-/g, '_')).filter(Boolean))];
  if (caps.length === 0) caps.push('general');
  // own keys only: `constructor` or `__proto__` must not find Object.prototype's members
  const unknown = caps.filter((c) => !Object.hasOwn(CAPABILITIES, c));
  if (unknown.length > 0) {
    throw new AppError('CAPABILITY_UNKNOWN', `unknown capabilit${unknown.length > 1 ? 'ies' : 'y'}: ${unknown.join(', ')}`, {
      hint: `use some of: ${Object.keys(CAPABILITIES).join(', ')}`,
      details: { unknown },
    });
  }
  const tools = [...new Set(caps.flatMap((c) => CAPABILITIES[c]!.tools))];
  // echo only when nothing more specific was chosen
  const specific = tools.filter((t) => t !== 'echo');
  return { capabilities: caps, tools: specific.length ? specific : ['echo'], category: CAPABILITIES[caps[0]!]!.category };
}
