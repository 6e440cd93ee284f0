/**
 * `agentq usage` end to end: real tasks through `agentq run --once` (the real Claude Code CLI
 * against the scripted Messages API, which reports cost and tokens, and the `command` agent,
 * which reports none), then the summary read back by a separate `agentq usage` process.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { claudeEnv, makeClaudeSandbox } from '../fixtures/claude-env.ts';
import { startFakeAnthropic } from '../fixtures/fake-anthropic.ts';
import { agentq, dropTask, makeProject, readResult } from '../fixtures/project.ts';

interface Figures {
  attempts: number;
  completed: number;
  costUsd: number;
  inputTokens: number;
  outputTokens: number;
}
type Row = Figures & { day?: string; agent?: string; model?: string | null; tag?: string | null };
interface Report {
  since: string;
  until: string;
  timeZone: string;
  by: string[];
  rows: Row[];
  total: Figures;
}

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-8, `${what}: ${a} vs ${b}`);

describe('agentq usage', { concurrency: false }, () => {
  let fake: Awaited<ReturnType<typeof startFakeAnthropic>>;
  let env: Record<string, string>;
  before(async () => {
    fake = await startFakeAnthropic({ defaultTurns: [{ text: 'done by {{model}}' }] });
    env = claudeEnv(fake.url, makeClaudeSandbox().config);
  });
  after(async () => fake.close());

  it('sums the cost and tokens of real runs per agent, model and tag; the total counts a two-tag attempt once', async () => {
    const paths = makeProject();
    const p = ['--project', paths.root];
    fake.setRules([{ match: 'big job', turns: [{ text: 'big done', usage: { input_tokens: 1200, output_tokens: 345 } }] }]);
    dropTask(paths, 'both', { tags: ['api', 'ui'] }, 'Do the big job.');
    dropTask(paths, 'api-only', { tags: ['api'], priority: 'critical' }, 'Do the api job.');
    dropTask(paths, 'plain', { agent: 'command', command: 'echo plain' }, 'x');
    const run = await agentq(['run', '--once', ...p], env);
    assert.equal(run.code, 0, run.stderr);

    const result = (name: string) => readResult(path.join(paths.done, `${name}.md`)).fm;
    const both = result('both');
    const apiOnly = result('api-only');
    const cost = (fm: Record<string, unknown>) => Number(fm.cost_usd);
    assert.ok(cost(both) > 0 && cost(apiOnly) > 0, 'claude reported a cost');
    assert.equal(both.input_tokens, 1200);
    assert.equal(both.output_tokens, 345);
    assert.equal(result('plain').cost_usd, undefined, 'the command agent reports no cost');

    const usage = async (...args: string[]): Promise<Report> => {
      const r = await agentq(['usage', '--json', ...args, ...p]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Report;
    };
    const sum = (...fms: Array<Record<string, unknown>>) => fms.reduce((s, fm) => s + cost(fm), 0);
    const tokensIn = (...fms: Array<Record<string, unknown>>) => fms.reduce((s, fm) => s + Number(fm.input_tokens ?? 0), 0);

    const report = await usage();
    assert.deepEqual(report.by, ['day', 'agent', 'model']);
    assert.ok(Date.parse(report.since) < Date.parse(report.until));
    assert.equal(report.total.attempts, 3);
    assert.equal(report.total.completed, 3);
    close(report.total.costUsd, sum(both, apiOnly), 'total cost');
    assert.equal(report.total.inputTokens, tokensIn(both, apiOnly));
    assert.equal(report.total.outputTokens, 345 + Number(apiOnly.output_tokens));
    close(report.rows.reduce((s, r) => s + r.costUsd, 0), report.total.costUsd, 'rows add up to the total without tag');

    const byModel = await usage('--by', 'agent,model', '--since', '1h');
    assert.equal(apiOnly.model, 'claude-opus-4-8', 'critical routes to opus');
    assert.equal(both.model, 'claude-sonnet-5');
    assert.deepEqual(
      byModel.rows.map((r) => [r.agent, r.model, r.attempts, r.inputTokens]),
      [
        ['claude', 'claude-opus-4-8', 1, tokensIn(apiOnly)],
        ['claude', 'claude-sonnet-5', 1, 1200],
        ['command', null, 1, 0],
      ],
    );

    const byTag = await usage('--by', 'tag');
    assert.deepEqual(byTag.rows.map((r) => [r.tag, r.attempts]), [['api', 2], ['ui', 1], [null, 1]]);
    const tag = (t: string | null) => byTag.rows.find((r) => r.tag === t)!;
    close(tag('api').costUsd, sum(both, apiOnly), 'api');
    close(tag('ui').costUsd, sum(both), 'ui');
    assert.equal(tag('ui').inputTokens, 1200);
    assert.equal(tag(null).costUsd, 0);
    assert.equal(byTag.total.attempts, 3, 'the two-tag attempt counts once in the total');

    const table = await agentq(['usage', '--by', 'tag', ...p]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^spend from \d{4}-\d\d-\d\d 00:00 to \d{4}-\d\d-\d\d \d\d:\d\d \(.+\), by tag$/);
    assert.match(lines[1]!, /^TAG\s+ATTEMPTS\s+COMPLETED\s+COST\s+TOKENS IN\s+TOKENS OUT$/);
    const usd = (n: number) => `\\$${n.toFixed(4).replace('.', '\\.')}`;
    const thousands = (n: number) => n.toLocaleString('en-US');
    assert.match(lines[2]!, new RegExp(`^api\\s+2\\s+2\\s+${usd(sum(both, apiOnly))}\\s+${thousands(tokensIn(both, apiOnly))}\\s`));
    assert.match(lines[3]!, new RegExp(`^ui\\s+1\\s+1\\s+${usd(sum(both))}\\s+1,200\\s+345$`));
    assert.match(lines[4]!, /^\(untagged\)\s+1\s+1\s+\$0\.0000\s+0\s+0$/);
    assert.match(lines[5]!, new RegExp(`^TOTAL\\s+3\\s+3\\s+${usd(sum(both, apiOnly))}\\s`));
    assert.match(lines[6]!, /several tags counts under each/);

    const empty = await usage('--since', '2000-01-01', '--until', '2000-01-02T00:00:00Z');
    assert.deepEqual(empty.rows, []);
    assert.deepEqual(empty.total, { attempts: 0, completed: 0, costUsd: 0, inputTokens: 0, outputTokens: 0 });
  });

  it('exits 2 naming the value for a bad --by, --since or --until', async () => {
    const paths = makeProject();
    const p = ['--project', paths.root];
    const cases: Array<[string[], RegExp]> = [
      [['--by', 'day,week'], /--by: "week" is not one of day, agent, model, tag/],
      [['--since', 'last tuesday'], /--since: "last tuesday" is not a duration/],
      [['--since', '7'], /--since: "7" is not a duration/],
      [['--until', '2026-02-30'], /--until: "2026-02-30" is not a duration/],
      [['--since', '1d', '--until', '2d'], /--until .* is not after --since/],
    ];
    for (const [args, message] of cases) {
      const r = await agentq(['usage', ...args, ...p]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /Usage: agentq/);
      assert.equal(r.stdout, '');
    }
  });
});
