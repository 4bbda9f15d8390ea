import { InitialSchema1796025606325 } from './1796025606325-InitialSchema.js';

/** Every migration in order; listed explicitly so sources and dist/ see the same list. */
export const MIGRATIONS = [InitialSchema1796025606325];
