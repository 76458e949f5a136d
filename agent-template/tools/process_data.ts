import { defineTool } from '@nexus-delta/runtime';

/** Summary statistics of a number array: count, sum, mean, min, max (the seed's example tool). */
export const processData = defineTool<{ data: number[] }>({
  name: 'process_data',
  description: 'Summary statistics (count, sum, mean, min, max) of an array of numbers.',
  parameters: {
    type: 'object',
    required: ['data'],
    properties: {
      data: { type: 'array', items: { type: 'number' }, maxItems: 100000, description: 'The numbers to summarise.' },
    },
    additionalProperties: false,
  },
  handler: ({ data }) => {
    if (data.length === 0) return { count: 0, sum: 0, mean: null, min: null, max: null };
    let sum = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const x of data) {
      sum += x;
      if (x < min) min = x;
      if (x > max) max = x;
    }
    return { count: data.length, sum, mean: sum / data.length, min, max };
  },
});
