/**
 * `npm run build` (also run by `npm ci` through `prepare`, and by `npm test`): compiles `src/`
 * into `dist/` with `tsc -p tsconfig.build.json` (`.ts` import specifiers rewritten to `.js`;
 * comments left out: V8 keeps each module's source text, two bytes a character once a comment
 * holds a non-ASCII one, ~0.2 MiB of an idle dispatcher's RSS; the source maps point into src/),
 * copies what is read at run time next to the compiled code (the stores' `migrations/*.sql`),
 * then writes `dist/.build-stamp`, which `bin/agentq` checks against the sources
 * (bin/build-state.mjs). Nothing is done when `dist/` is already fresh, unless `--force`.
 * A type error fails the build (exit 1) and leaves no `dist/`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { distState, newestSourceMtime, ROOT, STAMP } from '../bin/build-state.mjs';

const force = process.argv.includes('--force');
if (!force && distState() === 'fresh') {
  console.log('dist/ is up to date');
  process.exit(0);
}
const dist = path.join(ROOT, 'dist');
const sourcesMtimeMs = newestSourceMtime();
if (sourcesMtimeMs === null) {
  console.error('build: no src/ to build');
  process.exit(1);
}
fs.rmSync(dist, { recursive: true, force: true });
const tsc = path.join(path.dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
const r = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
if (r.status !== 0) {
  fs.rmSync(dist, { recursive: true, force: true });
  console.error(`build: tsc failed (exit ${r.status ?? r.signal}); dist/ removed, bin/agentq runs the sources`);
  process.exit(1);
}
// Read at run time relative to the compiled module (import.meta.url).
for (const backend of ['sqlite', 'postgres']) {
  fs.cpSync(path.join(ROOT, 'src', 'store', backend, 'migrations'), path.join(dist, 'store', backend, 'migrations'), { recursive: true });
}
fs.writeFileSync(STAMP, `${JSON.stringify({ sourcesMtimeMs })}\n`);
console.log(`built dist/ from src/`);
