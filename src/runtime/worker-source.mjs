// The tool worker's entry when the runtime runs from its TypeScript source (tests, a checkout):
// Node 20 does not apply `--import tsx` hooks inside worker threads, so register tsx here, then
// load worker.ts (and through it the agent's .ts module). The image runs the bundled worker.mjs.
import { register } from 'tsx/esm/api';

register();
const { default: runTask } = await import('./worker.ts');
export default runTask;
