/**
 * What agents inherit from agentq's environment, through the real `bin/agentq`.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { agentq, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';

/** Every file under `dir`, recursively (the store, its WAL, logs, results …). */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => path.join(dir, f)).filter((f) => fs.statSync(f).isFile());
}

describe('agent environment', () => {
  it("keeps agentq's token and store out of an agent that prints its environment: not in the result, the logs or the store", async () => {
    const secret = `sekrit-${process.pid}-${Date.now()}`;
    const paths = makeProject({ agents: { command: { env: { ADDED_BY_CONFIG: 'yes' } } } });
    dropTask(paths, 'print-env', { agent: 'command', command: 'env' }, 'show me');
    const r = await agentq(['run', '--once', '--project', paths.root], {
      AGENTQ_TOKEN: secret,
      AGENTQ_STORE: 'sqlite:.agent-queue/agentq.db',
      AGENTQ_VISIBLE_MARK: 'plain-value',
      OPENAI_API_KEY: 'sk-agent-credential',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(listDir(paths.done), ['print-env.md']);
    const { body } = readResult(path.join(paths.done, 'print-env.md'));
    const vars = new Map(body.split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
    assert.match(vars.get('AGENTQ_ATTEMPT_ID') ?? '', /^[0-9a-f-]{36}$/, 'the process tag is there');
    assert.equal(vars.get('AGENTQ_TASK_NAME'), 'print-env');
    assert.equal(vars.get('AGENTQ_VISIBLE_MARK'), 'plain-value');
    assert.equal(vars.get('OPENAI_API_KEY'), 'sk-agent-credential', "agents' own credentials pass");
    assert.equal(vars.get('ADDED_BY_CONFIG'), 'yes');
    assert.ok(!vars.has('AGENTQ_TOKEN'), 'AGENTQ_TOKEN reached the agent');
    assert.ok(!vars.has('AGENTQ_STORE'), 'AGENTQ_STORE reached the agent');
    const files = filesUnder(paths.dir);
    assert.ok(files.some((f) => f.endsWith('.stdout.log')), 'the logs were looked at');
    assert.ok(files.some((f) => f.endsWith('agentq.db')), 'the store was looked at');
    for (const file of files) {
      assert.ok(!fs.readFileSync(file).includes(secret), `the token is in ${path.relative(paths.root, file)}`);
    }
  });

  it('agent_env.deny in config.yaml keeps a variable out', async () => {
    const paths = makeProject({ agent_env: { deny: ['AGENTQ_VISIBLE_*'] } });
    dropTask(paths, 'print-env', { agent: 'command', command: 'env' }, 'x');
    const r = await agentq(['run', '--once', '--project', paths.root], { AGENTQ_VISIBLE_MARK: 'plain-value' });
    assert.equal(r.code, 0, r.stderr);
    const { body } = readResult(path.join(paths.done, 'print-env.md'));
    assert.doesNotMatch(body, /AGENTQ_VISIBLE_MARK/);
    assert.match(body, /^AGENTQ_ATTEMPT_ID=/m);
  });
});
