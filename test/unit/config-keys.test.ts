/**
 * config.yaml refuses unknown keys by name, suggesting the closest known one; free-form maps stay free.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/config.ts';

describe('config.yaml keys', () => {
  it('refuses an unknown top-level key, suggesting the closest known one', () => {
    assert.throws(() => parseConfig({ concurency: 2 }, 'config.yaml'), {
      name: 'ConfigError',
      message: 'config.yaml: (top level): unknown key "concurency" (did you mean "concurrency"?)',
    });
  });

  it('refuses unknown keys inside agents.<name>, budgets, serve, prices entries, models, fallback, agent_env', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ agents: { claude: { permision_mode: 'plan' } } }, /agents\.claude: unknown key "permision_mode" \(did you mean "permission_mode"\?\)/],
      [{ agents: { codex: { budgets: { daly_usd: 1 } } } }, /agents\.codex\.budgets: unknown key "daly_usd" \(did you mean "daily_usd"\?\)/],
      [{ budgets: { daystart: '06:00' } }, /budgets: unknown key "daystart" \(did you mean "day_start"\?\)/],
      [{ serve: { tokn: 'x' } }, /serve: unknown key "tokn" \(did you mean "token"\?\)/],
      [{ prices: { 'llama*': { input: 0, output: 0, cached: 0 } } }, /prices\.llama\*: unknown key "cached" \(known keys: input, output, cached_input, cache_write\)/],
      [{ agents: { claude: { models: { critcal: 'opus' } } } }, /agents\.claude\.models: unknown key "critcal" \(did you mean "critical"\?\)/],
      [{ fallback: { hgh: ['claude'] } }, /fallback: unknown key "hgh" \(did you mean "high"\?\)/],
      [{ agent_env: { alow: ['PATH'] } }, /agent_env: unknown key "alow" \(did you mean "allow"\?\)/],
      [{ remotes: { box: { url: 'http://127.0.0.1:1/', tokn_env: 'T' } } }, /remotes\.box: unknown key "tokn_env" \(did you mean "token_env"\?\)/],
    ];
    for (const [raw, message] of cases) assert.throws(() => parseConfig(raw), message, JSON.stringify(raw));
  });

  it('names every unknown key; without a close one it lists the known keys', () => {
    assert.throws(() => parseConfig({ zzz: 1, agents: { claude: { modle: 'x', permision_mode: 'y' } } }), (err: Error) => {
      assert.match(err.message, /agents\.claude: unknown keys "modle" \(did you mean "models"\?\), "permision_mode" \(did you mean "permission_mode"\?\)/);
      assert.match(err.message, /\(top level\): unknown key "zzz" \(known keys: store, concurrency, .*agent_env.*\)/);
      return true;
    });
  });

  it('reads verify (a command or a list), verify_timeout, verify_retries and stall_timeout (0: off), with their defaults', () => {
    const d = parseConfig({});
    assert.deepEqual([d.verify, d.verify_timeout, d.verify_retries, d.stall_timeout], [[], 600_000, 2, 600_000]);
    const c = parseConfig({ verify: 'npm test', verify_timeout: '2m', verify_retries: 0, stall_timeout: 0 });
    assert.deepEqual([c.verify, c.verify_timeout, c.verify_retries, c.stall_timeout], [['npm test'], 120_000, 0, 0]);
    assert.deepEqual(parseConfig({ verify: ['a', 'b'], stall_timeout: '0s' }).verify, ['a', 'b']);
    assert.equal(parseConfig({ stall_timeout: '45s' }).stall_timeout, 45_000);
    assert.throws(() => parseConfig({ stall_timeout: 'soon' }), /stall_timeout: not a duration: "soon" \(use e\.g\. 90s, 30m, 2h, or 0 for off\)/);
    assert.throws(() => parseConfig({ verify: '  ' }), /verify: not a command \(an empty string\)/);
    assert.throws(() => parseConfig({ verify_retries: -1 }), /verify_retries/);
  });

  it('remotes: names as task names, http(s) URLs; delegation_stuck_after defaults to 10m', () => {
    assert.throws(() => parseConfig({ remotes: { box: { url: 'ftp://box' } } }), /remotes\.box\.url: not an http\(s\) URL/);
    assert.throws(() => parseConfig({ remotes: { 'build box': { url: 'http://box' } } }), /remotes\.build box: not a remote name/);
    const config = parseConfig({ remotes: { box: { url: 'http://box:8765', token_env: 'BOX_TOKEN' } } });
    assert.deepEqual(config.remotes.box, { url: 'http://box:8765', token_env: 'BOX_TOKEN' });
    assert.equal(config.delegation_stuck_after, 600_000);
    assert.equal(parseConfig({ delegation_stuck_after: '2m' }).delegation_stuck_after, 120_000);
  });

  it('keeps free-form maps free: agent names, env, aliases, price patterns', () => {
    const config = parseConfig({
      agents: { 'my-agent': { env: { ANY_NAME: '1' }, aliases: { whatever: 'm' } } },
      prices: { 'anything-*': { input: 1, output: 2 } },
    });
    assert.equal(config.agents['my-agent']?.env.ANY_NAME, '1');
    assert.equal(config.agents['my-agent']?.aliases.whatever, 'm');
  });
});
