/**
 * The pure parts of notifications: which task states are notified as what, the payload of
 * each kind of target (webhook = the callback_url body plus the event; ntfy's JSON publish
 * with priority, tags and answer buttons; Slack's text + blocks with escaping; a hook's
 * stdin and AGENTQ_* variables, without agentq's own secrets), target ids and labels, answer
 * link bases, and the config's `notify:` checks naming the field.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/config.ts';
import type { Task } from '../../src/core/types.ts';
import { answerTokenSha256, answerUrl, newAnswerToken, publicBaseUrl } from '../../src/notify/answer-link.ts';
import { pauseEvent, queueEmptyEvent, taskEvent, taskEventName } from '../../src/notify/events.ts';
import { hookEnv } from '../../src/notify/hook.ts';
import { commandInput, notifyMessage, ntfyRequest, slackBody, webhookBody, type AnswerLink } from '../../src/notify/payloads.ts';
import { targetId, targetLabel } from '../../src/notify/targets.ts';
import { callbackPayload } from '../../src/server/callbacks.ts';
import { isStartBucketPause, rateLimitReason } from '../../src/scheduler/rate-limit.ts';
import { makeTask } from '../fixtures/specs.ts';

const T = 1_750_000_000_000;
const task = (over: Partial<Task>): Task => makeTask({ id: 7, name: 'fix-login', title: 'Fix the login form', claims: 2, ...over });
const link: AnswerLink = { url: 'https://q.example.com/v1/tasks/7/answer?token=aqa_x', expiresAt: T + 86_400_000 };

describe('notified events', () => {
  it('maps task states to events; cancelled, duplicate and open states are not notified', () => {
    const table: Array<[Task['state'], string | null]> = [
      ['completed', 'completed'],
      ['failed', 'failed'],
      ['timed_out', 'failed'],
      ['invalid', 'failed'],
      ['budget_exceeded', 'budget_exceeded'],
      ['blocked', 'blocked'],
      ['cancelled', null],
      ['duplicate', null],
      ['queued', null],
      ['running', null],
      ['waiting', null],
    ];
    for (const [state, event] of table) assert.equal(taskEventName(state), event, state);
  });

  it('keys an end by task, claim and end time; a block by task and claim; a pause by account and end; an empty queue by its mark', () => {
    const ended = taskEvent(task({ state: 'completed', finishedAt: T, result: 'done' }), 'proj', T + 5)!;
    assert.equal(ended.key, `completed:task 7:claim 2:at ${T}`);
    assert.equal(ended.event.at, T);
    assert.deepEqual(ended.event.task, callbackPayload(task({ state: 'completed', finishedAt: T, result: 'done' })));
    const blocked = taskEvent(task({ state: 'blocked', question: 'Which DB?' }), 'proj', T + 5)!;
    assert.deepEqual([blocked.key, blocked.event.question, blocked.event.claims, blocked.event.at], ['blocked:task 7:claim 2', 'Which DB?', 2, T + 5]);
    assert.equal(taskEvent(task({ state: 'cancelled', finishedAt: T }), 'proj', T), null);
    assert.equal(taskEvent(task({ state: 'blocked', question: null, takenOverAt: T }), 'proj', T + 5), null, 'taken over by hand: no blocked notification');
    assert.equal(pauseEvent({ agent: 'claude', until: T + 60_000, reason: 'usage limit' }, 'proj', T).key, `agent_paused:claude:until ${T + 60_000}`);
    assert.equal(queueEmptyEvent('12:30', 'proj', T).key, 'queue_empty:12:30');
  });

  it("tells start-bucket pauses (agentq's own pacing) from limits and budgets", () => {
    assert.equal(isStartBucketPause({ reason: rateLimitReason({ rate_limit: { count: 60, windowMs: 3_600_000, text: '60/h' } }, T) }), true);
    assert.equal(isStartBucketPause({ reason: 'daily budget reached: $5.0000 of budgets.daily_usd $5' }), false);
    assert.equal(isStartBucketPause({ reason: 'claude: usage limit reached, resets 3pm' }), false);
  });
});

describe('payloads', () => {
  const done = taskEvent(task({ state: 'completed', finishedAt: T, result: 'Fixed it.', stats: { sessionId: null, model: null, costUsd: 0.25, inputTokens: 10, outputTokens: 20, numTurns: 1 } }), 'proj', T)!;
  const asks = taskEvent(task({ state: 'blocked', question: 'Which <b>DB</b> & why?' }), 'proj', T)!;
  const paused = pauseEvent({ agent: 'claude', until: Date.UTC(2025, 0, 2, 15, 4), reason: 'usage limit' }, 'proj', T);

  it('webhook: the callback_url body, then the event, its key, the question and answer link, the pause', () => {
    const body = webhookBody(done.event, done.key, null);
    const callback = callbackPayload(task({ state: 'completed', finishedAt: T, result: 'Fixed it.', stats: { sessionId: null, model: null, costUsd: 0.25, inputTokens: 10, outputTokens: 20, numTurns: 1 } }));
    for (const [k, v] of Object.entries(callback)) assert.deepEqual(body[k as keyof typeof body], v, k);
    assert.deepEqual(
      { event: body.event, eventKey: body.eventKey, at: body.at, project: body.project, title: body.title, question: body.question, answerUrl: body.answerUrl, agent: body.agent },
      { event: 'completed', eventKey: done.key, at: T, project: 'proj', title: 'Fix the login form', question: null, answerUrl: null, agent: null },
    );
    const b = webhookBody(asks.event, asks.key, link);
    assert.deepEqual([b.state, b.question, b.answerUrl, b.answerExpiresAt], ['blocked', 'Which <b>DB</b> & why?', link.url, link.expiresAt]);
    const p = webhookBody(paused.event, paused.key, null);
    assert.deepEqual([p.taskId, p.name, p.state, p.agent, p.pausedUntil, p.pauseReason], [null, null, null, 'claude', Date.UTC(2025, 0, 2, 15, 4), 'usage limit']);
  });

  it('messages: title, text, priority and tags per event', () => {
    assert.deepEqual(notifyMessage(done.event), {
      title: '[proj] #7 fix-login completed',
      text: 'Fix the login form\nFixed it.\ncost $0.2500',
      priority: 3,
      tags: ['white_check_mark', 'agentq'],
    });
    const timedOut = taskEvent(task({ state: 'timed_out', finishedAt: T, failedReason: 'no answer within 30m' }), 'proj', T)!;
    assert.deepEqual(notifyMessage(timedOut.event), { title: '[proj] #7 fix-login timed out', text: 'Fix the login form\nno answer within 30m', priority: 4, tags: ['x', 'agentq'] });
    assert.deepEqual(notifyMessage(asks.event), { title: '[proj] #7 fix-login asks a question', text: 'Which <b>DB</b> & why?', priority: 4, tags: ['question', 'agentq'] });
    assert.equal(notifyMessage(paused.event).title, '[proj] claude paused until 2025-01-02 15:04 UTC');
    assert.deepEqual(notifyMessage(queueEmptyEvent('1:1', 'proj', T).event).priority, 2);
    const long = taskEvent(task({ state: 'failed', finishedAt: T, failedReason: 'x'.repeat(2000), title: 'fix-login' }), 'proj', T)!;
    const m = notifyMessage(long.event);
    assert.equal(m.text.length, 500, 'cut, and a title equal to the name left out');
    assert.ok(m.text.endsWith('…'));
  });

  it('ntfy: JSON publish to the server root (a path prefix kept), topic, priority, tags; answer buttons and a tap opening the link', () => {
    const plain = ntfyRequest('https://ntfy.sh/my-topic', done.event, null, ['yes', 'no']);
    assert.deepEqual(plain, {
      url: 'https://ntfy.sh/',
      body: { topic: 'my-topic', title: '[proj] #7 fix-login completed', message: 'Fix the login form\nFixed it.\ncost $0.2500', priority: 3, tags: ['white_check_mark', 'agentq'] },
    });
    assert.equal(ntfyRequest('http://127.0.0.1:9/ntfy/sub/t%20x', done.event, null, []).url, 'http://127.0.0.1:9/ntfy/sub/');
    assert.equal(ntfyRequest('http://127.0.0.1:9/ntfy/sub/t%20x', done.event, null, []).body.topic, 't x');
    const q = ntfyRequest('https://ntfy.sh/my-topic', asks.event, link, ['yes', 'no', 'later', 'never']);
    assert.equal(q.body.click, link.url);
    assert.equal(q.body.priority, 4);
    assert.deepEqual(q.body.actions, [
      { action: 'http', label: 'yes', url: link.url, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"answer":"yes"}', clear: true },
      { action: 'http', label: 'no', url: link.url, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"answer":"no"}', clear: true },
      { action: 'http', label: 'later', url: link.url, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"answer":"later"}', clear: true },
    ], "at most 3 (ntfy's limit)");
  });

  it('Slack: text and blocks, mrkdwn escaped, an Answer button with the link', () => {
    const s = slackBody(asks.event, link);
    assert.equal(s.text, '[proj] #7 fix-login asks a question');
    assert.deepEqual(s.blocks[0], { type: 'header', text: { type: 'plain_text', text: '[proj] #7 fix-login asks a question' } });
    assert.deepEqual(s.blocks[1], { type: 'section', text: { type: 'mrkdwn', text: 'Which &lt;b&gt;DB&lt;/b&gt; &amp; why?' } });
    assert.deepEqual(s.blocks[2], { type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: 'Answer' }, url: link.url, style: 'primary' }] });
    assert.equal(JSON.stringify(s.blocks.at(-1)), JSON.stringify({ type: 'context', elements: [{ type: 'mrkdwn', text: 'agentq · proj · blocked · task #7' }] }));
    const q = slackBody(queueEmptyEvent('1:1', 'proj', T).event, null);
    assert.equal(q.blocks.some((b) => (b as { type: string }).type === 'actions'), false);
  });

  it("hook: the webhook body on stdin, AGENTQ_* variables that apply; agentq's own variables not passed on", () => {
    const input = commandInput(asks.event, asks.key, link);
    assert.deepEqual(JSON.parse(input.stdin), webhookBody(asks.event, asks.key, link));
    assert.deepEqual(input.env, {
      AGENTQ_EVENT: 'blocked',
      AGENTQ_EVENT_KEY: 'blocked:task 7:claim 2',
      AGENTQ_PROJECT: 'proj',
      AGENTQ_TITLE: '[proj] #7 fix-login asks a question',
      AGENTQ_MESSAGE: 'Which <b>DB</b> & why?',
      AGENTQ_TASK_ID: '7',
      AGENTQ_TASK_NAME: 'fix-login',
      AGENTQ_TASK_TITLE: 'Fix the login form',
      AGENTQ_TASK_STATE: 'blocked',
      AGENTQ_QUESTION: 'Which <b>DB</b> & why?',
      AGENTQ_ANSWER_URL: link.url,
    });
    const env = hookEnv({ PATH: '/bin', AGENTQ_TOKEN: 'secret', AGENTQ_STORE: 'postgres://u:p@h/db', HOME: undefined, AGENTQ_EVENT: 'stale' }, input.env);
    assert.equal(env.AGENTQ_TOKEN, undefined);
    assert.equal(env.AGENTQ_STORE, undefined);
    assert.equal(env.PATH, '/bin');
    assert.equal(env.AGENTQ_EVENT, 'blocked', "the event's variables win");
    assert.equal('HOME' in env, false);
  });
});

describe('targets, links and config', () => {
  const [webhook, ntfy, slack, hook] = parseConfig({
    notify: [
      { on: ['completed'], webhook: 'https://example.com/hooks/secret?k=1' },
      { on: ['blocked'], ntfy: 'https://ntfy.sh/secret-topic' },
      { on: ['failed'], slack: 'https://hooks.slack.com/services/T0/B0/XYZ' },
      { on: ['completed'], command: ['notify-send', 'agentq'] },
    ],
  }).notify;

  it('ids hash the destination (not on:, tries…); labels show URLs by origin only', () => {
    assert.match(targetId(webhook!), /^[0-9a-f]{16}$/);
    assert.equal(targetId(webhook!), targetId({ ...webhook!, on: ['failed', 'blocked'], tries: 2 }));
    assert.notEqual(targetId(webhook!), targetId({ ...webhook!, webhook: 'https://example.com/hooks/other' }));
    assert.notEqual(targetId(webhook!), targetId(ntfy!));
    assert.equal(targetLabel(webhook!, 0), 'notify[0] webhook https://example.com/…');
    assert.equal(targetLabel(ntfy!, 1), 'notify[1] ntfy https://ntfy.sh/…');
    assert.equal(targetLabel(slack!, 2), 'notify[2] slack https://hooks.slack.com/…');
    assert.equal(targetLabel(hook!, 3), 'notify[3] command ["notify-send","agentq"]');
  });

  it('defaults: answers yes/no, 8 tries, 2 s backoff, 10 s timeout', () => {
    assert.deepEqual([ntfy!.answers, ntfy!.tries, ntfy!.backoff, ntfy!.timeout], [['yes', 'no'], 8, 2000, 10_000]);
  });

  it('answer links: serve.public_url, else the serve address (a wildcard as loopback); tokens random, stored by sha256', () => {
    assert.equal(publicBaseUrl(parseConfig({ serve: { public_url: 'https://q.example.com/agentq/' } })), 'https://q.example.com/agentq');
    assert.equal(publicBaseUrl(parseConfig({})), 'http://127.0.0.1:8765');
    assert.equal(publicBaseUrl(parseConfig({ serve: { host: '0.0.0.0', port: 9000 } })), 'http://127.0.0.1:9000');
    assert.equal(publicBaseUrl(parseConfig({ serve: { host: '::' } })), 'http://[::1]:8765');
    const a = newAnswerToken();
    assert.match(a, /^aqa_[A-Za-z0-9_-]{43}$/);
    assert.notEqual(a, newAnswerToken());
    assert.match(answerTokenSha256(a), /^[0-9a-f]{64}$/);
    assert.equal(answerUrl('https://q.example.com', 7, a), `https://q.example.com/v1/tasks/7/answer?token=${a}`);
    assert.equal(parseConfig({}).serve.answer_link_ttl, 86_400_000);
  });

  it('refuses bad targets naming the field: notify[1].on[0]', () => {
    const refused = (notify: unknown, message: RegExp) => assert.throws(() => parseConfig({ notify }), message);
    refused([{ on: ['completed'], webhook: 'https://x/y' }, { on: ['done'], webhook: 'https://x/y' }], /notify\[1\]\.on\[0\]: not an event: "done" \(use completed, failed, blocked, budget_exceeded, agent_paused, queue_empty\)/);
    refused([{ on: ['completed'] }], /notify\[0\]: give one of webhook, ntfy, slack, command/);
    refused([{ on: ['completed'], webhook: 'https://x/y', slack: 'https://x/z' }], /notify\[0\]: give only one of webhook, ntfy, slack, command \(found webhook, slack\)/);
    refused([{ on: [], webhook: 'https://x/y' }], /notify\[0\]\.on: list at least one event/);
    refused([{ on: ['failed'], webhook: 'ftp://x/y' }], /notify\[0\]\.webhook: not an http\(s\) URL/);
    refused([{ on: ['failed'], ntfy: 'https://ntfy.sh/' }], /notify\[0\]\.ntfy: not a topic URL/);
    refused([{ on: ['failed'], ntfy: 'https://ntfy.sh/t', answers: ['a', 'b', 'c', 'd'] }], /notify\[0\]\.answers/);
    refused([{ on: ['failed'], command: 'x', retries: 3 }], /notify\[0\]: unknown key "retries"/);
    refused([{ on: ['failed'], command: 'x', backoff: 'soon' }], /notify\[0\]\.backoff: not a duration/);
    assert.deepEqual(parseConfig({ notify: [{ on: ['failed', 'failed'], command: 'x' }] }).notify[0]!.on, ['failed']);
  });
});
