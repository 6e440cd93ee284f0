/**
 * `agentEnv`: what an agent's processes inherit from agentq's environment (config `agent_env`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AGENTQ_OWN_ENV, agentEnv } from '../../src/agents/agent-env.ts';
import { parseConfig } from '../../src/config/config.ts';

const BASE = {
  PATH: '/usr/bin',
  HOME: '/home/me',
  LC_ALL: 'C',
  AGENTQ_TOKEN: 'sekrit',
  AGENTQ_STORE: 'sqlite:/tmp/q.db',
  AGENTQ_CLAUDE_COMMAND: '/opt/claude',
  AGENTQ_CODEX_COMMAND: '/opt/codex',
  AGENTQ_GEMINI_COMMAND: '/opt/gemini',
  AGENTQ_TEST_MARK: 'm1',
  AGENTQ_TASK_ID: 'stale',
  ANTHROPIC_API_KEY: 'sk-ant',
  CLAUDE_CONFIG_DIR: '/home/me/.claude',
  OPENAI_API_KEY: 'sk-oa',
  GEMINI_API_KEY: 'g-key',
  AWS_SECRET_ACCESS_KEY: 'aws',
  AWS_REGION: 'eu-west-1',
  MY_KEY: 'mine',
  PLAIN: 'plain',
  UNSET: undefined,
};
const TAGS = { AGENTQ_TASK_ID: '7', AGENTQ_TASK_NAME: 'fix-it' };

describe('agentEnv', () => {
  it('by default passes everything but agentq own variables (the token, the store, the CLI paths), then the tags', () => {
    const env = agentEnv(BASE, parseConfig({}), 'claude', TAGS);
    for (const name of ['AGENTQ_TOKEN', 'AGENTQ_STORE', 'AGENTQ_CLAUDE_COMMAND', 'AGENTQ_CODEX_COMMAND', 'AGENTQ_GEMINI_COMMAND']) {
      assert.ok(AGENTQ_OWN_ENV.includes(name), name);
      assert.equal(env[name], undefined, name);
    }
    assert.equal(env.AGENTQ_TASK_ID, '7', 'the tags win over an inherited value');
    assert.equal(env.AGENTQ_TASK_NAME, 'fix-it');
    for (const name of ['PATH', 'HOME', 'ANTHROPIC_API_KEY', 'OPENAI_API_KEY', 'GEMINI_API_KEY', 'AWS_SECRET_ACCESS_KEY', 'AGENTQ_TEST_MARK', 'PLAIN']) {
      assert.equal(env[name], BASE[name as keyof typeof BASE], name);
    }
    assert.ok(!('UNSET' in env));
  });

  it('deny drops matching names (* wildcard); the tags cannot be denied', () => {
    const env = agentEnv(BASE, parseConfig({ agent_env: { deny: ['AWS_*', 'MY_KEY', 'AGENTQ_*'] } }), 'command', TAGS);
    assert.equal(env.AWS_SECRET_ACCESS_KEY, undefined);
    assert.equal(env.AWS_REGION, undefined);
    assert.equal(env.MY_KEY, undefined);
    assert.equal(env.AGENTQ_TEST_MARK, undefined);
    assert.equal(env.AGENTQ_TASK_ID, '7');
    assert.equal(env.AGENTQ_TASK_NAME, 'fix-it');
    assert.equal(env.PLAIN, 'plain');
    assert.equal(env.OPENAI_API_KEY, 'sk-oa');
  });

  it('allow passes only matching names, the basics and the agent own credentials; deny still wins', () => {
    const config = parseConfig({ agent_env: { allow: ['MY_*', 'AWS_*', 'AGENTQ_TOKEN'], deny: ['AWS_SECRET_*'] } });
    const claude = agentEnv(BASE, config, 'claude', TAGS);
    assert.deepEqual(claude, {
      PATH: '/usr/bin',
      HOME: '/home/me',
      LC_ALL: 'C',
      ANTHROPIC_API_KEY: 'sk-ant',
      CLAUDE_CONFIG_DIR: '/home/me/.claude',
      AWS_REGION: 'eu-west-1',
      MY_KEY: 'mine',
      ...TAGS,
    });
    const gemini = agentEnv(BASE, config, 'gemini', TAGS);
    assert.equal(gemini.GEMINI_API_KEY, 'g-key');
    assert.equal(gemini.ANTHROPIC_API_KEY, undefined, "one agent's credentials do not go to another");
    const command = agentEnv(BASE, config, 'command', TAGS);
    assert.equal(command.OPENAI_API_KEY, undefined);
    assert.equal(command.GEMINI_API_KEY, undefined);
  });

  it("the openai agent keeps its api_key_env under allow", () => {
    const config = parseConfig({ agent_env: { allow: ['PLAIN'] }, agents: { openai: { api_key_env: 'MY_KEY' } } });
    const env = agentEnv(BASE, config, 'openai', TAGS);
    assert.equal(env.MY_KEY, 'mine');
    assert.equal(env.OPENAI_API_KEY, 'sk-oa');
    assert.equal(env.AWS_REGION, undefined);
  });

  it('agents.<name>.env is added after the filter, the tags after that', () => {
    const config = parseConfig({
      agent_env: { allow: ['PLAIN'], deny: ['EXTRA'] },
      agents: { command: { env: { EXTRA: 'x', AGENTQ_STORE: 'sqlite:other.db', AGENTQ_TASK_NAME: 'not-mine' } } },
    });
    const env = agentEnv(BASE, config, 'command', TAGS);
    assert.equal(env.EXTRA, 'x');
    assert.equal(env.AGENTQ_STORE, 'sqlite:other.db', 'an explicit addition may pass an agentq variable on');
    assert.equal(env.AGENTQ_TASK_NAME, 'fix-it');
  });

  it('does not change its arguments', () => {
    const base = { ...BASE };
    agentEnv(base, parseConfig({ agent_env: { deny: ['PLAIN'] } }), 'claude', TAGS);
    assert.deepEqual(base, BASE);
  });

  it('config refuses a malformed pattern, naming where', () => {
    assert.throws(() => parseConfig({ agent_env: { deny: ['A=B'] } }), /agent_env\.deny\[0\]: not an environment variable name or pattern/);
    assert.throws(() => parseConfig({ agent_env: { allow: 'PATH' } }), /agent_env\.allow: /);
  });
});
