import path from 'node:path';
import { ConfigError } from '../core/errors.ts';
import type { PostgresStoreOptions } from './postgres/postgres-store.ts';
import { SqliteStore, type SqliteStoreOptions } from './sqlite/sqlite-store.ts';
import type { Store } from './store.ts';
import { redactStoreUrl } from './store-url.ts';

/** How a store is opened; each backend reads what applies to it (`busyTimeoutMs`: both). */
export type StoreOptions = SqliteStoreOptions & PostgresStoreOptions;

/**
 * Opens the store a URL names: `sqlite:PATH` (PATH relative to `projectDir`), or
 * `postgres://user:pass@host:port/db?schema=NAME` (also `postgresql://`; schema default
 * `agentq`). The PostgreSQL client (`pg`) is loaded only for a PostgreSQL URL.
 * @throws ConfigError for an unknown scheme (the URL named without its password)
 */
export async function openStore(url: string, projectDir: string, options: StoreOptions = {}): Promise<Store> {
  if (/^postgres(ql)?:\/\//i.test(url)) {
    const { PostgresStore } = await import('./postgres/postgres-store.ts');
    return PostgresStore.open(url, options);
  }
  const m = /^([a-z]+):(.*)$/.exec(url);
  if (m?.[1] === 'sqlite' && m[2]) return new SqliteStore(path.resolve(projectDir, m[2]), options);
  throw new ConfigError(`store: unsupported URL ${JSON.stringify(redactStoreUrl(url))} (expected sqlite:PATH or postgres://USER@HOST/DB)`);
}
