/**
 * config.yaml's refusal of unknown keys, through the real `bin/agentq`.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { agentq, dropTask, listDir, makeProject } from '../fixtures/project.ts';

describe('config.yaml keys', () => {
  it('a misspelt key stops the CLI (exit 2) with the key named and the right one suggested', async () => {
    const paths = makeProject({ concurency: 2 });
    const status = await agentq(['status', '--project', paths.root]);
    assert.equal(status.code, 2, status.stderr);
    assert.equal(status.stderr.trim(), `agentq: ${paths.config}: (top level): unknown key "concurency" (did you mean "concurrency"?)`);
    dropTask(paths, 'job', { agent: 'command', command: 'echo ran' }, 'x');
    const run = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /unknown key "concurency" \(did you mean "concurrency"\?\)/);
    assert.deepEqual(listDir(paths.inbox), ['job.md'], 'nothing was taken in');
  });

  it('a misspelt key inside agents.<name> is refused too', async () => {
    const paths = makeProject();
    fs.writeFileSync(paths.config, YAML.stringify({ agents: { command: { comand: 'cat' } } }));
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /agents\.command: unknown key "comand" \(did you mean "command"\?\)/);
  });
});
