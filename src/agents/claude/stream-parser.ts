/**
 * An incremental parser for Claude Code's `--output-format stream-json --verbose` output
 * (one JSON object per stdout line; shapes observed with Claude Code 2.1.197, see
 * /work/shared/reference/claude-code-headless.md). Pure: no I/O, no timers; the clock is
 * passed in. The runner feeds it lines and acts on the signals it returns.
 */
import type { AgentEvent } from '../runner.ts';
import type { RunStats } from '../../core/types.ts';
import type { TokenUsage } from '../../pricing/prices.ts';
import { parseResetTime } from './reset-time.ts';
import { num, obj, parseJsonLine, str, type Json } from '../json.ts';

/**
 * Something that decides the attempt's outcome by itself.
 * - `auth_failed`: credentials refused; `status` is the HTTP status when known (401/403).
 * - `rate_limited`: a rate/usage limit; `resetAt` epoch ms when the CLI said when it resets.
 * `source` says which line carried it: `api_retry` and `rate_limit_event` arrive while the
 * CLI would otherwise keep retrying for minutes (stop it at once); `result` / `assistant`
 * arrive at the end of a run.
 */
export type ClaudeSignal =
  | { kind: 'auth_failed'; status: number | null; reason: string; source: SignalSource }
  | { kind: 'rate_limited'; resetAt: number | null; reason: string; source: SignalSource };

export type SignalSource = 'api_retry' | 'rate_limit_event' | 'result' | 'assistant';

/** What one line told the caller. */
export interface ParsedLine {
  /** False when the line was not a JSON object (it is skipped, nothing else changes). */
  parsed: boolean;
  /** The line's `type` (and `/subtype` for system lines), e.g. `system/api_retry`; null if unparsed. */
  kind: string | null;
  /** Events to forward to `RunRequest.onEvent`. */
  events: AgentEvent[];
  /** Set when the run should stop now (auth failure or rate limit seen mid-run). */
  stop: ClaudeSignal | null;
}

/** Everything the parser has learnt so far. Numbers: USD, tokens, ms. */
export interface ClaudeStreamState {
  /** From `system/init`, else the first line carrying `session_id`. */
  sessionId: string | null;
  /** `model` of `system/init` (e.g. `claude-opus-4-8[1m]`), else of the first real assistant message. */
  model: string | null;
  /** A `result` line was seen. */
  hasResult: boolean;
  /** `now` when the result line was pushed (epoch ms), null before. */
  resultAt: number | null;
  /** `result` text of the result line (null when absent). */
  result: string | null;
  /** `subtype` of the result line: `success`, `error_max_turns`, `error_during_execution`, `error_max_budget_usd`, … */
  subtype: string | null;
  isError: boolean | null;
  /** HTTP status of the API error that ended the run (result `api_error_status`). */
  apiErrorStatus: number | null;
  /** Result `total_cost_usd`, USD. */
  costUsd: number | null;
  /** Result `usage.input_tokens` (+ cache creation/read tokens when `includeCacheTokens`). */
  inputTokens: number | null;
  /** Result `usage.output_tokens`. */
  outputTokens: number | null;
  /** Result `num_turns`. */
  numTurns: number | null;
  /** Text of the last assistant message (also kept for runs that end without a result). */
  lastAssistantText: string | null;
  /**
   * `error` field of the last synthetic assistant message (the CLI adds one when an API
   * call failed): `authentication_failed`, `rate_limit`, `billing_error`, `invalid_request`,
   * `overloaded`, `server_error`, `unknown`, …
   */
  assistantError: string | null;
  /** The last `system/api_retry` line: HTTP status, error name, attempt number. */
  lastRetry: { status: number | null; error: string | null; attempt: number | null } | null;
  /** Lines that were not JSON objects and were skipped. */
  skippedLines: number;
  /** The first stop signal returned, if any. */
  stopSignal: ClaudeSignal | null;
}

/** Options of {@link ClaudeStreamParser}. */
export interface ClaudeStreamParserOptions {
  /** Clock, epoch ms; used for reset times and `resultAt`. Default `Date.now`. */
  now?: () => number;
  /** Count cache creation + cache read tokens into `inputTokens`. Default true. */
  includeCacheTokens?: boolean;
  /** Longest `progress` text, characters. Default 200. */
  maxProgressChars?: number;
}


/** HTTP statuses that mean the credentials were refused. */
const AUTH_STATUSES = new Set([401, 403]);
/** HTTP statuses that mean "slow down": rate limited (429) or overloaded (529). */
const RATE_STATUSES = new Set([429, 529]);

