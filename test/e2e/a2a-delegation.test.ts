/**
 * Delegation end to end: a real `bin/agentq run` hands tasks to a minimal A2A agent made of
 * the SDK's server classes (test/fixtures/a2a-peer.ts, in this process on 127.0.0.1).
 * The result lands in done/ with the remote's fields; 503s are retried into one remote task;
 * a remote question blocks the local task and `agentq answer` resumes the remote one; a local
 * cancel cancels the remote task; a SIGKILLed dispatcher, restarted, resumes the delegation
 * (one message/send in all, one result); bad remotes fail with a clear reason.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ProjectPaths } from '../../src/config/config.ts';
import type { Delegation } from '../../src/core/delegation.ts';
import { startA2APeer, type A2APeer, type Behavior } from '../fixtures/a2a-peer.ts';
import { waitFor } from '../fixtures/procs.ts';
import { AGENTQ, agentq, agentqJson, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';

let peer: A2APeer;
/** Behaviours by the first line of the prompt. */
const scripts = new Map<string, Behavior>();
const children: ChildProcess[] = [];

before(async () => {
  peer = await startA2APeer({ script: (text) => scripts.get(text.split('\n')[0]!.trim()) ?? { kind: 'fail', reason: `unscripted: ${text}` } });
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await peer.close();
});

/** A project whose config names the peer as remote `peer` (fast polling). */
function project(extra: Record<string, unknown> = {}): ProjectPaths {
  return makeProject({ poll_interval: '100ms', lease: '3s', delegation_poll_max: '200ms', remotes: { peer: { url: peer.url } }, ...extra });
}

/** Drops a delegated task `name` whose prompt's first line is `name`, scripted with `behavior`. */
function delegate(paths: ProjectPaths, name: string, behavior: Behavior | null, fm: Record<string, unknown> = {}): void {
  if (behavior) scripts.set(name, behavior);
  dropTask(paths, name, { agent: 'a2a', remote: 'peer', ...fm }, `${name}\nPlease do the thing.`);
}

/** The message/sends the peer saw for task `name`. */
const sendsFor = (name: string) => peer.sends.filter((s) => s.text.startsWith(`${name}\n`));

