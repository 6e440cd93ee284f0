/**
 * The compiled build and what runs it, on a copy of the package (bin/, scripts/, src/, the
 * tsconfigs, package.json; node_modules linked): `scripts/build.mjs` (real tsc) makes dist/
 * with the migrations beside the compiled stores; `bin/agentq` runs dist/ while it is as new
 * as src/, the sources (tsx) once a source is newer or with AGENTQ_FROM_SOURCES=1; the cache of
 * the validated config is used by the build only, and only for the config.yaml it was made from.
 * Which code ran is read from a `--verbose` stack trace (paths in dist/ or src/).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { baseSpec } from '../../src/config/task-file.ts';
import { openStore } from '../../src/store/open-store.ts';
import { hasInotifywait, REPO_ROOT } from '../fixtures/project.ts';

/** Runs `node ARGS` (or the package's bin) in `cwd`; stdout, stderr, exit code. */
function run(cwd: string, file: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [file, ...args], { cwd, env: { ...process.env, AGENTQ_FROM_SOURCES: '', ...env }, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Which code an `agentq` run executed: its stack trace for a task that does not exist names dist/ or src/ files. */
function ranFrom(pkg: string, project: string, env: Record<string, string> = {}): 'dist' | 'src' {
  const r = run(pkg, 'bin/agentq', ['-v', '-p', project, 'show', 'no-such-task'], env);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^agentq: no task "no-such-task"/);
  const dist = r.stderr.includes(path.join(pkg, 'dist', 'cli'));
  const src = r.stderr.includes(path.join(pkg, 'src', 'cli'));
  assert.ok(dist !== src, `one of dist/ or src/ in the stack:\n${r.stderr}`);
  return dist ? 'dist' : 'src';
}

describe('the compiled build (dist/)', () => {
  let pkg: string;
  let project: string;
  let built: ReturnType<typeof run>;
  before(() => {
    pkg = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-pkg-'));
    for (const entry of ['bin', 'scripts', 'src', 'package.json', 'tsconfig.json', 'tsconfig.build.json']) {
      fs.cpSync(path.join(REPO_ROOT, entry), path.join(pkg, entry), { recursive: true });
    }
    fs.symlinkSync(fs.realpathSync(path.join(REPO_ROOT, 'node_modules')), path.join(pkg, 'node_modules'));
    built = run(pkg, 'scripts/build.mjs', []);
    project = path.join(pkg, 'proj');
  });

  it('builds dist/: every module, .ts specifiers rewritten, the migrations beside the compiled stores', () => {
    assert.equal(built.code, 0, built.stderr);
    const sources = (dir: string, ext: string): string[] =>
      (fs.readdirSync(path.join(pkg, dir), { recursive: true }) as string[]).filter((f) => f.endsWith(ext)).map((f) => f.slice(0, -ext.length)).sort();
    assert.deepEqual(sources('dist', '.js'), sources('src', '.ts'));
    assert.deepEqual(sources('dist', '.sql'), sources('src', '.sql'));
    for (const file of sources('dist', '.js')) {
      const code = fs.readFileSync(path.join(pkg, 'dist', `${file}.js`), 'utf8');
      assert.doesNotMatch(code, /(from|import\()\s*'\.{1,2}\/[^']*\.ts'/, `${file}.js imports no .ts file`);
    }
    assert.equal(run(pkg, 'scripts/build.mjs', []).stdout, 'dist/ is up to date\n', 'a fresh build is not redone');
  });

  it('bin/agentq runs dist/ while it is fresh: a project made, its store migrated, status read', () => {
    assert.equal(run(pkg, 'bin/agentq', ['init', project]).code, 0);
    const status = run(pkg, 'bin/agentq', ['-p', project, 'status', '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).counts.queued, 0);
    assert.equal(ranFrom(pkg, project), 'dist');
    assert.equal(ranFrom(pkg, project, { AGENTQ_FROM_SOURCES: '1' }), 'src');
  });

  /**
   * The files `bin/agentq ARGS` loaded (run in the package, exit 0 asserted): every module the
   * ESM loader loads (a CommonJS package imported from ESM shows as its entry).
   */
  const loaded = (args: string[]): string[] => {
    const hooks = path.join(pkg, 'trace-hooks.mjs');
    fs.writeFileSync(hooks, "import fs from 'node:fs';\nexport async function load(url, context, next) {\n  fs.writeSync(2, `LOADED ${url}\\n`);\n  return next(url, context);\n}\n");
    const register = path.join(pkg, 'trace.mjs');
    fs.writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${hooks}`)});\n`);
    const r = spawnSync(process.execPath, ['--import', register, 'bin/agentq', ...args], { cwd: pkg, env: { ...process.env, AGENTQ_FROM_SOURCES: '' }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stderr
      .split('\n')
      .filter((l) => l.startsWith('LOADED file:'))
      .map((l) => l.slice('LOADED file://'.length));
  };

  it('--help, status (with a detector run and a notify: target), list, show and delegations load only their own code: not the dispatcher, notifier, zod, yaml, fastify, pg', async () => {
    const store = await openStore('sqlite:.agent-queue/agentq.db', project);
    await store.enqueue([{ spec: { ...baseSpec('one', 'x'), agent: 'command', command: 'true' }, dependsOnIds: [] }], Date.now());
    // What status reports besides the tasks: a detector's run and a notify: target.
    await store.recordDetectorRun({ name: 'scan', tick: 0, ranAt: Date.now(), durationMs: 5, exitCode: 2, error: 'detect: exited with code 2', problems: [], lines: 0, known: 0 }, [], Date.now());
    await store.close();
    const configFile = path.join(project, '.agent-queue', 'config.yaml');
    const config = fs.readFileSync(configFile, 'utf8');
    fs.appendFileSync(configFile, '\nnotify:\n  - on: [failed]\n    webhook: https://example.com/hook\n');
    assert.equal(run(pkg, 'bin/agentq', ['-p', project, 'status']).code, 0, 'the config cache made');
    const heavy =
      /\/node_modules\/(zod|yaml|fastify|pg|@modelcontextprotocol|@a2a-js|openai|chokidar|log-update)\/|\/dist\/(scheduler\/(dispatcher|reporter)|agents|server|intake|workspace|notify\/(notifier|events)|cli\/(progress|attach))/;
    const help = loaded(['--help']);
    assert.deepEqual(
      help.filter((f) => f.includes('/node_modules/')).map((f) => f.replace(/.*\/node_modules\/([^/]+)\/.*/, '$1')),
      ['commander', 'commander'],
      'commander only',
    );
    for (const args of [['status'], ['list'], ['show', 'one'], ['list', '--json', '--all'], ['delegations']]) {
      const files = loaded(['-p', project, ...args]);
      assert.ok(files.some((f) => f.endsWith('/dist/store/sqlite/sqlite-store.js')), `${args.join(' ')} ran`);
      assert.deepEqual(files.filter((f) => heavy.test(f)), [], `agentq ${args.join(' ')} loads none of them`);
    }
    const status = run(pkg, 'bin/agentq', ['-p', project, 'status']);
    assert.match(status.stdout, /scan {2}ran .*: failed, nothing taken: detect: exited with code 2/, 'the detector shown');
    assert.match(status.stdout, /notify\[0\] webhook https:\/\/example\.com\/…/, 'the notify target shown');
    fs.writeFileSync(configFile, config);
  });

  it('agentq run, idle, loads none of what only taking a file in, running an agent, notifying or a detector needs: not zod, yaml, the runners, the notifier, pidtree, cron-parser, chokidar (with inotify)', () => {
    const idle = path.join(pkg, 'idle-proj');
    assert.equal(run(pkg, 'bin/agentq', ['init', idle]).code, 0);
    const cacheFile = path.join(idle, '.agent-queue', '.config-cache.json');
    assert.equal(fs.existsSync(cacheFile), false);
    // No cache yet: config.yaml is validated by a child process, which caches it.
    const files = loaded(['-p', idle, 'run', '--once']);
    assert.ok(files.some((f) => f.endsWith('/dist/scheduler/dispatcher.js')), 'the dispatcher ran');
    assert.ok(fs.existsSync(cacheFile), 'the config cache made');
    const later = new RegExp(
      `/node_modules/(zod|yaml|fastify|pg|@modelcontextprotocol|@a2a-js|openai|pidtree|cron-parser${hasInotifywait() ? '|chokidar' : ''})/` +
        '|/dist/(config/(config|task-file)\\.js|intake/detect|agents/(claude|codex|gemini|openai|a2a)/|mcp/(http-host|server)|notify/notifier|server/)',
    );
    assert.deepEqual(files.filter((f) => later.test(f)), [], 'agentq run loads none of them while idle');
  });

  it('uses the cached config only for the config.yaml it was made from, and only from dist/', () => {
    const cacheFile = path.join(project, '.agent-queue', '.config-cache.json');
    assert.equal(run(pkg, 'bin/agentq', ['-p', project, 'status']).code, 0);
    assert.equal(fs.statSync(cacheFile).mode & 0o777, 0o600);
    // Cached: a store URL put in the cache (same key) is the one used.
    const cache = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { key: string; config: { store: string } };
    fs.writeFileSync(cacheFile, JSON.stringify({ ...cache, config: { ...cache.config, store: 'nosuch:cached' } }));
    const fromCache = run(pkg, 'bin/agentq', ['-p', project, 'status']);
    assert.equal(fromCache.code, 2);
    assert.match(fromCache.stderr, /store: unsupported URL "nosuch:cached"/);
    // The sources never read the cache.
    assert.equal(run(pkg, 'bin/agentq', ['-p', project, 'status'], { AGENTQ_FROM_SOURCES: '1' }).code, 0);
    // An edited config.yaml is validated again, and cached anew.
    const configFile = path.join(project, '.agent-queue', 'config.yaml');
    const original = fs.readFileSync(configFile);
    fs.appendFileSync(configFile, '\n# edited\n');
    assert.equal(run(pkg, 'bin/agentq', ['-p', project, 'status']).code, 0);
    assert.equal((JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as typeof cache).config.store, cache.config.store);
    // An invalid one is refused, never cached.
    fs.appendFileSync(configFile, 'concurency: 3\n');
    const invalid = run(pkg, 'bin/agentq', ['-p', project, 'list']);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /unknown key "concurency" \(did you mean "concurrency"\?\)/);
    assert.equal(run(pkg, 'bin/agentq', ['-p', project, 'list']).code, 2, 'still refused on the next run');
    fs.writeFileSync(configFile, original);
  });

  it('a source newer than the build: bin/agentq runs the sources until the next build', () => {
    const future = new Date(Date.now() + 60_000);
    fs.utimesSync(path.join(pkg, 'src', 'core', 'types.ts'), future, future);
    assert.equal(ranFrom(pkg, project), 'src');
    const added = path.join(pkg, 'src', 'core', 'added.ts');
    const rebuilt = run(pkg, 'scripts/build.mjs', []);
    assert.equal(rebuilt.code, 0, rebuilt.stderr);
    assert.equal(ranFrom(pkg, project), 'dist');
    // A file added (its folder's mtime changes), even with an old mtime of its own.
    fs.writeFileSync(added, 'export {};\n');
    fs.utimesSync(added, new Date(0), new Date(0));
    const later = new Date(future.getTime() + 60_000);
    fs.utimesSync(path.dirname(added), later, later);
    assert.equal(ranFrom(pkg, project), 'src');
  });
});
