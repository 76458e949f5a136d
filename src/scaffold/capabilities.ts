import { AppError } from '../errors.js';

/** Starter tools in agent-template/tools/ (file name = tool name). */
export type StarterTool = 'process_data' | 'analyze_text' | 'evaluate_expression' | 'echo';

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
  vision: { tools: ['echo'], category: 'vision' },
  ocr: { tools: ['echo'], category: 'vision' },
  image: { tools: ['echo'], category: 'vision' },
  programming: { tools: ['echo'], category: 'development' },
  code: { tools: ['echo'], category: 'development' },
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
