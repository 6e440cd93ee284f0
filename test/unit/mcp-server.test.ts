/**
 * What each MCP server made by createMcpServer costs: the dispatcher's HTTP host makes one per
 * request, so they share one JSON Schema validator (the SDK otherwise makes an Ajv instance per
 * server). Real SQLite store; the SDK's own field is read, as nothing public shows it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { createMcpServer } from '../../src/mcp/server.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { makeProject } from '../fixtures/project.ts';

it('the servers createMcpServer makes share one JSON Schema validator', async () => {
  const paths = makeProject();
  const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
  try {
    const ctx = { store, paths, config: loadConfig(paths.root), runningTask: null, log: () => {} };
    const validatorOf = (s: ReturnType<typeof createMcpServer>) => (s.server as unknown as { _jsonSchemaValidator: unknown })._jsonSchemaValidator;
    const [a, b] = [createMcpServer(ctx), createMcpServer(ctx)];
    assert.ok(validatorOf(a), 'the SDK keeps its validator where this test reads it');
    assert.equal(validatorOf(a), validatorOf(b));
  } finally {
    await store.close();
    fs.rmSync(paths.root, { recursive: true, force: true });
  }
});
