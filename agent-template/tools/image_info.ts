import { defineTool } from '@nexus-delta/runtime';
import { imageParameter, openImage } from './lib/image-input.js';

/** Format, size and channels of an image (sharp reads the header only). */
export const imageInfo = defineTool<{ image: string }>({
  name: 'image_info',
  description: 'Format, width, height, channels, colour space and alpha of a base64 image.',
  parameters: {
    type: 'object',
    required: ['image'],
    properties: { image: imageParameter },
    additionalProperties: false,
  },
  handler: async ({ image }) => {
    const { meta, bytes } = await openImage(image);
    return {
      format: meta.format,
      width: meta.width,
      height: meta.height,
      channels: meta.channels,
      space: meta.space,
      has_alpha: meta.hasAlpha,
      pages: meta.pages ?? 1,
      bytes,
    };
  },
});
