/**
 * The validated config of a project, kept so that the CLI's commands start without the YAML
 * parser and the zod schema (about 170 modules: ~100 ms of CPU and 13 MiB at every start):
 * `.agent-queue/.config-cache.json` (mode 600, as it holds what config.yaml holds), JSON
 * `{ key, config }`. The key is the SHA-256 of config.yaml's bytes (or of its absence) and of
 * the build that validated it (`dist/.build-stamp`), so an edited config.yaml or another
 * agentq is validated again. Only the compiled build caches: from the sources (tsx) every load
 * validates.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from './config.ts';
import { projectPaths } from './project.ts';

/** The cache file of a project, beside its config.yaml. */
export function configCacheFile(projectDir: string): string {
  return path.join(projectPaths(projectDir).dir, '.config-cache.json');
}

/** The build stamp next to the compiled code (`dist/.build-stamp`); null when run from the sources. */
function buildStamp(): string | null {
  try {
    return fs.readFileSync(new URL('../.build-stamp', import.meta.url), 'utf8');
  } catch {
    return null;
  }
}

/** The cache of a project's config: its file, the key config.yaml and the build give now, and the config cached under that key (null when none). */
function lookUp(projectDir: string, stamp: string): { file: string; key: string; config: Config | null } {
  const paths = projectPaths(projectDir);
  let bytes: Buffer | null = null;
  try {
    bytes = fs.readFileSync(paths.config);
  } catch {
    // absent (or unreadable): loadConfig says which
  }
  const key = crypto
    .createHash('sha256')
    .update(`${stamp}\0`)
    .update(bytes ?? '(no config.yaml)')
    .digest('hex');
  const file = configCacheFile(projectDir);
  try {
    const cached = JSON.parse(fs.readFileSync(file, 'utf8')) as { key?: unknown; config?: Config };
    if (cached.key === key && cached.config && typeof cached.config === 'object') return { file, key, config: cached.config };
  } catch {
    // no cache yet, or a damaged one
  }
  return { file, key, config: null };
}

/**
 * `loadConfig(projectDir)` (config.yaml validated, defaults applied), from the cache when
 * config.yaml and the build are those it was made from; else validated (config.ts loaded) and
 * cached. The cache is best effort: one that cannot be read or written is ignored.
 * @param o.apart on a cache miss, validate in a child process (`node validate-config.js DIR`,
 *   which caches the result) so that this process never loads the schema: for `agentq run`,
 *   which lives on with what it loaded (zod and yaml: ~12 MiB), at the cost of one Node start
 *   (~0.3 s) after config.yaml changed; waited for without blocking, so the caller's own
 *   loading goes on meanwhile. Should the child not leave a cache entry (an invalid
 *   config, a cache that cannot be written), config.yaml is validated here, so its error is
 *   the same. Default false.
 * @throws ConfigError as `loadConfig` (an invalid config is never cached)
 */
export async function loadConfigCached(projectDir: string, o: { apart?: boolean } = {}): Promise<Config> {
  const stamp = buildStamp();
  if (stamp === null) return (await import('./config.ts')).loadConfig(projectDir);
  let found = lookUp(projectDir, stamp);
  if (found.config) return found.config;
  if (o.apart) {
    const status = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [fileURLToPath(new URL('./validate-config.js', import.meta.url)), projectDir], { stdio: 'ignore' });
      child.once('error', () => resolve(null));
      child.once('close', (code) => resolve(code));
    });
    if (status === 0) {
      found = lookUp(projectDir, stamp);
      if (found.config) return found.config;
    }
  }
  const config = (await import('./config.ts')).loadConfig(projectDir);
  if (jsonSafe(config)) {
    const tmp = `${found.file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, JSON.stringify({ key: found.key, config }), { mode: 0o600 });
      fs.renameSync(tmp, found.file);
    } catch {
      fs.rmSync(tmp, { force: true });
    }
  }
  return config;
}

/** Whether `value` comes back equal from JSON: plain objects and arrays, strings, finite numbers, booleans, null (undefined values are left out, as absent keys). */
function jsonSafe(value: unknown): boolean {
  if (value === null || value === undefined || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every((v) => v !== undefined && jsonSafe(v));
  if (typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return (proto === Object.prototype || proto === null) && Object.values(value).every(jsonSafe);
}
