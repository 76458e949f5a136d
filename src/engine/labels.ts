/** Label keys: defined in the conventions module; re-exported here for existing importers. */
export { LABEL } from '../conventions.js';
