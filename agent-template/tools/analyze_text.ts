import { defineTool } from '@nexus-delta/runtime';

/** Counts and top words of a text. */
export const analyzeText = defineTool<{ text: string; top?: number }>({
  name: 'analyze_text',
  description: 'Character, word and sentence counts of a text, with its most frequent words.',
  parameters: {
    type: 'object',
    required: ['text'],
    properties: {
      text: { type: 'string', maxLength: 200000 },
      top: { type: 'integer', minimum: 1, maximum: 50, default: 5, description: 'How many top words to return.' },
    },
    additionalProperties: false,
  },
  handler: ({ text, top = 5 }) => {
    const words = text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
    const sentences = text.split(/[.!?]+(?:\s|$)/).filter((s) => s.trim().length > 0).length;
    const freq = new Map<string, number>();
    for (const w of words) freq.set(w, (freq.get(w) ?? 0) + 1);
    const topWords = [...freq.entries()]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, top)
      .map(([word, count]) => ({ word, count }));
    return { characters: text.length, words: words.length, sentences, top_words: topWords };
  },
});
