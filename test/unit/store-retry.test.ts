/**
 * Store outages on a real SQLite file: which errors are transient, `probeWrite` while another
 * connection holds the write lock, and `StoreRetry` waiting a lock out (one report per outage).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { StoreRetry } from '../../src/scheduler/store-retry.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { isTransientStoreError } from '../../src/store/store.ts';

const dbFile = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-retry-')), 'agentq.db');
const worker = (id: string, at: number) => ({ id, host: 'h', pid: 1, startedAt: at, heartbeatAt: at, labels: [], root: null });

/** A second connection holding the store's write lock until `release()`. */
function holdWriteLock(file: string): { release: () => void } {
  const db = new Database(file);
  db.exec('BEGIN IMMEDIATE');
  return {
    release: () => {
      db.exec('ROLLBACK');
      db.close();
    },
  };
}

describe('store outages', () => {
  it('isTransientStoreError: a lock, a full disk and I/O errors pass; a constraint, a closed connection and others do not', async () => {
    const file = dbFile();
    const store = new SqliteStore(file, { busyTimeoutMs: 20 });
    const lock = holdWriteLock(file);
    const busy = await store.registerWorker(worker('w', 1)).then(
      () => null,
      (err: unknown) => err,
    );
    lock.release();
    assert.equal((busy as { code?: string }).code, 'SQLITE_BUSY');
    assert.ok(isTransientStoreError(busy));
    for (const code of ['SQLITE_FULL', 'SQLITE_IOERR_WRITE', 'SQLITE_IOERR', 'SQLITE_LOCKED_SHAREDCACHE', 'SQLITE_CANTOPEN', 'ENOSPC', 'EDQUOT']) {
      assert.ok(isTransientStoreError(Object.assign(new Error(code), { code })), code);
    }
    const constraint = (() => {
      try {
        store.db.exec('INSERT INTO workers (id) VALUES (NULL)');
      } catch (err) {
        return err;
      }
    })();
    assert.match(String((constraint as { code?: string }).code), /^SQLITE_CONSTRAINT/);
    assert.ok(!isTransientStoreError(constraint));
    await store.close();
    const closed = await store.listWorkers().then(
      () => null,
      (err: unknown) => err,
    );
    assert.match(String((closed as Error).message), /not open/);
    assert.ok(!isTransientStoreError(closed));
    for (const err of [new Error('x'), Object.assign(new Error('x'), { code: 'SQLITE_BUSYNESS' }), null, undefined, 'SQLITE_BUSY', { code: 7 }]) {
      assert.ok(!isTransientStoreError(err), String(err));
    }
  });

  it('probeWrite says the store is busy while another connection holds the write lock, and writes nothing', async () => {
    const file = dbFile();
    const store = new SqliteStore(file);
    assert.equal(await store.probeWrite(50), null);
    const lock = holdWriteLock(file);
    const started = Date.now();
    assert.equal(await store.probeWrite(200), 'database is locked');
    assert.ok(Date.now() - started >= 150, 'it waited for the lock first');
    lock.release();
    assert.equal(await store.probeWrite(50), null);
    assert.equal(Number(store.db.pragma('busy_timeout', { simple: true })), 10_000, 'the busy timeout is restored');
    assert.equal(store.db.inTransaction, false);
    await store.close();
  });

  it('StoreRetry waits a lock out: calls go through after it, one report when it starts and one when it ends', async () => {
    const file = dbFile();
    const store = new SqliteStore(file, { busyTimeoutMs: 20 });
    const reports: string[] = [];
    const retry = new StoreRetry({
      unavailable: (err, retryInMs) => reports.push(`unavailable ${err.message} ${retryInMs > 0}`),
      back: (outageMs) => reports.push(`back ${outageMs >= 300}`),
    });
    const retried = retry.wrap(store);
    const lock = holdWriteLock(file);
    const lockedAt = Date.now();
    const calls = [1, 2, 3].map((i) => retried.registerWorker(worker(`w${i}`, i)));
    // Reads go through a write lock (WAL), and do not end the outage.
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await retried.listWorkers(), []);
    assert.ok(retry.unavailableSince !== null && retry.unavailableSince <= lockedAt + 50);
    await new Promise((r) => setTimeout(r, 300));
    lock.release();
    await Promise.all(calls);
    assert.deepEqual((await store.listWorkers()).map((w) => w.id).sort(), ['w1', 'w2', 'w3']);
    assert.deepEqual(reports, ['unavailable database is locked true', 'back true']);
    assert.equal(retry.unavailableSince, null);
    assert.ok(retry.lastBackAt !== null && retry.lastBackAt >= lockedAt + 400);
    // Other errors are not retried.
    await assert.rejects(retried.cancel(999, 1), /no task 999/);
    await store.close();
  });
});
