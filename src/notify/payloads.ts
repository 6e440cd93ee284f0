/**
 * What each kind of `notify:` target is sent for an event (pure functions, unit-tested): the
 * webhook's JSON body (the `callback_url` body plus the event's fields), ntfy's JSON publish
 * request (title, priority, tags, answer buttons), Slack's incoming-webhook payload (`text` +
 * blocks), and a hook command's stdin and `AGENTQ_*` variables.
 */
import type { CallbackPayload } from '../server/callbacks.ts';
import type { NotifyEvent, NotifyEventName } from './events.ts';

/** A blocked task's one-time answer link: POST `{"answer": "…"}` to `url`, or open it for a form. */
export interface AnswerLink {
  url: string;
  /** Epoch ms after which it is refused. */
  expiresAt: number;
}

/** What a notification says, whatever carries it. */
export interface NotifyMessage {
  /** One line: `[project] #7 fix-login completed`. */
  title: string;
  /** The body: the result, the reason, the question… (trimmed to a few hundred characters). */
  text: string;
  /** ntfy's scale: 1 (min) … 3 (default) … 5 (max). */
  priority: 1 | 2 | 3 | 4 | 5;
  /** ntfy tags (the first one an emoji short code). */
  tags: string[];
}

/** The task fields of {@link CallbackPayload}, all null (events without a task). */
const NO_TASK: { [K in keyof CallbackPayload]: null } = {
  taskId: null,
  name: null,
  state: null,
  result: null,
  failedReason: null,
  costUsd: null,
  inputTokens: null,
  outputTokens: null,
  finishedAt: null,
};

/** The webhook's JSON body, also a hook command's stdin. Times epoch ms; null where a field does not apply. */
export type WebhookBody = { [K in keyof CallbackPayload]: CallbackPayload[K] | null } & {
  event: NotifyEventName;
  /** The same for every target and every send of one event (receivers may deduplicate by it). */
  eventKey: string;
  at: number;
  project: string;
  title: string | null;
  question: string | null;
  /** `blocked` with an answer link: POST `{"answer": "…"}` here (no other credential needed), once. */
  answerUrl: string | null;
  answerExpiresAt: number | null;
  /** `agent_paused`: the account, until when, why. */
  agent: string | null;
  pausedUntil: number | null;
  pauseReason: string | null;
};

/** The webhook body of an event (`eventKey`: its notification key). */
export function webhookBody(e: NotifyEvent, eventKey: string, link: AnswerLink | null): WebhookBody {
  return {
    ...(e.task ?? NO_TASK),
    event: e.event,
    eventKey,
    at: e.at,
    project: e.project,
    title: e.title,
    question: e.question,
    answerUrl: link?.url ?? null,
    answerExpiresAt: link?.expiresAt ?? null,
    agent: e.pause?.agent ?? null,
    pausedUntil: e.pause?.until ?? null,
    pauseReason: e.pause?.reason ?? null,
  };
}

/** `text` cut to `max` characters (an ellipsis marks the cut). */
function excerpt(text: string, max: number): string {
  const t = text.trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** `2025-01-02 15:04 UTC`. */
const utc = (ms: number) => `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

const STATE_WORDS: Partial<Record<string, string>> = { timed_out: 'timed out', invalid: 'was refused (invalid task file)' };

/**
 * The title, text, priority and tags of an event: completed (3, white_check_mark), failed
 * (4, x), budget_exceeded (4, money_with_wings), blocked (4, question; the text is the
 * question), agent_paused (3, pause_button), queue_empty (2, zzz).
 */
export function notifyMessage(e: NotifyEvent): NotifyMessage {
  const t = e.task;
  const who = t ? `#${t.taskId} ${t.name}` : '';
  // The title only when it says more than the name (task files without one get the name).
  const title = e.title !== null && e.title !== t?.name ? e.title : null;
  const head = (what: string) => `[${e.project}] ${what}`;
  switch (e.event) {
    case 'completed':
      return {
        title: head(`${who} completed`),
        text: [title, t?.result ? excerpt(t.result, 500) : null, t?.costUsd ? `cost $${t.costUsd.toFixed(4)}` : null].filter(Boolean).join('\n'),
        priority: 3,
        tags: ['white_check_mark', 'agentq'],
      };
    case 'failed':
      return {
        title: head(`${who} ${STATE_WORDS[t?.state ?? ''] ?? 'failed'}`),
        text: [title, excerpt(t?.failedReason ?? 'no reason recorded', 500)].filter(Boolean).join('\n'),
        priority: 4,
        tags: ['x', 'agentq'],
      };
    case 'budget_exceeded':
      return {
        title: head(`${who} stopped: over its budget`),
        text: [title, excerpt(t?.failedReason ?? 'max_cost_usd reached', 500)].filter(Boolean).join('\n'),
        priority: 4,
        tags: ['money_with_wings', 'agentq'],
      };
    case 'blocked':
      return { title: head(`${who} asks a question`), text: excerpt(e.question ?? '(no question recorded)', 1500), priority: 4, tags: ['question', 'agentq'] };
    case 'agent_paused':
      return {
        title: head(`${e.pause?.agent ?? 'an agent'} paused until ${e.pause ? utc(e.pause.until) : '?'}`),
        text: excerpt(e.pause?.reason ?? '', 500),
        priority: 3,
        tags: ['pause_button', 'agentq'],
      };
    case 'queue_empty':
      return { title: head('the queue is empty'), text: 'Nothing is queued or running.', priority: 2, tags: ['zzz', 'agentq'] };
  }
}

