/**
 * Notifications end to end: a real `agentq run` (SIGKILLed and started again) with webhook,
 * ntfy and Slack targets on a local receiver that answers 500 until the restart, and a
 * `command:` hook. Each event (completed, failed, blocked, queue_empty) reaches each HTTP
 * target exactly once however many tries failed and whatever the kill cut; the hook gets
 * the event as JSON on stdin, its AGENTQ_* variables and not AGENTQ_TOKEN; `agentq status`
 * shows the failing targets while the receiver refuses.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { NotifyTargetStatus } from '../../src/notify/status.ts';
import { AGENTQ, agentqJson, dropTask, makeProject } from '../fixtures/project.ts';
import { waitFor } from '../fixtures/procs.ts';

interface Request {
  /** `webhook`, `ntfy`, `slack`. */
  target: string;
  /** The event as the receiver tells it apart: the webhook's eventKey, ntfy's title, Slack's text. */
  event: string;
  body: Record<string, unknown>;
  status: number;
}

/** A receiver on 127.0.0.1: `/hook` (webhook), `/ntfy/` (ntfy's root), `/slack`; 500 while `failing`, else 200. */
async function receiver() {
  const requests: Request[] = [];
  const state = { failing: true };
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      const body = JSON.parse(raw) as Record<string, unknown>;
      const target = req.url === '/hook' ? 'webhook' : req.url === '/ntfy/' ? 'ntfy' : req.url === '/slack' ? 'slack' : `unknown ${req.url}`;
      const event = String(target === 'webhook' ? body.eventKey : target === 'ntfy' ? body.title : body.text);
      const status = state.failing ? 500 : 200;
      requests.push({ target, event, body, status });
      res.writeHead(status).end(status === 200 ? 'ok' : 'try later');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, requests, state, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const cleanup: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

function startRun(root: string): ChildProcess {
  const child = spawn(AGENTQ, ['run', '--project', root], { env: { ...process.env, AGENTQ_TOKEN: 'main-secret-token' }, stdio: 'ignore' });
  cleanup.push(() => void child.kill('SIGKILL'));
  return child;
}

const exited = (child: ChildProcess) => new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));

