/**
 * Several processes opening a new SQLite store at the same moment (e.g. `agentq run` and
 * `agentq status` on a fresh project) apply each migration once and all succeed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

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
  const newest = Math.max(...fs.readdirSync(new URL('../../src/store/sqlite/migrations/', import.meta.url)).map((f) => Number.parseInt(f, 10)));
  assert.equal(version, newest);
  fs.rmSync(dir, { recursive: true, force: true });
});
