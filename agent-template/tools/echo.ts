import { defineTool } from '@nexus-delta/runtime';

/** Returns its input: the starter tool for capabilities without a specific one. Replace it. */
export const echo = defineTool<{ message?: unknown }>({
  name: 'echo',
  description: 'Returns the parameters it was given (a placeholder to replace with real tools).',
  parameters: {
    type: 'object',
    properties: { message: { description: 'Anything JSON.' } },
  },
  handler: (params) => ({ echo: params }),
});