describe('notify: targets', () => {
  it('delivers each event once to webhook, ntfy and Slack through 500s and a SIGKILL; the hook gets JSON on stdin', async () => {
    const rx = await receiver();
    cleanup.push(rx.close);
    const root = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'agentq-notify-out-'));
    const hookOut = path.join(root, 'hook.jsonl');
    const hookEnv = path.join(root, 'hook.env');
    const http = (key: string, url: string) => ({ on: ['completed', 'failed', 'blocked', 'queue_empty'], [key]: url, backoff: '300ms', timeout: '2s', tries: 30 });
    const paths = makeProject({
      poll_interval: '200ms',
      notify: [
        http('webhook', `${rx.url}/hook`),
        http('ntfy', `${rx.url}/ntfy/agentq-topic`),
        http('slack', `${rx.url}/slack`),
        {
          on: ['completed', 'blocked'],
          command: `cat >> '${hookOut}'; printf '%s %s %s\\n' "$AGENTQ_EVENT" "$AGENTQ_TASK_NAME" "\${AGENTQ_TOKEN:-no-token}" >> '${hookEnv}'`,
        },
      ],
    });
    dropTask(paths, 'ok', { agent: 'command', command: 'echo all done' }, 'do it');
    dropTask(paths, 'bad', { agent: 'command', command: 'exit 3' }, 'fail');
    dropTask(paths, 'ask', { agent: 'command', command: 'echo "<<question>>Which colour?<</question>>"' }, 'ask');

    const pairs = () => {
      const byPair = new Map<string, Request[]>();
      for (const r of rx.requests) byPair.set(`${r.target} ${r.event}`, [...(byPair.get(`${r.target} ${r.event}`) ?? []), r]);
      return byPair;
    };
    // 4 events × 3 targets, each refused at least twice before the kill.
    let child = startRun(paths.root);
    await waitFor(() => pairs().size === 12 && [...pairs().values()].every((rs) => rs.length >= 2), 60_000, 'every event at every target refused twice');
    child.kill('SIGKILL');
    await exited(child);
    assert.equal(rx.requests.filter((r) => r.status === 200).length, 0);

    const down = await agentqJson<{ notify: NotifyTargetStatus[] }>(['status', '--json', '--project', paths.root]);
    assert.deepEqual(
      down.notify.map((n) => [n.label.replace(/:\d+\//, ':PORT/'), n.delivered, n.pending, n.failing]),
      [
        ['notify[0] webhook http://127.0.0.1:PORT/…', 0, 4, true],
        ['notify[1] ntfy http://127.0.0.1:PORT/…', 0, 4, true],
        ['notify[2] slack http://127.0.0.1:PORT/…', 0, 4, true],
        [`notify[3] command cat >> '${hookOut}'; printf '%s %s %s\\n' "$AGENTQ_EVENT" "$AGENTQ_TASK_NAME" "\${AGENTQ_TOKEN:-no-token}" >> '${hookEnv}'`, 2, 0, false],
      ],
    );
    for (const n of down.notify.slice(0, 3)) assert.match(n.lastError ?? '', /^HTTP 500/);

    rx.state.failing = false;
    child = startRun(paths.root);
    await waitFor(
      async () => {
        const s = await agentqJson<{ notify: NotifyTargetStatus[] }>(['status', '--json', '--project', paths.root]);
        return s.notify.every((n) => n.pending === 0);
      },
      90_000,
      'every notification delivered after the restart',
    );
    child.kill('SIGTERM');
    await exited(child);

    const byPair = pairs();
    assert.equal(byPair.size, 12, [...byPair.keys()].join('\n'));
    for (const [pair, rs] of byPair) {
      assert.equal(rs.filter((r) => r.status === 200).length, 1, `${pair}: one payload accepted`);
      assert.ok(rs.filter((r) => r.status === 500).length >= 2, `${pair}: refused twice first`);
      assert.equal(rs.at(-1)!.status, 200, `${pair}: nothing after the accepted one`);
    }
    const accepted = (target: string) => rx.requests.filter((r) => r.target === target && r.status === 200).map((r) => r.body);
    const hooks = accepted('webhook');
    assert.deepEqual(hooks.map((b) => b.event).sort(), ['blocked', 'completed', 'failed', 'queue_empty']);
    const completed = hooks.find((b) => b.event === 'completed')!;
    assert.deepEqual([completed.name, completed.state, completed.result], ['ok', 'completed', 'all done']);
    const failed = hooks.find((b) => b.event === 'failed')!;
    assert.deepEqual([failed.name, failed.state], ['bad', 'failed']);
    assert.match(String(failed.failedReason), /exited with code 3/);
    const blocked = hooks.find((b) => b.event === 'blocked')!;
    assert.deepEqual([blocked.name, blocked.state, blocked.question], ['ask', 'blocked', 'Which colour?']);
    assert.match(String(blocked.answerUrl), /^http:\/\/127\.0\.0\.1:8765\/v1\/tasks\/\d+\/answer\?token=aqa_/);

    const ntfy = accepted('ntfy');
    assert.ok(ntfy.every((b) => b.topic === 'agentq-topic'));
    const ntfyBlocked = ntfy.find((b) => String(b.title).endsWith('asks a question'))!;
    assert.deepEqual([ntfyBlocked.message, ntfyBlocked.priority, ntfyBlocked.tags], ['Which colour?', 4, ['question', 'agentq']]);
    assert.deepEqual(
      (ntfyBlocked.actions as Array<{ action: string; label: string; body: string }>).map((a) => [a.action, a.label, a.body]),
      [
        ['http', 'yes', '{"answer":"yes"}'],
        ['http', 'no', '{"answer":"no"}'],
      ],
    );
    assert.equal(ntfy.find((b) => String(b.title).endsWith('failed'))?.priority, 4);
    const slack = accepted('slack');
    assert.ok(slack.some((b) => b.text === `[${path.basename(paths.root)}] the queue is empty`));
    assert.ok(slack.every((b) => Array.isArray(b.blocks)));

    // The hook: once per event, the event as JSON on stdin, its variables, never agentq's token.
    const lines = fs.readFileSync(hookOut, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.map((l) => [l.event, l.name]).sort(), [['blocked', 'ask'], ['completed', 'ok']]);
    assert.deepEqual(fs.readFileSync(hookEnv, 'utf8').trim().split('\n').sort(), ['blocked ask no-token', 'completed ok no-token']);
  });
});
