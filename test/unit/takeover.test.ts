/**
 * Taking over by hand, the parts without a dispatcher: the prompt of the attempt after an
 * answer or a release, the interactive command per agent, the tmux window name, and the sh
 * script that gives the session exactly the agent's environment (run by a real sh).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { emptyStats } from '../../src/agents/runner.ts';
import { interactiveSession } from '../../src/agents/interactive.ts';
import { sessionScript, windowName } from '../../src/cli/attach.ts';
import { parseConfig } from '../../src/config/config.ts';
import { followUpPrompt } from '../../src/core/takeover.ts';

const stats = { ...emptyStats(), sessionId: 'S1' };

describe('followUpPrompt', () => {
  it('an answer resumes the session with it, or is restated after the prompt', () => {
    const task = { answer: 'Blue', question: 'Which colour?', stats };
    assert.deepEqual(followUpPrompt(task, 'Paint it.', true), { prompt: 'The answer to your question:\n\nBlue', resumeSessionId: 'S1' });
    assert.deepEqual(followUpPrompt(task, 'Paint it.', false), { prompt: 'Paint it.\n\n---\nYou asked: Which colour?\nThe answer: Blue\n', resumeSessionId: null });
  });

  it("a release note (answer without a question) is the resumed session's prompt, or is restated", () => {
    const task = { answer: 'Finish the parser.', question: null, stats };
    assert.deepEqual(followUpPrompt(task, 'Fix it.', true), { prompt: 'Finish the parser.', resumeSessionId: 'S1' });
    assert.deepEqual(followUpPrompt({ ...task, stats: emptyStats() }, 'Fix it.', true), {
      prompt: 'Fix it.\n\n---\nNote from the person who worked on this task by hand: Finish the parser.\n',
      resumeSessionId: null,
    });
  });

  it('nothing to follow up: null', () => {
    assert.equal(followUpPrompt({ answer: null, question: null, stats }, 'p', true), null);
  });
});

describe('interactiveSession', () => {
  const config = parseConfig({ agents: { codex: { command: '/opt/codex', args: ['-c', 'model_provider=fake'] }, gemini: { command: ['/opt/gemini'] } } });
  const env = { SHELL: '/bin/zsh', PATH: '', AGENTQ_CLAUDE_COMMAND: '/opt/claude' };
  it('resumes the session with each agent CLI, after its args', () => {
    assert.deepEqual(interactiveSession('claude', 'S1', config, env, '/p'), { kind: 'resume', argv: ['/opt/claude', '--resume', 'S1'], why: null });
    assert.deepEqual(interactiveSession('codex', 'T1', config, env, '/p').argv, ['/opt/codex', '-c', 'model_provider=fake', 'resume', 'T1']);
    assert.deepEqual(interactiveSession('gemini', 'G1', config, env, '/p').argv, ['/opt/gemini', '--resume', 'G1']);
  });
  it('a shell for agents without sessions, or without a session recorded', () => {
    assert.deepEqual(interactiveSession('openai', 'chatcmpl-1', config, env, '/p'), { kind: 'shell', argv: ['/bin/zsh'], why: 'openai has no session to resume' });
    assert.deepEqual(interactiveSession('claude', null, config, {}, '/p'), { kind: 'shell', argv: ['/bin/sh'], why: 'no claude session is recorded for the task' });
  });
});

it('windowName: the task name, tmux-safe, and its id', () => {
  assert.equal(windowName({ id: 7, name: 'fix.typo' }), 'fix-typo-7');
  assert.equal(windowName({ id: 12, name: 'a:b' }), 'a-b-12');
});

it('sessionScript: the command gets exactly the given environment and the kept variables; the file removes itself', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-attach-'));
  const file = path.join(dir, 'session-env.sh');
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/home/x', QUOTED: "it's $HOME `x` \"y\"\nline 2", AGENTQ_TASK_ID: '7', TERM: 'xterm' };
  fs.writeFileSync(file, sessionScript(env, ['TERM', 'TMUX']), { mode: 0o600 });
  const r = spawnSync('/bin/sh', [file, 'env', '-0'], { env: { PATH: process.env.PATH, AGENTQ_STORE: 'postgres://secret', OTHER: '1', TERM: 'tmux-256color', TMUX: '/tmp/t,1,0' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const got = Object.fromEntries(r.stdout.split('\0').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  delete got.PWD; // sh's own
  delete got.SHLVL;
  assert.deepEqual(got, { PATH: env.PATH, HOME: '/home/x', QUOTED: env.QUOTED, AGENTQ_TASK_ID: '7', TERM: 'tmux-256color', TMUX: '/tmp/t,1,0' });
  assert.equal(fs.existsSync(dir), false);
});
