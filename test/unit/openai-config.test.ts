/**
 * The `openai` agent's configuration: `base_url` / `api_key_env` / `model` in config, model
 * routing through `agents.<name>.model`, and `agent: openai` in task files.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { agentConfig, parseConfig } from '../../src/config/config.ts';
import { baseSpec, parseTaskFile } from '../../src/config/task-file.ts';
import type { Task } from '../../src/core/types.ts';
import { routeModel } from '../../src/scheduler/dispatcher.ts';

const task = (agent: string, model: string | null, priority: Task['priority'] = 'default') => ({ ...baseSpec('t', 'p'), agent, model, priority }) as Task;

describe('openai config', () => {
  it('base_url must be an http(s) URL; api_key_env defaults to OPENAI_API_KEY', () => {
    const c = agentConfig(parseConfig({ agents: { openai: { base_url: 'http://127.0.0.1:11434/v1' } } }), 'openai');
    assert.equal(c.base_url, 'http://127.0.0.1:11434/v1');
    assert.equal(c.api_key_env, 'OPENAI_API_KEY');
    assert.equal(agentConfig(parseConfig({}), 'openai').base_url, undefined);
    assert.throws(() => parseConfig({ agents: { openai: { base_url: 'localhost:11434' } } }), /agents\.openai\.base_url: not an http\(s\) URL/);
    assert.throws(() => parseConfig({ agents: { openai: { api_key_env: '' } } }), /agents\.openai\.api_key_env/);
  });

  it('routing: task model, then models per priority, then the agent model; aliases resolve', () => {
    const config = parseConfig({ agents: { openai: { model: 'llama3.2', models: { critical: 'mini' } } } });
    assert.equal(routeModel(task('openai', null), config), 'llama3.2');
    assert.equal(routeModel(task('openai', null, 'critical'), config), 'gpt-5-mini');
    assert.equal(routeModel(task('openai', 'qwen3:8b'), config), 'qwen3:8b');
    assert.equal(routeModel(task('openai', null), parseConfig({})), null);
    const claude = parseConfig({ agents: { claude: { model: 'haiku' } } });
    assert.equal(routeModel(task('claude', null, 'critical'), claude), 'haiku', 'an agent model comes before the built-in defaults');
  });

  it('task files may name agent: openai', () => {
    const s = parseTaskFile('t', '---\nagent: openai\nmodel: llama3.2\n---\nSummarize.\n', { default_timeout: 60_000, default_retries: 0 });
    assert.equal(s.agent, 'openai');
    assert.throws(() => parseTaskFile('t', '---\nagent: openaii\n---\nX\n', { default_timeout: 60_000, default_retries: 0 }), /openai, command, a2a\) or auto/);
  });
});
