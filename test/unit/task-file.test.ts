import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration } from '../../src/config/duration.ts';
// A namespace import: the regression cases below also run against versions without every export.
import * as taskFile from '../../src/config/task-file.ts';
import { InvalidTaskError } from '../../src/core/errors.ts';
import type { TaskSpec } from '../../src/core/types.ts';
import { prng } from '../fixtures/prng.ts';

const { parseTaskFile } = taskFile;
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

const fm = (lines: string, body = 'Do it.') => `---\n${lines}\n---\n${body}\n`;

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
        'max_turns: 12\nallowed_tools: [Read, Edit]\nruns_on: [gpu, " codex-account ", gpu]\nremote: buildbox\nworkspace_setup: npm ci\nremote_metadata: {agent: command, command: [make, test]}\n' +
        'verify: npm test\nverify_timeout: 2m\nverify_retries: 1\nstall_timeout: 0\n---\nDo it.\n',
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
        workspaceSetup: ['npm ci'],
        tags: ['x', 'y'],
        runsOn: ['gpu', 'codex-account'],
        dedupKey: 'k1',
        command: ['echo', 'hi'],
        remote: 'buildbox',
        remoteMetadata: { agent: 'command', command: ['make', 'test'] },
        maxTurns: 12,
        allowedTools: ['Read', 'Edit'],
        verify: ['npm test'],
        verifyTimeoutMs: 120_000,
        verifyRetries: 1,
        stallTimeoutMs: 0,
        extra: { owner: 'alice' },
        prompt: undefined,
        source: 'inbox',
      },
    );
  });

  it('reads -0 as 0, so the spec is the same after the store writes it as JSON', () => {
    const s = parseTaskFile('z', '---\nretries: -0\nowner: -0\nnested: {n: [-0]}\n---\nDo it.\n', defaults);
    assert.ok(Object.is(s.retries, 0));
    assert.deepEqual(s.extra, { owner: 0, nested: { n: [0] } });
    assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
  });

  const cases: Array<[string, string, RegExp]> = [
    ['unknown priority', '---\npriority: urgent\n---\nx', /^priority: "urgent" is not one of critical, high, default, low$/],
    ['agent a2a without remote', '---\nagent: a2a\n---\nx', /^remote: not set: agent: a2a delegates to another A2A agent, named by remote: NAME \(a key of remotes in config.yaml\) or remote: URL$/],
    ['a remote that is neither a name nor a URL', '---\nagent: a2a\nremote: "ftp://box"\n---\nx', /^remote: "ftp:\/\/box" is not a remote: a name of config remotes/],
    ['a remote name with a space', '---\nagent: a2a\nremote: build box\n---\nx', /^remote: "build box" is not a remote/],
    ['remote_metadata that is not an object', '---\nagent: a2a\nremote: b\nremote_metadata: [agent, command]\n---\nx', /^remote_metadata: \["agent","command"\] is not an object of fields for the remote/],
    ['remote_metadata too large', `---\nagent: a2a\nremote: b\nremote_metadata: {command: "${'x'.repeat(140_000)}"}\n---\nx`, /^remote_metadata: "140014 bytes of JSON" is not an object of at most 131072 bytes as JSON$/],
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
    ['workspace_setup not commands', '---\nworkspace_setup: {npm: ci}\n---\nx', /^workspace_setup: \{"npm":"ci"\} is not a command string or a list of them \(each run by sh -c\)$/],
    ['workspace_setup with a blank command', '---\nworkspace_setup: [npm ci, " "]\n---\nx', /^workspace_setup: " " is not a command string or a list of them/],
    ['frontmatter not a mapping', '---\n- a\n- b\n---\nx', /^frontmatter: .* is not a mapping/],
    ['timeout: 0s', fm('timeout: 0s'), /^timeout: "0s" is not a duration/],
    ['timeout: "1e308s"', fm('timeout: "1e308s"'), /^timeout: "1e308s" is not a duration/],
    ['run_at: 2026-12-01 with trailing words', fm('run_at: 2026-12-01 or so'), /^run_at: "2026-12-01 or so" is not/],
  ];
  for (const [label, text, reason] of cases) {
    it(`refuses ${label}, naming the field and value`, () => {
      assert.match(refusal(text).message, reason);
    });
  }
});

/**
 * Values that passed validation but meant nothing (issue 14): each row failed before, either
 * parsing into a task or throwing something other than InvalidTaskError.
 * [label, file text, field, message]
 */
