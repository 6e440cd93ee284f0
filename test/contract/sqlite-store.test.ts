import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { storeContract } from './store/index.ts';

storeContract('sqlite', {
  async open() {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-store-')), 'agentq.db');
    return { store: new SqliteStore(file), openSecond: async () => new SqliteStore(file) };
  },
});
