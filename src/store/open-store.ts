import path from 'node:path';
import { ConfigError } from '../core/errors.ts';
import { SqliteStore, type SqliteStoreOptions } from './sqlite/sqlite-store.ts';
import type { Store } from './store.ts';

/** How a store is opened; each backend reads what applies to it. */
export type StoreOptions = SqliteStoreOptions;

/**
 * Opens the store a URL names. `sqlite:PATH` (PATH relative to `projectDir`) is the only
 * backend for now. Throws ConfigError for an unknown scheme.
 */
export function openStore(url: string, projectDir: string, options: StoreOptions = {}): Store {
  const m = /^([a-z]+):(.*)$/.exec(url);
  if (m?.[1] === 'sqlite' && m[2]) return new SqliteStore(path.resolve(projectDir, m[2]), options);
  throw new ConfigError(`store: unsupported URL ${JSON.stringify(url)} (expected sqlite:PATH)`);
}
