/**
 * Whether the compiled `dist/` may be run: the build stamp (`dist/.build-stamp`, written by
 * `scripts/build.mjs` after a successful build) against the newest mtime of the sources it was
 * built from. Plain JavaScript, loaded by `bin/agentq` on every start (one walk of `src/`:
 * about 100 `stat`s).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (the folder holding `bin/`, `src/`, `dist/`). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The stamp file: JSON `{ sourcesMtimeMs }`, the newest source mtime (epoch ms) when the build started. */
export const STAMP = path.join(ROOT, 'dist', '.build-stamp');
/** What the build reads besides `src/`. */
const CONFIGS = ['tsconfig.json', 'tsconfig.build.json'];

/**
 * The newest mtime (epoch ms) of `src/` (every file and folder: a folder's mtime changes when a
 * file in it is added, removed or renamed) and the tsconfig files; null when `src/` is absent
 * (an install that ships `dist/` only).
 */
export function newestSourceMtime(root = ROOT) {
  const src = path.join(root, 'src');
  let newest;
  try {
    newest = fs.statSync(src).mtimeMs;
  } catch {
    return null;
  }
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      newest = Math.max(newest, fs.statSync(p).mtimeMs);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(src);
  for (const c of CONFIGS) {
    try {
      newest = Math.max(newest, fs.statSync(path.join(root, c)).mtimeMs);
    } catch {
      // absent: nothing to compare
    }
  }
  return newest;
}

/**
 * The state of `dist/`: `fresh` (built from the sources as they are), `stale` (a source is
 * newer than the build, or one was added, removed or renamed since), `missing` (never built, or
 * the last build failed), `no-sources` (no `src/`: `dist/` is all there is).
 * @returns one of those four strings
 */
export function distState(root = ROOT) {
  const newest = newestSourceMtime(root);
  let stamp;
  try {
    stamp = JSON.parse(fs.readFileSync(path.join(root, 'dist', '.build-stamp'), 'utf8'));
  } catch {
    return newest === null ? 'no-sources' : 'missing';
  }
  if (newest === null) return 'no-sources';
  return typeof stamp.sourcesMtimeMs === 'number' && newest <= stamp.sourcesMtimeMs ? 'fresh' : 'stale';
}
