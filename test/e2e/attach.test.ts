/**
 * Taking over by hand, end to end: a real `claude` task (against the scripted Messages API)
 * runs a slow tool call under `agentq run`; `agentq attach` stops the headless attempt
 * through the store and opens `claude --resume SESSION` in the task's worktree, in a window
 * of a real tmux server on a private socket (`tmux -L`, so no user's tmux is touched); the
 * worktree outlives a dispatcher restart; `agentq release --note` runs it again headless,
 * resuming the same session with the note.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findOnPath } from '../../src/agents/resolve-command.ts';
import { claudeEnv, makeClaudeSandbox } from '../fixtures/claude-env.ts';
import { startFakeAnthropic } from '../fixtures/fake-anthropic.ts';
import { AGENTQ, agentq, agentqJson, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';
import { pidsWithEnv, waitFor } from '../fixtures/procs.ts';

type Fake = Awaited<ReturnType<typeof startFakeAnthropic>>;

const TMUX = findOnPath('tmux', process.env.PATH ?? '');
const git = (cwd: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@localhost', ...args], { cwd, encoding: 'utf8' }).trim();

/** The panes of the tmux server on `socket`: window name, pane pid, current path, start command. */
function panes(socket: string): Array<{ window: string; pid: number; path: string; start: string }> {
  const r = spawnSync(TMUX!, ['-L', socket, 'list-panes', '-a', '-F', '#{window_name}\t#{pane_pid}\t#{pane_current_path}\t#{pane_start_command}'], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [window = '', pid = '0', p = '', start = ''] = line.split('\t');
      return { window, pid: Number(pid), path: p, start };
    });
}

const cmdline = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
};

