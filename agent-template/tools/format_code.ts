import { defineTool, ToolInputError } from '@nexus-delta/runtime';
import type { Plugin } from 'prettier';

/** Largest source formatted, in characters. */
const MAX_CODE_CHARS = 200_000;

type Language = 'typescript' | 'javascript' | 'json' | 'css' | 'markdown' | 'yaml';

/** Prettier's parser and the plugins it lives in, per language; each plugin is imported on first use. */
const PARSERS: Record<Language, { parser: string; plugins: () => Promise<Plugin[]> }> = {
  typescript: { parser: 'typescript', plugins: async () => [await import('prettier/plugins/typescript'), await import('prettier/plugins/estree')] as Plugin[] },
  javascript: { parser: 'babel', plugins: async () => [await import('prettier/plugins/babel'), await import('prettier/plugins/estree')] as Plugin[] },
  json: { parser: 'json', plugins: async () => [await import('prettier/plugins/babel'), await import('prettier/plugins/estree')] as Plugin[] },
  css: { parser: 'css', plugins: async () => [await import('prettier/plugins/postcss')] as Plugin[] },
  markdown: { parser: 'markdown', plugins: async () => [await import('prettier/plugins/markdown')] as Plugin[] },
  yaml: { parser: 'yaml', plugins: async () => [await import('prettier/plugins/yaml')] as Plugin[] },
};

interface FormatParams {
  code: string;
  language?: Language;
  print_width?: number;
  tab_width?: number;
  single_quote?: boolean;
}

/** Source formatted with Prettier (its standalone build: no config files, no plugins from disk). */
export const formatCode = defineTool<FormatParams>({
  name: 'format_code',
  description: 'Format TypeScript, JavaScript, JSON, CSS, Markdown or YAML source with Prettier.',
  parameters: {
    type: 'object',
    required: ['code'],
    properties: {
      code: { type: 'string', maxLength: MAX_CODE_CHARS },
      language: { type: 'string', enum: Object.keys(PARSERS), default: 'typescript' },
      print_width: { type: 'integer', minimum: 20, maximum: 200, default: 80 },
      tab_width: { type: 'integer', minimum: 1, maximum: 8, default: 2 },
      single_quote: { type: 'boolean', default: false },
    },
    additionalProperties: false,
  },
  handler: async ({ code, language = 'typescript', print_width = 80, tab_width = 2, single_quote = false }) => {
    const { format } = await import('prettier/standalone');
    const { parser, plugins } = PARSERS[language];
    let formatted: string;
    try {
      formatted = await format(code, { parser, plugins: await plugins(), printWidth: print_width, tabWidth: tab_width, singleQuote: single_quote });
    } catch (err) {
      // a syntax error: Prettier's message names line and column ("';' expected. (3:7)")
      throw new ToolInputError(`cannot format ${language}: ${(err as Error).message.split('\n')[0]}`);
    }
    return { language, formatted, changed: formatted !== code };
  },
});
