/**
 * A store written by a newer agentq, seen from the real `bin/agentq`: one line naming both
 * schema versions, exit 2 (a store that cannot be used, like a bad --store), file untouched.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import Database from 'better-sqlite3';
import { agentq, makeProject } from '../fixtures/project.ts';

it('agentq status on a store from a newer agentq prints one line and exits 2, leaving the store as it was', async () => {
  const paths = makeProject();
  const created = await agentq(['status', '--project', paths.root]);
  assert.equal(created.code, 0, created.stderr);
  const file = path.join(paths.root, '.agent-queue', 'agentq.db');
  const db = new Database(file);
  const newest = Number(db.pragma('user_version', { simple: true }));
  assert.ok(newest > 0, 'the first run migrated the store');
  db.pragma(`user_version = ${newest + 2}`);
  db.close();
  const before = fs.readFileSync(file);

  const r = await agentq(['status', '--project', paths.root]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `agentq: store ${file}: schema ${newest + 2} is newer than this agentq (${newest}); upgrade agentq\n`);
  assert.ok(fs.readFileSync(file).equals(before), 'the store file is left unchanged');
});
