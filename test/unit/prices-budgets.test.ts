import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig, priceTable } from '../../src/config/config.ts';
import { costOf, CostMeter, priceOf } from '../../src/pricing/prices.ts';
import { budgetDay, budgetHolds } from '../../src/scheduler/budgets.ts';

describe('price table', () => {
  it('knows model families, picks the most specific pattern, and ignores [1m] and provider prefixes', () => {
    assert.equal(priceOf('claude-sonnet-5')?.input, 3, 'any claude-sonnet-* model');
    assert.equal(priceOf('claude-opus-4-8[1m]')?.output, 25);
    assert.equal(priceOf('claude-opus-4-1-20250805')?.output, 75, 'the older opus line is dearer');
    assert.equal(priceOf('gpt-5-mini')?.input, 0.25, 'gpt-5-mini* beats gpt-5*');
    assert.equal(priceOf('openai/gpt-5')?.input, 1.25);
    assert.equal(priceOf('gemini-2.5-flash-lite')?.input, 0.1, 'flash-lite beats flash');
    assert.equal(priceOf('gemini-3.8-flash')?.output, 2.5, 'a newer flash model at the family price');
    assert.equal(priceOf('llama3.1:8b'), null);
    assert.equal(priceOf(null), null);
  });

  it('prices tokens in USD per million, cache reads and writes at their own rates', () => {
    assert.equal(costOf('claude-sonnet-4-5', { inputTokens: 1_000_000, outputTokens: 100_000 }), 4.5);
    const cached = costOf('claude-sonnet-4-5', { inputTokens: 0, outputTokens: 0, cachedInputTokens: 1_000_000, cacheWriteTokens: 1_000_000 });
    assert.ok(Math.abs((cached ?? 0) - (0.3 + 3.75)) < 1e-9);
    assert.equal(costOf('unknown-model', { inputTokens: 5, outputTokens: 5 }), null);
  });

  it('config prices override and extend the defaults', () => {
    const config = parseConfig({ prices: { 'llama*': { input: 0, output: 0 }, 'claude-sonnet-*': { input: 1, output: 2 } } });
    const table = priceTable(config);
    assert.equal(costOf('llama3.1:8b', { inputTokens: 1000, outputTokens: 1000 }, table), 0);
    assert.equal(priceOf('claude-sonnet-5', table)?.input, 1);
    assert.throws(() => parseConfig({ prices: { x: { input: 'cheap', output: 1 } } }), /prices\.x\.input/);
  });

  it('CostMeter adds streamed responses and remembers unpriced models', () => {
    const meter = new CostMeter();
    meter.add('claude-sonnet-5', { inputTokens: 10_000, outputTokens: 0 });
    const total = meter.add('mystery', { inputTokens: 10_000, outputTokens: 0 });
    assert.ok(Math.abs(total - 0.03) < 1e-9);
    assert.deepEqual([...meter.unpriced], ['mystery']);
    assert.equal(meter.priced, true);
  });
});

describe('daily budgets', () => {
  it('a budget day starts at day_start local time and lasts until the same time tomorrow', () => {
    const at = (y: number, mo: number, d: number, h: number, mi = 0) => new Date(y, mo, d, h, mi).getTime();
    assert.deepEqual(budgetDay(at(2026, 10, 23, 15), '00:00'), { start: at(2026, 10, 23, 0), end: at(2026, 10, 24, 0) });
    assert.deepEqual(budgetDay(at(2026, 10, 23, 5), '06:30'), { start: at(2026, 10, 22, 6, 30), end: at(2026, 10, 23, 6, 30) });
    assert.deepEqual(budgetDay(at(2026, 10, 23, 6, 30), '06:30').start, at(2026, 10, 23, 6, 30));
  });

  const usage = (agent: string, costUsd: number) => ({ agent, running: 0, attempts: 1, costUsd, inputTokens: 0, outputTokens: 0 });

  it('holds an agent past its own daily_usd until the next day, and every agent past the project budget', () => {
    const now = new Date(2026, 10, 23, 15).getTime();
    const tomorrow = new Date(2026, 10, 24).getTime();
    const perAgent = parseConfig({ agents: { claude: { budgets: { daily_usd: 5 } } } });
    assert.deepEqual(budgetHolds(perAgent, ['claude', 'codex'], [usage('claude', 4.99), usage('codex', 100)], now), []);
    const held = budgetHolds(perAgent, ['claude', 'codex'], [usage('claude', 5), usage('codex', 100)], now);
    assert.deepEqual(held.map((h) => [h.agent, h.until]), [['claude', tomorrow]]);
    assert.match(held[0]!.reason, /daily budget reached: \$5\.0000 of agents\.claude\.budgets\.daily_usd \$5/);

    const onAccount = parseConfig({ agents: { claude: { account: 'team-a', budgets: { daily_usd: 5 } } } });
    assert.deepEqual(
      budgetHolds(onAccount, ['claude'], [usage('claude', 5)], now).map((h) => [h.agent, h.account]),
      [['claude', 'team-a']],
      'the hold pauses the account',
    );

    const project = parseConfig({ budgets: { daily_usd: 10, day_start: '00:00' } });
    assert.deepEqual(budgetHolds(project, ['claude', 'codex'], [usage('claude', 6)], now), []);
    const all = budgetHolds(project, ['claude', 'codex'], [usage('claude', 6), usage('codex', 4)], now);
    assert.deepEqual(all.map((h) => h.agent), ['claude', 'codex']);
    assert.match(all[0]!.reason, /of budgets\.daily_usd \$10/);
  });

  it('rejects a bad day_start or budget, naming the field', () => {
    assert.throws(() => parseConfig({ budgets: { day_start: '25:00' } }), /budgets\.day_start/);
    assert.throws(() => parseConfig({ agents: { claude: { budgets: { daily_usd: -1 } } } }), /agents\.claude\.budgets\.daily_usd/);
  });
});