/**
 * ntfy's JSON publish request for a topic URL (`https://ntfy.sh/TOPIC`, also under a path
 * prefix): POSTed to the server's root (the URL less its last segment) with `topic`, `title`,
 * `message`, `priority`, `tags`. With an answer link: a tap opens it (`click`, the answer
 * form), and each of `answers` (at most 3, ntfy's limit) is an `http` action button that
 * POSTs `{"answer": "…"}` to it.
 */
export function ntfyRequest(topicUrl: string, e: NotifyEvent, link: AnswerLink | null, answers: readonly string[]): { url: string; body: Record<string, unknown> } {
  const u = new URL(topicUrl);
  const segments = u.pathname.split('/');
  const topic = decodeURIComponent(segments.pop() ?? '');
  u.pathname = `${segments.join('/')}/`;
  u.search = '';
  const m = notifyMessage(e);
  const body: Record<string, unknown> = { topic, title: m.title, message: m.text || m.title, priority: m.priority, tags: m.tags };
  if (link) {
    body.click = link.url;
    body.actions = answers.slice(0, 3).map((answer) => ({
      action: 'http',
      label: answer,
      url: link.url,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ answer }),
      clear: true,
    }));
  }
  return { url: u.toString(), body };
}

/** Text for Slack's mrkdwn: `&`, `<`, `>` escaped (Slack's rule), cut to `max`. */
function slackText(text: string, max: number): string {
  return excerpt(text, max).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Slack's incoming-webhook payload: `text` (the notification's one line, what Slack shows
 * where blocks are not rendered) and `blocks`: a header, the text, an `Answer` button
 * opening the answer link (blocked), and a context line (project, event, task).
 */
export function slackBody(e: NotifyEvent, link: AnswerLink | null): { text: string; blocks: unknown[] } {
  const m = notifyMessage(e);
  const blocks: unknown[] = [{ type: 'header', text: { type: 'plain_text', text: excerpt(m.title, 150) } }];
  if (m.text) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: slackText(m.text, 2900) } });
  if (link) {
    blocks.push({
      type: 'actions',
      elements: [{ type: 'button', text: { type: 'plain_text', text: 'Answer' }, url: link.url, style: 'primary' }],
    });
    blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: slackText(`The answer link works once, until ${utc(link.expiresAt)}.`, 300) }] });
  }
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: slackText(`agentq · ${e.project} · ${e.event}${e.task ? ` · task #${e.task.taskId}` : ''}`, 300) }] });
  return { text: slackText(m.title, 300), blocks };
}

/**
 * A hook command's input: stdin is the {@link webhookBody} as JSON; the variables (only those
 * that apply) are `AGENTQ_EVENT`, `AGENTQ_EVENT_KEY`, `AGENTQ_PROJECT`, `AGENTQ_TITLE` and
 * `AGENTQ_MESSAGE` (the notification's line and text), `AGENTQ_TASK_ID`, `AGENTQ_TASK_NAME`,
 * `AGENTQ_TASK_TITLE`, `AGENTQ_TASK_STATE`, `AGENTQ_FAILED_REASON`, `AGENTQ_QUESTION`,
 * `AGENTQ_ANSWER_URL`, `AGENTQ_AGENT`, `AGENTQ_PAUSED_UNTIL` (epoch ms).
 */
export function commandInput(e: NotifyEvent, eventKey: string, link: AnswerLink | null): { stdin: string; env: Record<string, string> } {
  const m = notifyMessage(e);
  const vars: Record<string, string | number | null | undefined> = {
    AGENTQ_EVENT: e.event,
    AGENTQ_EVENT_KEY: eventKey,
    AGENTQ_PROJECT: e.project,
    AGENTQ_TITLE: m.title,
    AGENTQ_MESSAGE: m.text,
    AGENTQ_TASK_ID: e.task?.taskId,
    AGENTQ_TASK_NAME: e.task?.name,
    AGENTQ_TASK_TITLE: e.title,
    AGENTQ_TASK_STATE: e.task?.state,
    AGENTQ_FAILED_REASON: e.task?.failedReason,
    AGENTQ_QUESTION: e.question,
    AGENTQ_ANSWER_URL: link?.url,
    AGENTQ_AGENT: e.pause?.agent,
    AGENTQ_PAUSED_UNTIL: e.pause?.until,
  };
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(vars)) if (v !== null && v !== undefined) env[k] = String(v);
  return { stdin: `${JSON.stringify(webhookBody(e, eventKey, link))}\n`, env };
}
