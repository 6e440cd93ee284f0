import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration } from '../../src/config/duration.ts';
import { parseTaskFile } from '../../src/config/task-file.ts';
import { InvalidTaskError } from '../../src/core/errors.ts';

const defaults = { default_timeout: 1_800_000, default_retries: 0 };

function refusal(text: string, name = 'job'): InvalidTaskError {
  try {
    parseTaskFile(name, text, defaults);
  } catch (err) {
    assert.ok(err instanceof InvalidTaskError, String(err));
    return err;
  }
  assert.fail('expected the task to be refused');
}

describe('task files', () => {
  it('applies defaults to a file without frontmatter', () => {
    const s = parseTaskFile('fix-login', 'Fix the login page.\n', defaults);
    assert.equal(s.title, 'fix-login');
    assert.equal(s.priority, 'default');
    assert.equal(s.agent, 'claude');
    assert.equal(s.timeoutMs, 1_800_000);
    assert.equal(s.prompt, 'Fix the login page.');
  });

  it('reads every field and keeps unknown ones', () => {
    const s = parseTaskFile(
      'b',
      '---\ntitle: Build\npriority: critical\nagent: command\nmodel: opus\ndepends_on: [a]\ntimeout: 90s\nmax_cost_usd: 1.5\nretries: 2\ntags: [x, y]\ndedup_key: k1\ncommand: [echo, hi]\nowner: alice\n' +
        'retry_backoff: 5s\nretry_on_timeout: true\nconcurrency_group: api\nrun_at: 2026-12-01T09:00:00Z\nworkspace: worktree\nmerge: auto\n' +
        'max_turns: 12\nallowed_tools: [Read, Edit]\n---\nDo it.\n',
      defaults,
    );
    assert.deepEqual(
      { ...s, prompt: undefined },
      {
        name: 'b',
        title: 'Build',
        priority: 'critical',
        agent: 'command',
        model: 'opus',
        dependsOn: ['a'],
        parent: null,
        timeoutMs: 90_000,
        maxCostUsd: 1.5,
        retries: 2,
        retryBackoffMs: 5000,
        retryOnTimeout: true,
        concurrencyGroup: 'api',
        runAt: Date.parse('2026-12-01T09:00:00Z'),
        workspace: 'worktree',
        merge: 'auto',
        tags: ['x', 'y'],
        dedupKey: 'k1',
        command: ['echo', 'hi'],
        maxTurns: 12,
        allowedTools: ['Read', 'Edit'],
        extra: { owner: 'alice' },
        prompt: undefined,
        source: 'inbox',
      },
    );
  });

  const cases: Array<[string, string, RegExp]> = [
    ['unknown priority', '---\npriority: urgent\n---\nx', /^priority: "urgent" is not one of critical, high, default, low$/],
    ['malformed YAML', '---\ntitle: [unclosed\n---\nx', /^frontmatter: malformed YAML/],
    ['wrong type', '---\nretries: many\n---\nx', /^retries: "many" is not a whole number/],
    ['bad timeout', '---\ntimeout: soon\n---\nx', /^timeout: "soon" is not a duration/],
    ['empty prompt', '---\ntitle: t\n---\n\n   \n', /^prompt: the task body is empty/],
    ['tags not a list', '---\ntags: {a: 1}\n---\nx', /^tags: .* is not a list of strings$/],
    ['unknown agent', '---\nagent: robot\n---\nx', /^agent: "robot" is not a known agent/],
    ['self dependency', '---\ndepends_on: [job]\n---\nx', /^depends_on: "job"/],
    ['bad run_at', '---\nrun_at: tomorrow\n---\nx', /^run_at: "tomorrow" is not an ISO 8601 time/],
    ['bad workspace', '---\nworkspace: docker\n---\nx', /^workspace: "docker" is not inplace or worktree$/],
    ['bad retry_on_timeout', '---\nretry_on_timeout: sometimes\n---\nx', /^retry_on_timeout: "sometimes" is not true or false$/],
    ['frontmatter not a mapping', '---\n- a\n- b\n---\nx', /^frontmatter: .* is not a mapping/],
  ];
  for (const [label, text, reason] of cases) {
    it(`refuses ${label}, naming the field and value`, () => {
      assert.match(refusal(text).message, reason);
    });
  }
});

describe('parseDuration', () => {
  it('gives whole ms from 1 to the maximum, and null (never a throw) for anything else', () => {
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration(1.5), 1500);
    assert.equal(parseDuration('1.5'), 1500);
    assert.equal(parseDuration('8d', 7 * 86_400_000), null);
    assert.equal(parseDuration('7d', 7 * 86_400_000), 7 * 86_400_000);
    for (const v of [0, -1, 0.0004, '0.4ms', '', '   ', 1e308, Infinity, Number.NaN, '1e308s', '9'.repeat(400), '200y', 'x'.repeat(101), null, {}, []]) {
      assert.equal(parseDuration(v), null, String(v).slice(0, 20));
    }
    assert.equal(parseDuration('100y'), 100 * 365.25 * 86_400_000, 'the default maximum: 100 years');
  });
});