/** Result texts that announce a rate or usage limit (Claude Code 2.1.x and older). */
const RATE_LIMIT_TEXT = [
  /Claude AI usage limit reached/i,
  /You['’]ve hit your\b[^·\n]{0,60}?\blimit\b/i,
  /\bout of usage\b/i,
  /API Error:\s*Rate limit reached/i,
  /API Error:\s*429\b/i,
  /\busage limit reached\b/i,
];

/** Whether a `result` / assistant text announces a rate or usage limit. */
export function isRateLimitText(text: string): boolean {
  return RATE_LIMIT_TEXT.some((re) => re.test(text));
}

/**
 * Classify how a finished run ended from its `result` line (and the last synthetic
 * assistant error), for runs that were not stopped early:
 * - rate-limit text (`Claude AI usage limit reached|<epoch>`, `You've hit your limit · resets
 *   5:50pm (Europe/Berlin)`, `API Error: Rate limit reached`), `api_error_status` 429/529 or
 *   assistant error `rate_limit` → `rate_limited` (reset parsed from the text, else null);
 * - `api_error_status` 401/403 or assistant error `authentication_failed` /
 *   `oauth_org_not_allowed` (e.g. "Not logged in · Please run /login") → `auth_failed`.
 * Returns null for anything else (the caller maps is_error to completed / failed).
 * Only runs with `is_error: true` are classified, so a successful run that mentions limits
 * in its answer is not; the one exception is a result that is nothing but
 * `Claude AI usage limit reached|<epoch>`, which older CLIs reported with `is_error: false`.
 */
export function classifyResult(state: ClaudeStreamState, now: number): ClaudeSignal | null {
  const text = state.result ?? state.lastAssistantText ?? '';
  const bareUsageLimit = /^\s*Claude AI usage limit reached\s*\|\s*\d{9,13}\s*$/i.test(state.result ?? '');
  if (!state.hasResult || (state.isError !== true && !bareUsageLimit)) return null;
  const status = state.apiErrorStatus;
  if (isRateLimitText(text) || (status !== null && RATE_STATUSES.has(status)) || state.assistantError === 'rate_limit') {
    return {
      kind: 'rate_limited',
      resetAt: parseResetTime(text, state.resultAt ?? now),
      reason: text || `rate limited (HTTP ${status ?? 429})`,
      source: 'result',
    };
  }
  if (
    (status !== null && AUTH_STATUSES.has(status)) ||
    state.assistantError === 'authentication_failed' ||
    state.assistantError === 'oauth_org_not_allowed'
  ) {
    return {
      kind: 'auth_failed',
      status,
      reason: `authentication failed${status !== null ? ` (HTTP ${status})` : ''}: ${text || 'credentials refused'}`,
      source: 'result',
    };
  }
  return null;
}

/** A one-line description of a tool call for `progress` events, e.g. `Bash: npm test`. */
export function describeToolUse(name: string, input: Json | null, maxChars = 200): string {
  const pick = (...keys: string[]): string | null => {
    for (const k of keys) {
      const v = input?.[k];
      if (typeof v === 'string' && v.length > 0) return v;
    }
    return null;
  };
  let detail: string | null;
  switch (name) {
    case 'Bash':
      detail = pick('command');
      break;
    case 'Read':
    case 'Write':
    case 'Edit':
    case 'MultiEdit':
    case 'NotebookEdit':
      detail = pick('file_path', 'notebook_path', 'path');
      break;
    case 'Grep':
    case 'Glob':
      detail = pick('pattern');
      break;
    case 'WebFetch':
      detail = pick('url');
      break;
    case 'WebSearch':
      detail = pick('query');
      break;
    case 'Task':
    case 'Agent':
      detail = pick('description', 'subagent_type');
      break;
    default:
      detail = pick('command', 'file_path', 'path', 'pattern', 'url', 'query', 'description');
  }
  const text = (detail ? `${name}: ${detail}` : name).replace(/\s+/g, ' ').trim();
  return text.length > maxChars ? `${text.slice(0, Math.max(0, maxChars - 1))}…` : text;
}

/**
 * Feeds on stream-json lines one at a time (`push`), keeps {@link ClaudeStreamState}, and
 * returns per line the events to forward and, for auth failures and rate limits seen
 * mid-run, a stop signal:
 * - `system/api_retry` with `error_status` 401/403 (or `error: authentication_failed`) →
 *   `auth_failed`; 429/529 (or `error: rate_limit` / `overloaded`) → `rate_limited`,
 *   `resetAt` null (the CLI's `retry_delay_ms` is a backoff, not a reset time);
 * - `rate_limit_event` with `rate_limit_info.status` `rejected` → `rate_limited`, `resetAt`
 *   from `resetsAt` (epoch s → ms) or null; `allowed` / `allowed_warning` never stop.
 * Events: `session` once the session id is known (with the init model), `progress` per
 * tool use, `usage` on the result line.
 * Lines that are not JSON objects (e.g. a line the CLI split in two) are skipped and
 * counted; parsing goes on with the next line.
 */
export class ClaudeStreamParser {
  private readonly now: () => number;
  private readonly includeCacheTokens: boolean;
  private readonly maxProgressChars: number;
  private sessionEmitted = false;
  private readonly seenToolUses = new Set<string>();
  /** Usage already reported per assistant message id (one message spans several lines). */
  private readonly countedUsage = new Map<string, TokenUsage>();
  readonly state: ClaudeStreamState = {
    sessionId: null,
    model: null,
    hasResult: false,
    resultAt: null,
    result: null,
    subtype: null,
    isError: null,
    apiErrorStatus: null,
    costUsd: null,
    inputTokens: null,
    outputTokens: null,
    numTurns: null,
    lastAssistantText: null,
    assistantError: null,
    lastRetry: null,
    skippedLines: 0,
    stopSignal: null,
  };

  constructor(options: ClaudeStreamParserOptions = {}) {
    this.now = options.now ?? Date.now;
    this.includeCacheTokens = options.includeCacheTokens ?? true;
    this.maxProgressChars = options.maxProgressChars ?? 200;
  }

  /** Parse one stdout line (without its newline). Never throws. */
  push(line: string): ParsedLine {
    const msg = parseJsonLine(line);
    if (!msg) {
      if (line.trim().length > 0) this.state.skippedLines++;
      return { parsed: false, kind: null, events: [], stop: null };
    }

    const events: AgentEvent[] = [];
    let stop: ClaudeSignal | null = null;
    const type = str(msg.type) ?? 'unknown';
    const subtype = str(msg.subtype);
    const kind = subtype && type === 'system' ? `${type}/${subtype}` : type;

    if (type === 'system' && subtype === 'init') {
      const model = str(msg.model);
      if (model) this.state.model = model;
      const sid = str(msg.session_id);
      if (sid) this.state.sessionId = sid;
    } else if (!this.state.sessionId) {
      const sid = str(msg.session_id);
      if (sid) this.state.sessionId = sid;
    }
    if (this.state.sessionId && !this.sessionEmitted) {
      this.sessionEmitted = true;
      events.push({ type: 'session', sessionId: this.state.sessionId, model: this.state.model });
    }

    if (type === 'system' && subtype === 'api_retry') {
      stop = this.onApiRetry(msg);
    } else if (type === 'rate_limit_event') {
      stop = this.onRateLimitEvent(msg);
    } else if (type === 'assistant') {
      this.onAssistant(msg, events);
    } else if (type === 'result') {
      this.onResult(msg, events);
    }

    if (stop && !this.state.stopSignal) this.state.stopSignal = stop;
    return { parsed: true, kind, events, stop };
  }

  /** Run figures so far, for `RunOutcome.stats`. */
  stats(): RunStats {
    const s = this.state;
    return {
      sessionId: s.sessionId,
      model: s.model,
      costUsd: s.costUsd,
      inputTokens: s.inputTokens,
      outputTokens: s.outputTokens,
      numTurns: s.numTurns,
    };
  }

  private onApiRetry(msg: Json): ClaudeSignal | null {
    const status = num(msg.error_status);
    const error = str(msg.error);
    const attempt = num(msg.attempt);
    this.state.lastRetry = { status, error, attempt };
    const retryOf = `${attempt !== null ? `, attempt ${attempt}` : ''}${num(msg.max_retries) !== null ? ` of ${String(msg.max_retries)}` : ''}`;
    if ((status !== null && AUTH_STATUSES.has(status)) || (status === null && error === 'authentication_failed')) {
      return {
        kind: 'auth_failed',
        status,
        reason: `authentication failed (HTTP ${status ?? '401'}${error ? ` ${error}` : ''}): the API refused the credentials (the CLI was retrying${retryOf})`,
        source: 'api_retry',
      };
    }
    if ((status !== null && RATE_STATUSES.has(status)) || (status === null && (error === 'rate_limit' || error === 'overloaded'))) {
      const what = status === 529 || error === 'overloaded' ? 'API overloaded' : 'rate limited';
      return {
        kind: 'rate_limited',
        resetAt: null,
        reason: `${what} (HTTP ${status ?? '429'}${error ? ` ${error}` : ''}; the CLI was retrying${retryOf})`,
        source: 'api_retry',
      };
    }
    return null;
  }

  private onRateLimitEvent(msg: Json): ClaudeSignal | null {
    const info = obj(msg.rate_limit_info);
    if (!info || str(info.status) !== 'rejected') return null;
    const resetsAt = num(info.resetsAt);
    const limitType = str(info.rateLimitType);
    const resetAt = resetsAt !== null ? (resetsAt < 1e12 ? resetsAt * 1000 : resetsAt) : null;
    return {
      kind: 'rate_limited',
      resetAt,
      reason: `usage limit reached${limitType ? ` (${limitType})` : ''}${resetAt !== null ? `, resets ${new Date(resetAt).toISOString()}` : ''}`,
      source: 'rate_limit_event',
    };
  }

  private onAssistant(msg: Json, events: AgentEvent[]): void {
    const message = obj(msg.message);
    const error = str(msg.error);
    if (error) this.state.assistantError = error;
    if (!message) return;
    const model = str(message.model);
    if (model && !this.state.model && model !== '<synthetic>') this.state.model = model;
    if (model !== '<synthetic>') this.countTurn(str(message.id), model, obj(message.usage), events);
    const content = Array.isArray(message.content) ? message.content : [];
    const texts: string[] = [];
    for (const raw of content) {
      const block = obj(raw);
      if (!block) continue;
      if (block.type === 'text' && typeof block.text === 'string') texts.push(block.text);
      else if (block.type === 'tool_use') {
        const id = str(block.id);
        // Each content block arrives once; guard anyway against repeated lines.
        if (id && this.seenToolUses.has(id)) continue;
        if (id) this.seenToolUses.add(id);
        events.push({
          type: 'progress',
          text: describeToolUse(str(block.name) ?? 'tool', obj(block.input), this.maxProgressChars),
        });
      }
    }
    if (texts.length > 0) this.state.lastAssistantText = texts.join('\n');
  }

  /**
   * A `turn` event with the part of an assistant message's `usage` not reported yet: the
   * CLI repeats a message's usage on each of its lines (one per content block), and the
   * output count can grow until the message ends.
   */
  private countTurn(id: string | null, model: string | null, usage: Json | null, events: AgentEvent[]): void {
    if (!usage) return;
    const now: TokenUsage = {
      inputTokens: num(usage.input_tokens) ?? 0,
      outputTokens: num(usage.output_tokens) ?? 0,
      cachedInputTokens: num(usage.cache_read_input_tokens) ?? 0,
      cacheWriteTokens: num(usage.cache_creation_input_tokens) ?? 0,
    };
    const before = id ? this.countedUsage.get(id) : undefined;
    if (id) this.countedUsage.set(id, now);
    const delta: TokenUsage = {
      inputTokens: Math.max(0, now.inputTokens - (before?.inputTokens ?? 0)),
      outputTokens: Math.max(0, now.outputTokens - (before?.outputTokens ?? 0)),
      cachedInputTokens: Math.max(0, (now.cachedInputTokens ?? 0) - (before?.cachedInputTokens ?? 0)),
      cacheWriteTokens: Math.max(0, (now.cacheWriteTokens ?? 0) - (before?.cacheWriteTokens ?? 0)),
    };
    if (delta.inputTokens + delta.outputTokens + (delta.cachedInputTokens ?? 0) + (delta.cacheWriteTokens ?? 0) === 0) return;
    events.push({ type: 'turn', model, usage: delta });
  }

  private onResult(msg: Json, events: AgentEvent[]): void {
    const s = this.state;
    s.hasResult = true;
    s.resultAt = this.now();
    s.result = str(msg.result);
    s.subtype = str(msg.subtype);
    s.isError = typeof msg.is_error === 'boolean' ? msg.is_error : s.subtype !== null && s.subtype !== 'success';
    s.apiErrorStatus = num(msg.api_error_status);
    s.costUsd = num(msg.total_cost_usd);
    s.numTurns = num(msg.num_turns);
    const usage = obj(msg.usage);
    if (usage) {
      const input = num(usage.input_tokens);
      const cache = this.includeCacheTokens
        ? (num(usage.cache_creation_input_tokens) ?? 0) + (num(usage.cache_read_input_tokens) ?? 0)
        : 0;
      s.inputTokens = input !== null ? input + cache : null;
      s.outputTokens = num(usage.output_tokens);
    }
    if (!s.model) {
      const modelUsage = obj(msg.modelUsage);
      const first = modelUsage ? Object.keys(modelUsage)[0] : undefined;
      if (first) s.model = first;
    }
    events.push({ type: 'usage', stats: this.stats() });
  }
}