/** `agentq run` in the background (until SIGTERM/SIGKILL). */
function dispatcher(paths: ProjectPaths): ChildProcess {
  const child = spawn(AGENTQ, ['run', '--project', paths.root], { stdio: 'ignore' });
  children.push(child);
  return child;
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

const delegations = (paths: ProjectPaths, ...args: string[]) => agentqJson<Array<Delegation & { taskName: string }>>(['delegations', '--json', '--project', paths.root, ...args]);

describe('delegating with agent: a2a through a real dispatcher', () => {
  it('delegates: the result lands in done/ with agent a2a, remote, remote_task_id, the remote cost; also as an agent: auto fallback (a2a:NAME)', async () => {
    const paths = project({ fallback: { default: ['a2a:peer'] } });
    delegate(paths, 'summary', { kind: 'complete', text: 'The summary.', metadata: { cost_usd: 0.25, input_tokens: 300, output_tokens: 40 } }, { title: 'Summarize', priority: 'high' });
    scripts.set('via-auto', { kind: 'complete', text: 'auto went remote' });
    dropTask(paths, 'via-auto', { agent: 'auto' }, 'via-auto\nPlease do the thing.');
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(listDir(paths.done), ['summary.md', 'via-auto.md']);
    const { fm, body } = readResult(path.join(paths.done, 'summary.md'));
    const sends = sendsFor('summary');
    assert.equal(sends.length, 1);
    const remoteId = peer.tasks.find((id) => peer.task(id)?.history?.some((m) => m.messageId === sends[0]!.messageId));
    assert.ok(remoteId);
    assert.deepEqual([fm.status, fm.agent, fm.remote, fm.remote_task_id, fm.cost_usd, fm.input_tokens, fm.output_tokens], ['completed', 'a2a', 'peer', remoteId, 0.25, 300, 40]);
    assert.equal(body, 'The summary.');
    assert.deepEqual(sends[0]?.metadata, { title: 'Summarize', priority: 'high', timeout: '1800000ms' });
    const auto = readResult(path.join(paths.done, 'via-auto.md'));
    assert.deepEqual([auto.fm.agent, auto.fm.remote, auto.body], ['a2a', 'peer', 'auto went remote']);
    const ledger = await delegations(paths);
    assert.ok(ledger[0]!.id > ledger[1]!.id, 'newest first');
    // The two ran at once: either may have delegated first.
    assert.deepEqual(ledger.map((d) => [d.taskName, d.state, d.remote, d.resultPreview]).sort(), [
      ['summary', 'completed', 'peer', 'The summary.'],
      ['via-auto', 'completed', 'peer', 'auto went remote'],
    ]);
    const table = await agentq(['delegations', '--project', paths.root]);
    assert.match(table.stdout, /^ID\s+TASK\s+REMOTE\s+STATE/m);
    assert.match(table.stdout, /#\d+ summary\s+peer\s+completed\s+\S+\s+.*The summary\./);
  });

  it('HTTP 503 twice before accepting: retried, one remote task, completed', async () => {
    const paths = project();
    delegate(paths, 'busy-remote', { kind: 'complete', text: 'made it' });
    const before = peer.sendRequests;
    const tasksBefore = peer.tasks.length;
    peer.unavailable = 2;
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(peer.sendRequests - before, 3, 'two 503s, then accepted');
    assert.equal(sendsFor('busy-remote').length, 1);
    assert.equal(peer.tasks.length - tasksBefore, 1, 'one remote task');
    assert.equal(readResult(path.join(paths.done, 'busy-remote.md')).body, 'made it');
  });

  it('a remote question blocks the local task; agentq answer resumes the remote task, which completes', async () => {
    const paths = project();
    delegate(paths, 'ask-me', { kind: 'ask', question: 'Which database should I use?', then: (answer) => ({ kind: 'complete', text: `Migrated to ${answer}.` }) });
    const first = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(first.code, 1, 'blocked is not completed');
    const [blocked] = await agentqJson<Array<{ state: string; question: string }>>(['list', '--json', '--project', paths.root]);
    assert.deepEqual([blocked?.state, blocked?.question], ['blocked', 'Which database should I use?']);
    assert.deepEqual((await delegations(paths)).map((d) => d.state), ['input_required']);
    const answered = await agentq(['answer', 'ask-me', 'Postgres', '--project', paths.root]);
    assert.equal(answered.code, 0, answered.stderr);
    const second = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(second.code, 0, second.stderr);
    const { fm, body } = readResult(path.join(paths.done, 'ask-me.md'));
    assert.equal(body, 'Migrated to Postgres.');
    const sends = peer.sends.filter((s) => s.text.startsWith('ask-me\n') || s.taskId === fm.remote_task_id);
    assert.deepEqual(sends.map((s) => [s.text.split('\n')[0], s.taskId ?? null]), [['ask-me', null], ['Postgres', fm.remote_task_id]], 'the answer went to the same remote task');
    assert.deepEqual((await delegations(paths)).map((d) => d.state), ['completed']);
  });

  it('cancelled while blocked on the remote question: the next dispatcher tick cancels the remote task and closes the delegation', async () => {
    const paths = project();
    delegate(paths, 'never-answered', { kind: 'ask', question: 'Shall I?', then: () => ({ kind: 'complete', text: 'too late' }) });
    assert.equal((await agentq(['run', '--once', '--project', paths.root])).code, 1);
    const [asked] = await delegations(paths);
    assert.equal(asked?.state, 'input_required');
    const c = await agentq(['cancel', 'never-answered', '--project', paths.root]);
    assert.equal(c.code, 0, c.stderr);
    const { fm } = readResult(path.join(paths.failed, 'never-answered.md'));
    assert.deepEqual([fm.status, fm.agent, fm.remote, fm.remote_task_id], ['cancelled', 'a2a', 'peer', asked?.remoteTaskId]);
    assert.equal((await agentq(['run', '--once', '--project', paths.root])).code, 0);
    assert.ok(peer.cancels.includes(asked!.remoteTaskId!));
    assert.equal(peer.task(asked!.remoteTaskId!)?.status.state, 'canceled');
    const [closed] = await delegations(paths);
    assert.equal(closed?.state, 'canceled');
    assert.match(closed?.lastError ?? '', /^task #\d+ ended cancelled here while its delegation was open; tasks\/cancel \S+ sent$/);
  });

  it('cancel locally: the remote task is cancelled (tasks/cancel), the local task ends cancelled', async () => {
    const paths = project();
    delegate(paths, 'long-job', { kind: 'slow' });
    const child = dispatcher(paths);
    await peer.until(() => sendsFor('long-job').length === 1, 'the delegation');
    const remoteId = peer.tasks.at(-1)!;
    await peer.until(() => peer.task(remoteId)?.status.state === 'working', 'the remote task working');
    const c = await agentq(['cancel', 'long-job', '--project', paths.root]);
    assert.equal(c.code, 0, c.stderr);
    await waitFor(() => listDir(paths.failed).includes('long-job.md'), 20_000, 'failed/long-job.md');
    await stopChild(child, 'SIGTERM');
    const { fm } = readResult(path.join(paths.failed, 'long-job.md'));
    assert.deepEqual([fm.status, fm.agent, fm.remote, fm.remote_task_id], ['cancelled', 'a2a', 'peer', remoteId]);
    assert.ok(peer.cancels.includes(remoteId));
    assert.equal(peer.task(remoteId)?.status.state, 'canceled');
    assert.deepEqual((await delegations(paths)).map((d) => d.state), ['canceled']);
  });

  it('SIGKILL mid-delegation, restart: the delegation is resumed, one message/send in all, the result lands once', async () => {
    const paths = project();
    delegate(paths, 'survivor', { kind: 'complete', text: 'survived the crash', delayMs: 2500 });
    const child = dispatcher(paths);
    await peer.until(() => sendsFor('survivor').length === 1, 'the delegation');
    const remoteId = peer.tasks.at(-1)!;
    await peer.until(() => peer.task(remoteId)?.status.state === 'working', 'the remote task working');
    await waitFor(async () => (await delegations(paths))[0]?.state === 'in_progress', 10_000, 'the ledger in_progress');
    await stopChild(child, 'SIGKILL');
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /recovered #\d+/);
    assert.deepEqual(listDir(paths.done), ['survivor.md'], 'one result file');
    const { fm, body } = readResult(path.join(paths.done, 'survivor.md'));
    assert.deepEqual([body, fm.remote_task_id, fm.attempts], ['survived the crash', remoteId, 2]);
    assert.equal(sendsFor('survivor').length, 1, 'the peer saw exactly one message/send');
    assert.equal(peer.tasks.filter((id) => peer.task(id)?.history?.some((m) => m.parts.some((p) => p.kind === 'text' && p.text.startsWith('survivor\n')))).length, 1, 'one remote task');
    const ledger = await delegations(paths);
    assert.deepEqual(ledger.map((d) => [d.state, d.remoteTaskId]), [['completed', remoteId]], 'one delegation');
  });

  it('bad remotes fail with a clear reason: an unknown name, a URL that is not an A2A agent, a remote that fails the task', async () => {
    const paths = project();
    delegate(paths, 'nowhere', null, { remote: 'nosuch' });
    delegate(paths, 'not-agent', null, { remote: `${peer.url}/not-an-agent/` });
    delegate(paths, 'remote-fails', { kind: 'fail', reason: 'disk full on the remote' });
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 1);
    assert.deepEqual(listDir(paths.failed), ['not-agent.md', 'nowhere.md', 'remote-fails.md']);
    const reason = (name: string) => readResult(path.join(paths.failed, `${name}.md`)).fm.failed_reason;
    assert.equal(reason('nowhere'), 'remote: "nosuch" is not a remote of config.yaml (remotes: peer); name one of them or give the URL of an A2A agent');
    assert.match(String(reason('not-agent')), /is not an A2A agent: GET http:\/\/127\.0\.0\.1:\d+\/not-an-agent\/\.well-known\/agent-card\.json: HTTP 404/);
    assert.match(String(reason('remote-fails')), /^remote peer ended its task \S+ failed: disk full on the remote$/);
    assert.equal(sendsFor('nowhere').length + sendsFor('not-agent').length, 0);
    assert.deepEqual((await delegations(paths)).map((d) => [d.taskName, d.state]), [['remote-fails', 'failed']]);
    // Bad flags of agentq delegations: usage, exit 2.
    const badState = await agentq(['delegations', '--state', 'lost', '--project', paths.root]);
    assert.deepEqual([badState.code, /argument 'lost' is invalid/.test(badState.stderr)], [2, true], badState.stderr);
    const badLimit = await agentq(['delegations', '--limit', '0', '--project', paths.root]);
    assert.deepEqual([badLimit.code, badLimit.stderr.split('\n')[0]], [2, 'agentq: --limit: "0" is not a whole number from 1 to 1000']);
    // A task file without remote is refused at intake, naming the field.
    dropTask(paths, 'no-remote', { agent: 'a2a' }, 'x');
    await agentq(['run', '--once', '--project', paths.root]);
    assert.match(String(readResult(path.join(paths.failed, 'no-remote.md')).fm.failed_reason), /^remote: not set: agent: a2a delegates/);
  });
});
