/**
 * SQLite migrations: several processes opening a new store at the same moment (e.g. `agentq
 * run` and `agentq status` on a fresh project) apply each migration once and all succeed; a
 * store written by a newer agentq is refused and left as it was.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import Database from 'better-sqlite3';
import { ConfigError, StoreTooNewError } from '../../src/core/errors.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

/** The newest schema version this checkout knows: the highest migration number. */
const NEWEST = Math.max(...fs.readdirSync(new URL('../../src/store/sqlite/migrations/', import.meta.url)).map((f) => Number.parseInt(f, 10)));

/** Loads the store module, waits at the barrier (`DB.go`), then opens the store. */
const OPEN = `
import fs from 'node:fs';
const { SqliteStore } = await import(process.env.STORE_MODULE);
const file = process.argv[1];
while (!fs.existsSync(file + '.go')) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
new SqliteStore(file).close();
`;

it('processes opening a new store together all succeed, each migration applied once', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-migrate-'));
  const file = path.join(dir, 'agentq.db');
  const module = new URL('../../src/store/sqlite/sqlite-store.ts', import.meta.url).href;
  const runs = Array.from({ length: 8 }, () => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', OPEN, file], { env: { ...process.env, STORE_MODULE: module }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    return new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
  });
  // Let every process load and wait at the barrier, then release them together.
  await new Promise((r) => setTimeout(r, 2000));
  fs.writeFileSync(`${file}.go`, '');
  for (const r of await Promise.all(runs)) assert.equal(r.code, 0, r.stderr);
  const store = new SqliteStore(file);
  const version = Number(store.db.pragma('user_version', { simple: true }));
  await store.close();
  assert.equal(version, NEWEST);
  fs.rmSync(dir, { recursive: true, force: true });
});

it('refuses a store whose schema is newer than its migrations, naming both versions, and leaves the file unchanged', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-migrate-'));
  const file = path.join(dir, 'agentq.db');
  const store = new SqliteStore(file);
  await store.close();
  const raw = new Database(file);
  raw.pragma(`user_version = ${NEWEST + 2}`);
  raw.close();
  const before = fs.readFileSync(file);
  const files = fs.readdirSync(dir).sort();

  assert.throws(
    () => new SqliteStore(file),
    (err: unknown) => {
      assert.ok(err instanceof StoreTooNewError);
      assert.ok(err instanceof ConfigError, 'a ConfigError: the CLI prints one line and exits 2');
      assert.equal(err.code, 'store_too_new');
      assert.equal(err.message, `store ${file}: schema ${NEWEST + 2} is newer than this agentq (${NEWEST}); upgrade agentq`);
      assert.equal(err.storeVersion, NEWEST + 2);
      assert.equal(err.knownVersion, NEWEST);
      return true;
    },
  );
  assert.ok(fs.readFileSync(file).equals(before), 'the file is left unchanged');
  assert.deepEqual(fs.readdirSync(dir).sort(), files, 'no file left beside it');
  const check = new Database(file, { readonly: true });
  assert.equal(Number(check.pragma('user_version', { simple: true })), NEWEST + 2);
  check.close();
  fs.rmSync(dir, { recursive: true, force: true });
});