const meaningless: Array<[string, string, string, RegExp]> = [
  // Durations: one rule for timeout and retry_backoff, 1 ms to 7 days.
  ['timeout: 0', fm('timeout: 0'), 'timeout', /^timeout: 0 is not a duration from 1ms to 7d/],
  ['timeout: .inf', fm('timeout: .inf'), 'timeout', /^timeout: Infinity is not a finite number$/],
  ['timeout: 1e308 (seconds: Infinity ms)', fm('timeout: 1e308'), 'timeout', /^timeout: 1e\+308 is not a duration from 1ms to 7d/],
  ['timeout: 1e300 (seconds, finite but absurd)', fm('timeout: 1e300'), 'timeout', /^timeout: 1e\+300 is not a duration/],
  ['timeout: 99999999999999999999999d', fm('timeout: 99999999999999999999999d'), 'timeout', /^timeout: "99999999999999999999999d" is not a duration/],
  ['timeout: 8d (past 7 days)', fm('timeout: 8d'), 'timeout', /^timeout: "8d" is not a duration from 1ms to 7d/],
  ['timeout: 0.0004 (rounds to 0 ms)', fm('timeout: 0.0004'), 'timeout', /^timeout: 0\.0004 is not a duration/],
  ['timeout: 0.4ms (rounds to 0 ms)', fm('timeout: 0.4ms'), 'timeout', /^timeout: "0.4ms" is not a duration/],
  ['timeout: "" (threw a plain Error from ms)', fm('timeout: ""'), 'timeout', /^timeout: "" is not a duration/],
  ['retry_backoff: .inf', fm('retry_backoff: .inf'), 'retry_backoff', /^retry_backoff: Infinity is not a finite number$/],
  ['retry_backoff: 1e308', fm('retry_backoff: 1e308'), 'retry_backoff', /^retry_backoff: 1e\+308 is not a duration from 1ms to 7d/],
  ['retry_backoff: 30d', fm('retry_backoff: 30d'), 'retry_backoff', /^retry_backoff: "30d" is not a duration/],
  // Numbers: finite and bounded.
  ['max_cost_usd: .inf', fm('max_cost_usd: .inf'), 'max_cost_usd', /^max_cost_usd: Infinity is not a finite number$/],
  ['max_cost_usd: .nan', fm('max_cost_usd: .nan'), 'max_cost_usd', /^max_cost_usd: NaN is not a finite number$/],
  ['max_cost_usd: 1e308', fm('max_cost_usd: 1e308'), 'max_cost_usd', /^max_cost_usd: 1e\+308 is not a positive number \(USD\) of at most 10000$/],
  ['retries: 1e300', fm('retries: 1e300'), 'retries', /^retries: 1e\+300 is not a whole number from 0 to 100$/],
  ['retries: 101', fm('retries: 101'), 'retries', /^retries: 101 is not a whole number from 0 to 100$/],
  ['retries: .inf', fm('retries: .inf'), 'retries', /^retries: Infinity is not a finite number$/],
  ['max_turns: 1e300', fm('max_turns: 1e300'), 'max_turns', /^max_turns: 1e\+300 is not a whole number of turns from 1 to 10000$/],
  ['dedup_key: .nan', fm('dedup_key: .nan'), 'dedup_key', /^dedup_key: NaN is not a finite number$/],
  ['an unknown field: .inf (JSON would store null)', fm('weight: .inf'), 'weight', /^weight: Infinity is not a finite number$/],
  // Calendar dates, quoted or not (YAML 1.2 core keeps both as strings; Date.parse rolled them over).
  ['run_at: 2026-02-30', fm('run_at: 2026-02-30'), 'run_at', /^run_at: "2026-02-30" is not an ISO 8601 time .*a real calendar day/],
  ['run_at: "2026-02-30"', fm('run_at: "2026-02-30"'), 'run_at', /^run_at: "2026-02-30" is not an ISO 8601 time/],
  ['run_at: 2026-02-29 (not a leap year)', fm('run_at: 2026-02-29'), 'run_at', /^run_at: "2026-02-29" is not/],
  ['run_at: 2026-02-30T10:00:00Z', fm('run_at: 2026-02-30T10:00:00Z'), 'run_at', /^run_at: "2026-02-30T10:00:00Z" is not/],
  ['run_at: 2026-04-31 09:00', fm("run_at: '2026-04-31 09:00'"), 'run_at', /^run_at: "2026-04-31 09:00" is not/],
  ['run_at: 2026-12-01T24:00:00Z', fm('run_at: 2026-12-01T24:00:00Z'), 'run_at', /^run_at: "2026-12-01T24:00:00Z" is not/],
  // Frontmatter that is not plain data, or never closed.
  ['frontmatter never closed', '---\ntitle: Deploy\ntimeout: 5m\nDeploy to production.\n', 'frontmatter', /^frontmatter: opened with --- on line 1 but never closed/],
  ['frontmatter never closed (CRLF, BOM)', '\uFEFF---\r\ntitle: x\r\nbody\r\n', 'frontmatter', /^frontmatter: opened with --- on line 1 but never closed/],
  ['a file that is only ---', '---', 'frontmatter', /^frontmatter: opened with --- on line 1 but never closed/],
  ['a !!binary tag', fm('title: !!binary aGVsbG8='), 'frontmatter', /^frontmatter: unsupported YAML: Unresolved tag: tag:yaml.org,2002:binary at line 1/],
  ['a !!timestamp tag (rolled over)', fm('run_at: !!timestamp 2026-02-30'), 'frontmatter', /^frontmatter: unsupported YAML: Unresolved tag: tag:yaml.org,2002:timestamp/],
  ['a custom tag', fm('title: !shell rm -rf'), 'frontmatter', /^frontmatter: unsupported YAML: Unresolved tag: !shell/],
  ['a self-referencing alias in tags (threw TypeError)', fm('tags: &t [a, *t]'), 'tags', /^tags: "\*alias" is not plain data/],
  ['a self-referencing alias in an unknown field', fm('loop: &l {me: *l}'), 'loop', /^loop: "\*alias" is not plain data/],
  // Names and text: bounded, one line.
  ['a name of 101 characters', 'x', 'name', /^name: "a{77}…" \(101 characters\) is not a task name of at most 100 characters$/],
  ['a depends_on entry of 101 characters', fm(`depends_on: [${'d'.repeat(101)}]`), 'depends_on', /^depends_on: .* is not a task name of at most 100 characters$/],
  ['a parent of 101 characters', fm(`parent: ${'p'.repeat(101)}`), 'parent', /^parent: .* is not a task name of at most 100 characters$/],
  ['a title of 501 characters', fm(`title: ${'t'.repeat(501)}`), 'title', /^title: "t{77}…" \(501 characters\) is not a string of at most 500 characters$/],
  ['a title with a terminal escape', fm('title: "\\e]0;pwned\\a"'), 'title', /^title: .* is not a single line of text \(control character U\+001B at index 0\)$/],
  ['a multi-line title', fm('title: |\n  one\n  two'), 'title', /^title: "one\\ntwo" is not a single line of text \(control character U\+000A at index 3\)$/],
  ['a model of 201 characters', fm(`model: ${'m'.repeat(201)}`), 'model', /^model: .* is not a string of at most 200 characters$/],
  ['a concurrency_group of 201 characters', fm(`concurrency_group: ${'g'.repeat(201)}`), 'concurrency_group', /^concurrency_group: .* at most 200 characters$/],
  ['a dedup_key of 201 characters', fm(`dedup_key: ${'k'.repeat(201)}`), 'dedup_key', /^dedup_key: .* at most 200 characters$/],
  ['51 tags', fm(`tags: [${Array.from({ length: 51 }, (_, i) => `t${i}`).join(', ')}]`), 'tags', /^tags: "51 entries" is not a list of at most 50 entries$/],
  // An entry of a list is refused by itself (before: the whole list "is not a list of strings").
  ['a tag that is no text', fm('tags: [a, 5]'), 'tags', /^tags: 5 is not a non-empty string$/],
  ['a blank depends_on entry', fm('depends_on: [a, " "]'), 'depends_on', /^depends_on: "" is not a task name \(letters/],
  ['a tag of 201 characters', fm(`tags: [${'t'.repeat(201)}]`), 'tags', /^tags: .* at most 200 characters$/],
  ['a blank runs_on label', fm('runs_on: [gpu, ""]'), 'runs_on', /^runs_on: "" is not a non-empty string$/],
  ['51 runs_on labels', fm(`runs_on: [${Array.from({ length: 51 }, (_, i) => `l${i}`).join(', ')}]`), 'runs_on', /^runs_on: "51 entries" is not a list of at most 50 entries$/],
  ['an allowed_tools rule with a newline', fm('allowed_tools: ["Read\\nEdit"]'), 'allowed_tools', /^allowed_tools: .* \(control character U\+000A at index 4\)$/],
  ['a command with a NUL', fm('command: ["echo", "a\\0b"]'), 'command', /^command: "a\\u0000b" is not text without NUL characters/],
  ['a command argv of 1001 entries', fm(`command: [${Array.from({ length: 1001 }, () => 'x').join(', ')}]`), 'command', /^command: "1001 entries" is not a list of at most 1000 argv strings$/],
  ['a command whose program is empty', fm('command: ["", "x"]'), 'command', /^command: .*\(the first one naming the program\)$/],
  ['a prompt over 1 MiB', fm('title: big', 'p'.repeat(1_048_577)), 'prompt', /^prompt: 1048577 bytes is not at most 1048576 bytes \(1 MiB\)$/],
  // verify and stall_timeout.
  ['a blank verify command', fm('verify: ["npm test", " "]'), 'verify', /^verify: " " is not a command string \(run by sh -c\) or a list of them$/],
  ['21 verify commands', fm(`verify: [${Array.from({ length: 21 }, () => 'true').join(', ')}]`), 'verify', /^verify: "21 entries" is not a list of at most 20 commands$/],
  ['a verify command that is a number', fm('verify: [7]'), 'verify', /^verify: 7 is not a command string/],
  ['a verify_timeout of 0', fm('verify_timeout: 0'), 'verify_timeout', /^verify_timeout: 0 is not a duration from 1ms to 7d/],
  ['a negative verify_retries', fm('verify_retries: -1'), 'verify_retries', /^verify_retries: -1 is not a whole number from 0 to 100$/],
  ['a stall_timeout that is no duration', fm('stall_timeout: soon'), 'stall_timeout', /^stall_timeout: "soon" is not a duration from 1ms to 7d, such as 90s or 30m \(a number is seconds\), or 0 for off$/],
  ['a stall_timeout past 7 days', fm('stall_timeout: 8d'), 'stall_timeout', /^stall_timeout: "8d" is not a duration .* or 0 for off$/],
];

describe('task files: verify and stall_timeout', () => {
  it('reads verify as one command or a list ([] for none), and stall_timeout 0 / "0s" as off', () => {
    const read = (lines: string) => parseTaskFile('v', fm(lines), defaults);
    assert.deepEqual(read('verify: npm test').verify, ['npm test']);
    assert.deepEqual(read('verify: ["npm test", "npm run lint"]').verify, ['npm test', 'npm run lint']);
    assert.deepEqual(read('verify: []').verify, []);
    assert.equal(read('title: x').verify, null, 'not set: config decides');
    assert.deepEqual([read('stall_timeout: 0').stallTimeoutMs, read('stall_timeout: "0s"').stallTimeoutMs, read('stall_timeout: 5s').stallTimeoutMs, read('stall_timeout: 90').stallTimeoutMs], [0, 0, 5000, 90_000]);
  });
});

describe('task files: values that pass a type check but mean nothing are refused', () => {
  for (const [label, text, field, reason] of meaningless) {
    it(`refuses ${label}`, () => {
      const name = field === 'name' ? 'a'.repeat(101) : 'job';
      const err = refusal(text, name);
      assert.equal(err.field, field, err.message);
      assert.match(err.message, reason);
    });
  }

  it('refuses an alias bomb ("billion laughs") with a frontmatter error, before expanding it', () => {
    const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    const err = refusal(fm(levels.join('\n')));
    assert.equal(err.field, 'frontmatter');
    assert.match(err.message, /^frontmatter: malformed YAML: Excessive alias count/);
  });

  it('refuses a prompt with a terminal escape (the API gives prompts as strings)', () => {
    assert.throws(() => taskFile.taskSpecFromFields('job', {}, 'look \u001b[2J here', defaults, 'api'), (err: unknown) => {
      assert.ok(err instanceof InvalidTaskError);
      assert.equal(err.field, 'prompt');
      assert.match(err.message, /^prompt: control character U\+001B at index 5 is not text$/);
      return true;
    });
  });

  it('refuses values nested past 100 levels (a JSON body can nest 100,000 deep; storing it would overflow the stack)', () => {
    const nested = (n: number): unknown => JSON.parse(`${'['.repeat(n)}${']'.repeat(n)}`);
    assert.doesNotThrow(() => taskFile.taskSpecFromFields('job', { deep: nested(100) }, 'x', defaults, 'api'));
    for (const n of [101, 100_000]) {
      assert.throws(() => taskFile.taskSpecFromFields('job', { deep: nested(n) }, 'x', defaults, 'api'), (err: unknown) => {
        assert.ok(err instanceof InvalidTaskError, String(err));
        assert.equal(err.field, 'deep');
        assert.equal(err.message, 'deep: "101 levels" is not plain data nested at most 100 levels deep');
        return true;
      });
    }
  });

  it('keeps what is at the limits, and the defaults', () => {
    const name = 'n'.repeat(100);
    const s = parseTaskFile(
      name,
      fm(
        `timeout: 7d\nretry_backoff: 604800\nmax_cost_usd: 10000\nretries: 100\nmax_turns: 10000\ntitle: ${'t'.repeat(500)}\nmodel: ${'m'.repeat(200)}\n` +
          `tags: [${Array.from({ length: 50 }, (_, i) => `t${i}`).join(', ')}]\ndepends_on: [${'d'.repeat(100)}]\nrun_at: 2028-02-29\n`,
        'p'.repeat(1_048_576),
      ),
      defaults,
    );
    assert.equal(s.name, name);
    assert.equal(s.timeoutMs, 7 * 86_400_000);
    assert.equal(s.retryBackoffMs, 7 * 86_400_000);
    assert.deepEqual([s.maxCostUsd, s.retries, s.maxTurns, s.title.length, s.model?.length, s.tags.length], [10_000, 100, 10_000, 500, 200, 50]);
    assert.equal(s.runAt, Date.parse('2028-02-29'));
    assert.equal(parseTaskFile('job', 'x', defaults).timeoutMs, defaults.default_timeout, 'no timeout: the configured default');
  });

  it('reads run_at as a date, a time with a zone, a local time, or with a space (YAML style)', () => {
    const at = (v: string) => parseTaskFile('job', fm(`run_at: ${v}`), defaults).runAt;
    assert.equal(at('2024-02-29'), Date.parse('2024-02-29T00:00:00Z'));
    assert.equal(at('"2026-12-01T09:00:00+01:00"'), Date.parse('2026-12-01T08:00:00Z'));
    assert.equal(at('2026-12-01T09:00'), new Date(2026, 11, 1, 9, 0).getTime());
    assert.equal(at('2026-12-01 09:00:00Z'), Date.parse('2026-12-01T09:00:00Z'));
  });

  it('keeps a __proto__ field as a field of its own', () => {
    const s = parseTaskFile('job', fm('__proto__: {timeout: 0}'), defaults);
    assert.deepEqual(Object.keys(s.extra), ['__proto__']);
    assert.equal(JSON.stringify(s.extra), '{"__proto__":{"timeout":0}}');
    assert.equal(s.timeoutMs, defaults.default_timeout);
  });

  it('names are letters, digits, ".", "_", "-", starting with a letter or digit, at most 100 characters', () => {
    const { checkTaskName } = taskFile;
    for (const ok of ['a', 'A.b_c-1', '9', 'n'.repeat(100)]) assert.equal(checkTaskName(ok, 'name'), ok);
    for (const bad of ['', '.', '..', '.hidden', '-x', '_x', 'a/b', 'a b', 'ä', 'n'.repeat(101), 7, null]) {
      assert.throws(() => checkTaskName(bad, 'parent'), (err: unknown) => err instanceof InvalidTaskError && err.field === 'parent' && err.message.startsWith('parent: '), String(bad));
    }
    assert.equal(taskFile.TASK_NAME.test('n'.repeat(101)), false, 'TASK_NAME itself caps the length (--name, the API schema)');
  });
});

describe('decodeTaskFile', () => {
  const decode = (bytes: Buffer) => taskFile.decodeTaskFile(bytes);
  const refused = (bytes: Buffer): string => {
    try {
      decode(bytes);
    } catch (err) {
      assert.ok(err instanceof InvalidTaskError, String(err));
      assert.equal(err.field, 'encoding');
      return err.message;
    }
    assert.fail('expected the content to be refused');
  };

  it('returns UTF-8 text without its byte order mark; tabs, CRLF, form feeds and U+FFFD are text', () => {
    assert.equal(decode(Buffer.from('\uFEFF---\r\ntitle: é\r\n---\r\n\tx\f\uFFFD\n')), '---\r\ntitle: é\r\n---\r\n\tx\f\uFFFD\n');
    assert.equal(decode(Buffer.alloc(0)), '');
  });

  it('refuses bytes that are not UTF-8, naming the first bad byte and its offset', () => {
    assert.equal(refused(Buffer.from([0x68, 0x69, 0xff, 0x21])), 'encoding: the file is not UTF-8 text (invalid byte 0xFF at offset 2)');
    // UTF-16 with its BOM.
    assert.equal(refused(Buffer.from('\uFEFFhi', 'utf16le')), 'encoding: the file is not UTF-8 text (invalid byte 0xFF at offset 0)');
    // Past a real U+FFFD (EF BF BD) and a 2-byte character: the truncated sequence at offset 6.
    assert.equal(refused(Buffer.concat([Buffer.from('\uFFFDé-'), Buffer.from([0xe2, 0x82]), Buffer.from('x')])), 'encoding: the file is not UTF-8 text (invalid byte 0xE2 at offset 6)');
  });

  it('refuses binary content: a NUL byte or another control character, with its offset', () => {
    assert.equal(refused(Buffer.from('---\ntitle: x\n---\nab\0cd')), 'encoding: binary content (NUL byte at offset 19)');
    assert.equal(refused(Buffer.from('\uFEFFé\u001b[31m')), 'encoding: binary content (control character U+001B at offset 5)');
    assert.equal(refused(Buffer.from('x\u007f')), 'encoding: binary content (control character U+007F at offset 1)');
    assert.equal(refused(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'encoding: the file is not UTF-8 text (invalid byte 0x89 at offset 0)');
  });
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

describe('task files: deterministic fuzz', () => {
  it('turns hundreds of hostile files into a sane spec or an InvalidTaskError naming the field', (t) => {
    const r = prng(14);
    const int = (n: number) => Math.floor(r() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
    const chance = (p: number) => r() < p;
    const randomText = (n: number) =>
      Array.from({ length: n }, () => String.fromCodePoint(chance(0.002) ? int(0x20) : pick([0x20 + int(0x5f), 0x20 + int(0x5f), 0xa0 + int(0x2000), 0x1f600 + int(0x50)]))).join('');

    const scalars = [
      '0', '-0', '-1', '1', '1.5', '3', '100', '101', '1e308', '-1e308', '1e-320', '1e300', '.inf', '-.inf', '.nan', '0x7fffffff', '0o17',
      '9007199254740993', '99999999999999999999999999', '~', 'null', 'true', 'false', 'yes', '""', "''", '"\\0"', '"\\e[2J"', '"a\\nb"',
      '"\\u202e"', '2026-02-30', '2026-02-28', '2026-13-01', '2024-02-29T10:00:00Z', '2026-02-30T10:00:00Z', '"2026-12-01 09:00"', '90s',
      '1e308s', '7d', '8d', '0.4ms', '"0"', 'critical', 'urgent', 'auto', 'claude', 'command', 'inplace', 'worktree', 'manual', 'a', '..',
      '.x', 'other-task', 'job',
    ];
    const tagged = ['!!binary aGVsbG8=', '!!timestamp 2026-02-30', '!!set {a, b}', '!!omap [a: 1]', '!foo bar', '!!str 5', '!!int 7', '!!float 1.5', '!!js/function "f"', '!!null ""', '!!bool true'];
    const scalar = (long = true): string => {
      const k = int(10);
      if (k < 6) return pick(scalars);
      if (k < 7) return chance(0.3) ? pick(tagged) : pick(scalars);
      if (k < 8) return JSON.stringify(randomText(int(40)));
      if (k < 9) return pick(['x', 'n', 'd']).repeat(pick(long ? [40, 99, 100, 101, 200, 201, 500, 501, 70_000] : [99, 100, 101, 201]));
      return String((r() - 0.5) * 10 ** int(320));
    };
    const value = (depth = 0): string => {
      const k = int(12);
      if (depth > 2 || k < 7) return scalar();
      if (k < 9) return `[${Array.from({ length: pick(depth === 0 ? [0, 1, 3, 51, 1001] : [0, 1, 3]) }, () => (depth === 0 && chance(0.7) ? scalar(false) : value(depth + 1))).join(', ')}]`;
      if (k < 10) return `{${Array.from({ length: int(4) }, () => `${pick(['a', 'b', '__proto__', 'timeout'])}${int(3)}: ${value(depth + 1)}`).join(', ')}}`;
      if (k < 11) return `&x [a, *x]`;
      const deep = chance(0.1) ? int(2000) : int(5);
      return `${'['.repeat(deep)}${']'.repeat(deep)}`;
    };
    const keys = [...taskFile.KNOWN_FIELDS, ...taskFile.KNOWN_FIELDS, 'owner', '__proto__', 'constructor', 'x y', '"quoted key"', '[a]', '? complex', '<<'];
    const documents = [
      () => { // billion laughs
        const lv = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
        for (let i = 1; i < 2 + int(8); i++) lv.push(`${'abcdefghij'[i]}: &${'abcdefghij'[i]} [${Array(9).fill(`*${'abcdefghij'[i - 1]}`).join(',')}]`);
        return lv.join('\n');
      },
      () => 'title: a\ntitle: b',
      () => 'title: x\n\ttimeout: 5',
      () => 'base: &b {timeout: 0}\n<<: *b',
      () => 'a: 1\n...\nb: 2',
      () => '%YAML 1.1\n---\nrun_at: 2026-02-30',
      () => '- just\n- a list',
      () => 'just a string',
      () => `title: *nope`,
    ];

    const counts = { cases: 0, valid: 0, invalid: 0 };
    const byField = new Map<string, number>();
    const known = new Set<string>([...taskFile.KNOWN_FIELDS, 'name', 'prompt', 'frontmatter', 'encoding']);
    const NAME_OK = (n: string) => taskFile.TASK_NAME.test(n) && n.length <= 100;
    const singleLine = (s: string | null, max: number) => s === null || (s.length >= 1 && s.length <= max && !/[\u0000-\u001f\u007f-\u009f]/.test(s));
    const D7 = 7 * 86_400_000;
    let slowest = 0;
    let slowestCase = -1;

    for (let i = 0; i < 1500; i++) {
      const eol = chance(0.3) ? '\r\n' : '\n';
      let text: string;
      if (chance(0.8)) {
        // Mostly distinct keys (a repeated key is one refusal: "Map keys must be unique").
        const fields = chance(0.1) ? Array.from({ length: 2 + int(6) }, () => pick(keys)) : [...new Set(Array.from({ length: 1 + int(8) }, () => pick(keys)))];
        const lines = chance(0.1) ? [pick(documents)()] : fields.map((k) => `${k}: ${value()}`);
        const close = chance(0.9) ? `${eol}---${chance(0.1) ? '  ' : ''}` : '';
        const body = chance(0.1) ? pick(['look \u001b[2J', 'a\0b']) : pick(['', '   \n', 'Do it.', 'Do it.', randomText(int(200)), '---', 'p'.repeat(chance(0.05) ? 1_048_577 : 10)]);
        text = `---${eol}${lines.join(eol)}${close}${eol}${body}${eol}`;
      } else {
        text = pick(['Fix the login page.', '---', '', '---\r\n', 'Plain prompt\n---\nwith a rule', randomText(int(300))]);
      }
      if (chance(0.1)) text = `\uFEFF${text}`;
      let bytes = Buffer.from(text);
      const mode = int(20);
      if (mode === 0) bytes = Buffer.from(Array.from({ length: int(300) }, () => int(256)));
      else if (mode === 1 && bytes.length > 0) {
        bytes = Buffer.from(bytes);
        for (let m = 0; m < 1 + int(4); m++) bytes[int(bytes.length)] = int(256);
      }
      const name = chance(0.9) ? 'job' : pick(['n'.repeat(100), 'n'.repeat(101), '..', '.x', 'a b', 'ok.name_1-2', '']);

      counts.cases++;
      const started = performance.now();
      let spec: TaskSpec | null = null;
      try {
        spec = parseTaskFile(name, taskFile.decodeTaskFile(bytes), defaults);
      } catch (err) {
        if (!(err instanceof InvalidTaskError)) throw new Error(`case ${i}: ${JSON.stringify(text.slice(0, 200))} threw ${String(err)}`, { cause: err });
        counts.invalid++;
        assert.ok(err.message.startsWith(`${err.field}: `), `case ${i}: ${err.message}`);
        assert.ok(known.has(err.field) || /is not (a finite number|plain data)/.test(err.message), `case ${i}: an unknown field ${err.field}: ${err.message}`);
        byField.set(err.field, (byField.get(err.field) ?? 0) + 1);
      }
      if (spec) {
        counts.valid++;
        const where = `case ${i}: ${JSON.stringify(text.slice(0, 200))}`;
        assert.deepEqual(JSON.parse(JSON.stringify(spec)), spec, `${where}: the spec survives JSON (finite numbers, no cycles)`);
        assert.ok(NAME_OK(spec.name) && spec.dependsOn.every(NAME_OK) && (spec.parent === null || NAME_OK(spec.parent)), where);
        assert.ok(singleLine(spec.title, 500) && [spec.agent, spec.model, spec.concurrencyGroup, spec.dedupKey].every((s) => singleLine(s, 200)), where);
        assert.ok(spec.tags.length <= 50 && spec.tags.every((s) => singleLine(s, 200)) && (spec.allowedTools ?? []).every((s) => singleLine(s, 200)), where);
        assert.ok(Number.isInteger(spec.timeoutMs) && spec.timeoutMs >= 1 && (spec.timeoutMs <= D7 || spec.timeoutMs === defaults.default_timeout), where);
        assert.ok(spec.retryBackoffMs === null || (Number.isInteger(spec.retryBackoffMs) && spec.retryBackoffMs >= 1 && spec.retryBackoffMs <= D7), where);
        assert.ok(spec.maxCostUsd === null || (spec.maxCostUsd > 0 && spec.maxCostUsd <= 10_000), where);
        assert.ok(Number.isInteger(spec.retries) && spec.retries >= 0 && spec.retries <= 100, where);
        assert.ok(spec.maxTurns === null || (Number.isInteger(spec.maxTurns) && spec.maxTurns >= 1 && spec.maxTurns <= 10_000), where);
        assert.ok(spec.runAt === null || Number.isFinite(spec.runAt), where);
        assert.ok(spec.prompt.length > 0 && Buffer.byteLength(spec.prompt) <= 1_048_576, where);
      }
      const took = performance.now() - started;
      if (took > slowest) [slowest, slowestCase] = [took, i];
    }
    const split = [...byField].sort((a, b) => b[1] - a[1]).map(([f, n]) => `${f} ${n}`).join(', ');
    t.diagnostic(`${counts.cases} files: ${counts.valid} valid, ${counts.invalid} invalid (${split}); slowest ${slowest.toFixed(1)} ms (case ${slowestCase})`);
    assert.ok(counts.valid >= 50 && counts.invalid >= 500, JSON.stringify(counts));
  });
});

describe('task files: the same frontmatter text parsed again', () => {
  it('gives equal fields that the caller owns, and the same refusal', () => {
    const yaml = 'tags: [a, b]\nextra_field: {deep: [1, 2]}\npriority: high';
    const first = taskFile.parseFrontmatter(yaml);
    (first.tags as string[]).push('changed by the caller');
    (first.extra_field as { deep: number[] }).deep.length = 0;
    const second = taskFile.parseFrontmatter(yaml);
    assert.deepEqual(second, { tags: ['a', 'b'], extra_field: { deep: [1, 2] }, priority: 'high' });
    assert.notEqual(second, taskFile.parseFrontmatter(yaml));
    const bad = 'priority: [unclosed';
    const errors = [0, 1].map(() => {
      try {
        taskFile.parseFrontmatter(bad);
      } catch (err) {
        return err;
      }
      return null;
    });
    for (const err of errors) {
      assert.ok(err instanceof InvalidTaskError);
      assert.equal(err.field, 'frontmatter');
    }
    assert.equal((errors[1] as Error).message, (errors[0] as Error).message);
    // Through a whole file too: the second file with that frontmatter is refused alike.
    assert.equal(refusal(`---\n${bad}\n---\nbody`).message, refusal(`---\n${bad}\n---\nother body`, 'job2').message);
  });

  it('gives task files specs of their own, the same refusal of a field, and still the name and prompt first', () => {
    const fm = '---\ntags: [a]\ncommand: [echo, hi]\nremote_metadata: {k: [1]}\nowner: {team: x}\nagent: command\n---\n';
    const first = taskFile.parseTaskFile('one', `${fm}first`, defaults);
    first.tags.push('changed');
    (first.command as string[]).push('changed');
    (first.remoteMetadata!.k as number[]).push(2);
    (first.extra.owner as Record<string, string>).team = 'changed';
    const second = taskFile.parseTaskFile('two', `${fm}second`, defaults);
    assert.deepEqual([second.tags, second.command, second.remoteMetadata, second.extra], [['a'], ['echo', 'hi'], { k: [1] }, { owner: { team: 'x' } }]);
    assert.equal(second.prompt, 'second');
    const refused = '---\npriority: urgent\n---\n';
    const messages = ['a', 'b'].map((name) => refusal(`${refused}body`, name));
    assert.deepEqual(messages.map((e) => [e.field, e.message]), [0, 1].map(() => [messages[0]!.field, messages[0]!.message]));
    assert.equal(messages[0]!.field, 'priority');
    assert.equal(refusal(`${refused}   `, 'c').field, 'prompt');
    assert.equal(refusal(`${refused}body`, '-bad').field, 'name');
  });
});
