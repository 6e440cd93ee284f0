/**
 * `node dist/config/validate-config.js DIR`: validates DIR's config.yaml and caches it
 * (config-cache.ts), then exits 0; 1 when it is invalid (nothing cached) or cannot be read. Run
 * by `loadConfigCached(DIR, { apart: true })` (`agentq run`), so that the schema (zod, yaml) is
 * loaded by this short-lived process, not by the dispatcher. Prints nothing: the caller
 * validates again itself when no cache entry was left, and reports the error.
 */
import { loadConfigCached } from './config-cache.ts';

const dir = process.argv[2];
try {
  if (dir === undefined) throw new Error('usage: validate-config.js DIR');
  await loadConfigCached(dir);
} catch {
  process.exitCode = 1;
}