/** Stops a dispatcher started by the test (SIGTERM: its running attempts are requeued) and waits for it. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

describe('agentq attach / release', { concurrency: false, skip: TMUX ? false : 'tmux is not installed (Debian package tmux; .ci/run installs it)' }, () => {
  let fake: Fake;
  let env: Record<string, string>;
  before(async () => {
    fake = await startFakeAnthropic({ defaultTurns: [{ text: 'done' }] });
    const { config } = makeClaudeSandbox();
    // A person who has used claude before: the interactive CLI goes straight to the session (a
    // first run checks its connection to api.anthropic.com and quits without one).
    fs.writeFileSync(path.join(config, '.claude.json'), JSON.stringify({ hasCompletedOnboarding: true }));
    env = claudeEnv(fake.url, config);
  });
  after(async () => fake?.close());

  it('stops the headless attempt, opens claude --resume SESSION in the worktree in a tmux window; release resumes the session with the note', async () => {
    const paths = makeProject({ poll_interval: '200ms', kill_grace: '2s' });
    fs.writeFileSync(path.join(paths.root, 'README.md'), 'base\n');
    git(paths.root, 'init', '-q', '-b', 'main');
    git(paths.root, 'add', 'README.md');
    git(paths.root, 'commit', '-q', '-m', 'base');
    const marker = crypto.randomUUID();
    const socket = `agentq-test-${marker.slice(0, 8)}`;
    const flag = path.join(paths.root, '.git', 'tool-started');
    const note = 'I fixed the parser by hand (see human.txt); finish the task.';
    fake.setRules([
      {
        match: 'long work',
        turns: [{ bash: `touch ${flag}; sleep 120`, timeoutMs: 300_000 }, { bash: 'cat human.txt' }, { text: 'finished after release' }],
      },
    ]);
    dropTask(paths, 'long', null, 'Do the long work.');
    const runEnv = { ...env, AGENTQ_TEST_MARK: marker };
    const run = spawn(AGENTQ, ['run', '--project', paths.root], { env: runEnv, stdio: 'ignore' });
    let session = '';
    try {
      await waitFor(() => fs.existsSync(flag), 60_000, 'the Bash tool to start');
      const firstTurn = fake.requests.find((q) => q.hasTools && q.firstUserText?.includes('long work'))!;
      session = firstTurn.sessionId!;
      assert.match(session, /^[0-9a-f-]{36}$/);
      assert.ok(pidsWithEnv('AGENTQ_TEST_MARK', marker, true).length > 0, 'the agent runs');

      const attached = await agentq(['attach', 'long', '--tmux-socket', socket, '--no-attach', '--project', paths.root], env);
      assert.equal(attached.code, 0, attached.stderr);
      assert.match(attached.stdout, /stopping the headless attempt of #1 long/);
      assert.match(attached.stdout, new RegExp(`taken over: #1 long is blocked until agentq release 1 \\(claude session ${session}\\)`));
      assert.match(attached.stdout, /opened the tmux window long-1 in the tmux session agentq: .*claude --resume /);
      assert.match(attached.stdout, new RegExp(`attach with: tmux -L ${socket} attach -t agentq`));

      // The headless attempt is gone, its Bash tool's sleep too.
      assert.deepEqual(pidsWithEnv('AGENTQ_TEST_MARK', marker, true), [], 'no tagged agent process is left');
      const taken = await agentqJson(['show', 'long', '--json', '--project', paths.root], env);
      assert.equal(taken.state, 'blocked');
      assert.equal(typeof taken.takenOverAt, 'number');
      assert.equal(taken.stats.sessionId, session, 'the session id is kept');
      assert.equal(taken.attempts, 0, 'the stopped attempt does not count');
      assert.deepEqual(taken.attemptHistory.map((a: { outcome: string; reason: string }) => [a.outcome, a.reason]), [['interrupted', 'taken over']]);
      const list = await agentq(['list', '--project', paths.root], env);
      assert.match(list.stdout, /^1\s+blocked \(taken over\)\s+default\s+claude\s+long/m);

      // The tmux pane runs claude --resume SESSION in the task's worktree.
      const worktree = fs.realpathSync(path.join(paths.root, '.agent-queue', 'worktrees', '1-long'));
      let pane = panes(socket)[0];
      assert.equal(pane?.window, 'long-1');
      assert.match(pane!.start, new RegExp(`claude --resume ${session}$`));
      await waitFor(() => cmdline(pane!.pid).includes('--resume'), 20_000, 'the pane to exec claude');
      assert.deepEqual(cmdline(pane!.pid).slice(-2), ['--resume', session]);
      assert.equal(fs.realpathSync(`/proc/${pane!.pid}/cwd`), worktree);
      pane = panes(socket)[0];
      assert.equal(fs.realpathSync(pane!.path), worktree);
      const paneEnv = fs.readFileSync(`/proc/${pane!.pid}/environ`, 'utf8').split('\0');
      assert.ok(paneEnv.includes('AGENTQ_TASK_ID=1') && paneEnv.includes(`ANTHROPIC_BASE_URL=${fake.url}`), 'the agent environment');
      assert.ok(!paneEnv.some((e) => e.startsWith('AGENTQ_ATTEMPT_ID=')), 'not an attempt of agentq');
      const script = /\/bin\/sh (\S+session-env\.sh) /.exec(pane!.start)?.[1];
      assert.ok(script && !fs.existsSync(script) && !fs.existsSync(path.dirname(script)), 'the environment script removed itself');

      // The person works in the worktree, then leaves the session.
      fs.writeFileSync(path.join(worktree, 'human.txt'), 'edited by a person\n');
      spawnSync(TMUX!, ['-L', socket, 'kill-server']);
      // A dispatcher that starts meanwhile (it prunes the worktrees of tasks that will not run again) keeps this one.
      await stop(run);
      const meanwhile = await agentq(['run', '--once', '--project', paths.root], runEnv);
      assert.equal(meanwhile.code, 0, meanwhile.stderr);
      assert.ok(fs.existsSync(worktree), 'the worktree is kept while taken over');
      assert.equal(git(worktree, 'status', '--porcelain'), '?? human.txt', 'as the person left it');

      const refused = await agentq(['answer', 'long', 'blue', '--project', paths.root], env);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /is taken over by hand, not blocked on a question: agentq release hands it back/);

      const released = await agentq(['release', 'long', '--note', note, '--project', paths.root], env);
      assert.equal(released.code, 0, released.stderr);
      assert.match(released.stdout, new RegExp(`released #1 long: queued again; its next attempt resumes session ${session} with your note`));
      const again = await agentq(['run', '--once', '--project', paths.root], runEnv);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(listDir(paths.done), ['long.md']);
    } finally {
      spawnSync(TMUX!, ['-L', socket, 'kill-server']);
      await stop(run);
    }
    const { fm, body } = readResult(path.join(paths.done, 'long.md'));
    assert.equal(body, 'finished after release');
    assert.equal(fm.session_id, session);
    assert.equal(fm.attempts, 2);
    // The resumed attempt: the same session (claude --resume), the note as its prompt, in the worktree the person edited.
    const resumed = fake.requests.filter((q) => q.hasTools && q.sessionId === session);
    const withNote = resumed.filter((q) => JSON.stringify(q.body).includes(note));
    assert.ok(withNote.length >= 1, 'the resumed request carries the note');
    assert.ok(withNote.every((q) => q.assistantMessages >= 1), 'in the conversation of the first attempt');
    assert.match(JSON.stringify(resumed.at(-1)!.body), /edited by a person/, 'the person’s edit was there');
    assert.equal(git(paths.root, 'show', 'agentq/long:human.txt'), 'edited by a person');

    // An ended task cannot be taken over or released.
    const late = await agentq(['attach', 'long', '--tmux-socket', socket, '--no-attach', '--project', paths.root], env);
    assert.equal(late.code, 1);
    assert.equal(late.stderr, 'agentq: #1 long is completed: only a running or blocked task can be taken over\n');
    const notTaken = await agentq(['release', 'long', '--project', paths.root], env);
    assert.equal(notTaken.code, 1);
    assert.match(notTaken.stderr, /task 1 is completed, not taken over by hand/);
    assert.deepEqual(panes(socket), [], 'nothing was opened');
  });

  it('bad flags: usage and exit 2, nothing changed', async () => {
    const paths = makeProject();
    for (const args of [['attach'], ['attach', '1', '--bogus'], ['attach', '1', '--tmux-socket', 'a/b'], ['attach', '1', '--tmux-socket', ''], ['release', '1', '--note', ' '], ['release']]) {
      const r = await agentq([...args, '--project', paths.root], env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /Usage: agentq/, args.join(' '));
    }
    const r = await agentq(['attach', '1', '--tmux-socket', 'a/b', '--project', paths.root], env);
    assert.match(r.stderr, /^agentq: --tmux-socket: "a\/b" is not a tmux socket name/);
  });
});
