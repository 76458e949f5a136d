import { defineTool } from '@nexus-delta/runtime';
import { imageParameter, openImage } from './lib/image-input.js';

/** Largest thumbnail side in pixels. */
const MAX_SIDE = 1024;

interface ResizeParams {
  image: string;
  width?: number;
  height?: number;
  fit?: 'inside' | 'cover' | 'contain' | 'fill';
  format?: 'png' | 'jpeg' | 'webp';
  quality?: number;
}

/** A PNG, JPEG or WebP thumbnail of an image, returned as base64. */
export const resize = defineTool<ResizeParams>({
  name: 'resize',
  description: `Resize a base64 image to a thumbnail (at most ${MAX_SIDE} px a side) and return it as base64 PNG, JPEG or WebP.`,
  parameters: {
    type: 'object',
    required: ['image'],
    anyOf: [{ required: ['width'] }, { required: ['height'] }],
    properties: {
      image: imageParameter,
      width: { type: 'integer', minimum: 1, maximum: MAX_SIDE },
      height: { type: 'integer', minimum: 1, maximum: MAX_SIDE },
      fit: { type: 'string', enum: ['inside', 'cover', 'contain', 'fill'], default: 'inside', description: 'How the image fits the box (sharp fit modes).' },
      format: { type: 'string', enum: ['png', 'jpeg', 'webp'], default: 'png' },
      quality: { type: 'integer', minimum: 1, maximum: 100, default: 80, description: 'JPEG/WebP quality.' },
    },
    additionalProperties: false,
  },
  handler: async ({ image, width, height, fit = 'inside', format = 'png', quality = 80 }) => {
    const { image: img } = await openImage(image);
    const pipeline = img.rotate().resize({ width, height, fit, withoutEnlargement: fit === 'inside' });
    const out = format === 'png' ? pipeline.png() : format === 'jpeg' ? pipeline.jpeg({ quality }) : pipeline.webp({ quality });
    const { data, info } = await out.toBuffer({ resolveWithObject: true });
    return { format: info.format, width: info.width, height: info.height, bytes: data.length, image: data.toString('base64') };
  },
});
