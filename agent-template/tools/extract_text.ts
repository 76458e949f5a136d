import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { defineTool } from '@nexus-delta/runtime';
import { imageParameter, openImage } from './lib/image-input.js';

/** Largest image OCR reads, in pixels (2048 x 2048): tesseract's memory grows with the page. */
const MAX_OCR_PIXELS = 4_194_304;

/**
 * English trained data from the @tesseract.js-data/eng npm package (LSTM, integer "best" model,
 * 2.9 MB): read from the agent's node_modules, never downloaded.
 */
function englishDataPath(): string {
  const pkg = createRequire(import.meta.url).resolve('@tesseract.js-data/eng/package.json');
  return join(dirname(pkg), '4.0.0_best_int');
}

/** Text of an image by OCR (tesseract.js, English), with its mean confidence. */
export const extractText = defineTool<{ image: string }>({
  name: 'extract_text',
  description: 'Read the English text in a base64 image (OCR with tesseract.js). Returns the text, its lines and a confidence from 0 to 100.',
  parameters: {
    type: 'object',
    required: ['image'],
    properties: { image: imageParameter },
    additionalProperties: false,
  },
  timeoutMs: 60_000,
  handler: async ({ image }, { signal }) => {
    const { image: img } = await openImage(image, MAX_OCR_PIXELS);
    // greyscale PNG on white: any format sharp reads (SVG too) becomes what tesseract reads best
    const png = await img.flatten({ background: '#ffffff' }).greyscale().png().toBuffer();
    const { createWorker, OEM } = await import('tesseract.js');
    // one worker per call, ended after it: an idle agent holds no OCR engine
    const worker = await createWorker('eng', OEM.LSTM_ONLY, { langPath: englishDataPath(), gzip: true, cacheMethod: 'none' });
    const stop = () => void worker.terminate();
    signal.addEventListener('abort', stop, { once: true });
    try {
      const { data } = await worker.recognize(png);
      const text = data.text.trim();
      return { text, lines: text ? text.split('\n').map((l) => l.trim()).filter(Boolean) : [], confidence: Math.round(data.confidence) };
    } finally {
      signal.removeEventListener('abort', stop);
      await worker.terminate().catch(() => undefined);
    }
  },
});
