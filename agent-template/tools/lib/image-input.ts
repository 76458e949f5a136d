import { ToolInputError } from '@nexus-delta/runtime';
import type { Metadata, Sharp, SharpConstructor } from 'sharp';

/**
 * Image parameters of the image tools: base64 text bounded so a request fits the agent's 1 MiB
 * body limit (about 730 KiB of image), and a pixel bound checked before anything is decoded.
 */
export const MAX_IMAGE_BASE64_CHARS = 1_000_000;
/** Largest image the tools decode, in pixels (4096 x 4096). */
export const MAX_INPUT_PIXELS = 16_777_216;

/** JSON Schema of an `image` parameter. */
export const imageParameter = {
  type: 'string',
  minLength: 4,
  maxLength: MAX_IMAGE_BASE64_CHARS,
  description: 'The image as base64 (PNG, JPEG, WebP, GIF, TIFF, AVIF or SVG); a data: URL prefix is accepted.',
} as const;

const DATA_URL_RE = /^data:[\w/+.-]+;base64,/;
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

/** Bytes of a base64 image (a data: URL prefix and whitespace are ignored). @throws ToolInputError when it is not base64. */
export function decodeBase64Image(text: string): Buffer {
  const body = text.replace(DATA_URL_RE, '').replace(/\s+/g, '');
  if (!BASE64_RE.test(body)) throw new ToolInputError('image must be base64 text (A-Z, a-z, 0-9, +, /)');
  return Buffer.from(body, 'base64');
}

let sharpModule: SharpConstructor | undefined;

/**
 * sharp, imported on the first call (its native addon and libvips stay out of an idle agent),
 * with libvips' operation cache off and one thread: agents run in 128 MiB on a fraction of a core.
 */
export async function loadSharp(): Promise<SharpConstructor> {
  if (!sharpModule) {
    const sharp = (await import('sharp')).default;
    sharp.cache(false);
    sharp.concurrency(1);
    sharpModule = sharp;
  }
  return sharpModule;
}

/**
 * Open a base64 image with sharp and read its header.
 * @throws ToolInputError when the bytes are not an image sharp reads, or it has more than `maxPixels` pixels.
 */
export async function openImage(text: string, maxPixels = MAX_INPUT_PIXELS): Promise<{ image: Sharp; meta: Metadata; bytes: number }> {
  const input = decodeBase64Image(text);
  const sharp = await loadSharp();
  const image = sharp(input, { limitInputPixels: maxPixels, failOn: 'error' });
  let meta: Metadata;
  try {
    meta = await image.metadata();
  } catch (err) {
    const message = (err as Error).message;
    if (/pixel limit/.test(message)) throw new ToolInputError(`image has more than the ${maxPixels} pixels allowed`);
    throw new ToolInputError(`not an image: ${message}`);
  }
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixels > maxPixels) throw new ToolInputError(`image has ${meta.width}x${meta.height} pixels, more than the ${maxPixels} pixels allowed`);
  return { image, meta, bytes: input.length };
}
