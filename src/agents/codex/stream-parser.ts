/**
 * An incremental parser for `codex exec --json` output (one JSON object per stdout line;
 * shapes observed with Codex CLI 0.169, see /work/shared/reference/codex-headless.md).
 * Pure: no I/O, no timers; the clock is passed in. The runner feeds it lines and acts on
 * the signals it returns.
 */
import type { AgentEvent } from '../runner.ts';
import type { RunStats } from '../../core/types.ts';
import { parseResetTime } from '../claude/reset-time.ts';
import { num, obj, parseJsonLine, str, type Json } from '../json.ts';

/**
 * Something that decides the attempt's outcome by itself.
 * - `auth_failed`: credentials refused (HTTP 401/403); `status` when the text names it.
 * - `rate_limited`: a rate limit (429), usage limit or quota; `resetAt` epoch ms when the
 *   text says when to try again.
 * `source`: `reconnect` for a `Reconnecting... n/N (…)` error line (codex would keep
 * retrying: stop it at once), `error` for a final `error` line, `turn_failed` for `turn.failed`.
 */
export type CodexSignal =
  | { kind: 'auth_failed'; status: number | null; reason: string; source: CodexSignalSource }
  | { kind: 'rate_limited'; resetAt: number | null; reason: string; source: CodexSignalSource };

export type CodexSignalSource = 'reconnect' | 'error' | 'turn_failed';

/** What one line told the caller. */
export interface CodexParsedLine {
  /** False when the line was not a JSON object (skipped). */
  parsed: boolean;
  /** The line's `type` (e.g. `item.completed`), null if unparsed. */
  kind: string | null;
  /** Events to forward to `RunRequest.onEvent`. */
  events: AgentEvent[];
  /** Set when the run should stop now (auth failure or rate limit). */
  stop: CodexSignal | null;
}

/** Everything the parser has learnt so far. Tokens are counts; times epoch ms. */
export interface CodexStreamState {
  /** `thread_id` of `thread.started`: the session id to resume with. */
  threadId: string | null;
  /** `turn.started` lines seen. */
  turnsStarted: number;
  /** `turn.completed` lines seen. */
  turnsCompleted: number;
  /** `now` when the last `turn.completed` arrived, null before. */
  completedAt: number | null;
  /** A `turn.failed` line was seen. */
  turnFailed: boolean;
  /** `error.message` of the last `turn.failed`. */
  failureMessage: string | null;
  /** `message` of the last run-level `{"type":"error"}` line (including `Reconnecting...` ones). */
  lastError: string | null;
  /** Text of the last `item.completed` `agent_message`: the final answer. */
  lastAgentMessage: string | null;
  /** Warnings from `item` lines of type `error` (e.g. unknown model metadata); not fatal. */
  warnings: string[];
  /**
   * `usage.input_tokens` of the last `turn.completed` (includes `cached_input_tokens`;
   * codex sums over every request of the thread, earlier runs included after resume).
   */
  inputTokens: number | null;
  /** `usage.cached_input_tokens` of the last `turn.completed`. */
  cachedInputTokens: number | null;
  /** `usage.output_tokens` (includes `reasoning_output_tokens`). */
  outputTokens: number | null;
  reasoningOutputTokens: number | null;
  /** Commands seen (`command_execution` items started or completed). */
  commands: number;
  /** Lines that were not JSON objects and were skipped. */
  skippedLines: number;
  /** The first stop signal returned, if any. */
  stopSignal: CodexSignal | null;
}

/** Options of {@link CodexStreamParser}. */
export interface CodexStreamParserOptions {
  /** Clock, epoch ms (reset times, `completedAt`). Default `Date.now`. */
  now?: () => number;
  /** IANA zone for `try again at 8:21 PM` (codex prints the machine's local time). Default: this machine's. */
  timeZone?: string;
  /** Longest `progress` text, characters. Default 200. */
  maxProgressChars?: number;
}


/** `Reconnecting... 1/5 (inner message)` (codex's visible retries). */
const RECONNECT = /^Reconnecting\.\.\.\s*(\d+)\/(\d+)\s*\(([\s\S]*)\)\s*$/;
/** `unexpected status 401 Unauthorized: …` / `last status: 429 Too Many Requests`. */
const STATUS = /\b(?:unexpected status|last status:?)\s+(\d{3})\b/i;
const RATE_TEXT = [
  /\b429\b.*too many requests/i,
  /\brate[ -]?limit/i,
  /hit your usage limit/i,
  /\busage limit\b/i,
  /\bquota exceeded\b/i,
  /\binsufficient[_ ]quota\b/i,
];
const AUTH_TEXT = [/\b401 Unauthorized\b/i, /\b403 Forbidden\b/i, /incorrect api key/i, /invalid[_ ]api[_ ]key/i];

/**
 * The moment a codex error text says to try again, epoch ms, or null:
 * - `try again in 7.5s` / `in 2m30s` / `in 1h` / `in 250ms` → `now` + that;
 * - `try again at 8:21 PM` (usage limits; codex prints the local time of the machine it
 *   runs on, hence `timeZone`) → the next such time, via {@link parseResetTime};
 * - `try again at Nov 24th, 2026 8:21 PM` → that date and time.
 */
export function parseCodexRetryTime(text: string, now: number, timeZone?: string): number | null {
  const rel = /try again in\s+((?:\d+(?:\.\d+)?\s*(?:ms|h|m|s|seconds?|minutes?|hours?)\s*)+)/i.exec(text);
  if (rel?.[1]) {
    let ms = 0;
    for (const part of rel[1].matchAll(/(\d+(?:\.\d+)?)\s*(ms|h|m|s|seconds?|minutes?|hours?)/gi)) {
      const n = Number(part[1]);
      const unit = (part[2] ?? 's').toLowerCase();
      ms += unit === 'ms' ? n : unit.startsWith('h') ? n * 3600_000 : unit === 'm' || unit.startsWith('min') ? n * 60_000 : n * 1000;
    }
    return now + Math.round(ms);
  }
  const abs = /try again at\s+(?:([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s*(?:(\d{4}),?\s*)?)?(\d{1,2}(?::\d{2})?\s*[AaPp]\.?[Mm]\.?|\d{1,2}:\d{2})/i.exec(text);
  if (!abs?.[4]) return null;
  const [, month, day, year, time] = abs;
  const date = month && day ? `${month} ${day}, ${year ? `${year}, ` : ''}` : '';
  return parseResetTime(`resets ${date}${time!.replace(/\s+/g, '').toLowerCase()}`, now, timeZone ? { defaultTimeZone: timeZone } : {});
}

/**
 * Classify a codex error message (`error` line or `turn.failed`), null when it is neither
 * an auth failure nor a rate/usage limit:
 * - `unexpected status 401|403 …`, "Incorrect API key" → `auth_failed`;
 * - `last status: 429 Too Many Requests`, "rate limit", "You’ve hit your usage limit",
 *   "Quota exceeded" → `rate_limited` (`resetAt` from {@link parseCodexRetryTime}).
 * A `Reconnecting... n/N (…)` wrapper is looked through.
 */
export function classifyCodexError(message: string, source: CodexSignalSource, now: number, timeZone?: string): CodexSignal | null {
  const inner = RECONNECT.exec(message)?.[3] ?? message;
  const statusText = STATUS.exec(inner)?.[1];
  const status = statusText ? Number(statusText) : null;
  const retrying = source === 'reconnect' ? ' (codex was retrying; stopped)' : '';
  if (status === 401 || status === 403 || (status === null && AUTH_TEXT.some((re) => re.test(inner)))) {
    return { kind: 'auth_failed', status, reason: `authentication failed: ${inner}${retrying}`, source };
  }
  if (status === 429 || RATE_TEXT.some((re) => re.test(inner))) {
    return { kind: 'rate_limited', resetAt: parseCodexRetryTime(inner, now, timeZone), reason: `${inner}${retrying}`, source };
  }
  return null;
}

/**
 * Feeds on `codex exec --json` lines one at a time (`push`), keeps {@link CodexStreamState},
 * and returns per line the events to forward and, for auth failures and rate limits, a stop
 * signal (codex retries a 401 five times over ~7 s and a 429 with `Retry-After: N` five
 * times N seconds; the first `Reconnecting...` line is printed before the first wait).
 * Lines:
 * - `thread.started` → thread id (`session` event);
 * - `turn.started` / `turn.completed` (usage → `usage` event) / `turn.failed`;
 * - `item.started|completed` `command_execution` → `progress` ("exec: <command>", once per
 *   item id), `agent_message` → final text (also a `progress` event), `error` items are warnings;
 * - `{"type":"error","message"}` → classified by {@link classifyCodexError}.
 * Lines that are not JSON objects are skipped and counted.
 */
export class CodexStreamParser {
  private readonly now: () => number;
  private readonly timeZone: string | undefined;
  private readonly maxProgressChars: number;
  private readonly seenCommands = new Set<string>();
  readonly state: CodexStreamState = {
    threadId: null,
    turnsStarted: 0,
    turnsCompleted: 0,
    completedAt: null,
    turnFailed: false,
    failureMessage: null,
    lastError: null,
    lastAgentMessage: null,
    warnings: [],
    inputTokens: null,
    cachedInputTokens: null,
    outputTokens: null,
    reasoningOutputTokens: null,
    commands: 0,
    skippedLines: 0,
    stopSignal: null,
  };

  constructor(options: CodexStreamParserOptions = {}) {
    this.now = options.now ?? Date.now;
    this.timeZone = options.timeZone;
    this.maxProgressChars = options.maxProgressChars ?? 200;
  }

  /** Parse one stdout line (without its newline). Never throws. */
  push(line: string): CodexParsedLine {
    const msg = parseJsonLine(line);
    if (!msg) {
      if (line.trim().length > 0) this.state.skippedLines++;
      return { parsed: false, kind: null, events: [], stop: null };
    }
    const s = this.state;
    const events: AgentEvent[] = [];
    let stop: CodexSignal | null = null;
    const type = str(msg.type) ?? 'unknown';

    switch (type) {
      case 'thread.started': {
        const id = str(msg.thread_id);
        if (id && !s.threadId) {
          s.threadId = id;
          events.push({ type: 'session', sessionId: id, model: null });
        }
        break;
      }
      case 'turn.started':
        s.turnsStarted++;
        break;
      case 'turn.completed': {
        s.turnsCompleted++;
        s.completedAt = this.now();
        const usage = obj(msg.usage);
        if (usage) {
          // Sums over the thread: the part since the previous turn.completed is this turn's.
          const input = num(usage.input_tokens) ?? 0;
          const cached = num(usage.cached_input_tokens) ?? 0;
          const output = num(usage.output_tokens) ?? 0;
          const prevInput = s.inputTokens ?? 0;
          const prevCached = s.cachedInputTokens ?? 0;
          events.push({
            type: 'turn',
            model: null,
            usage: {
              inputTokens: Math.max(0, input - cached - (prevInput - prevCached)),
              cachedInputTokens: Math.max(0, cached - prevCached),
              outputTokens: Math.max(0, output - (s.outputTokens ?? 0)),
            },
          });
          s.inputTokens = num(usage.input_tokens);
          s.cachedInputTokens = num(usage.cached_input_tokens);
          s.outputTokens = num(usage.output_tokens);
          s.reasoningOutputTokens = num(usage.reasoning_output_tokens);
        }
        events.push({ type: 'usage', stats: this.stats() });
        break;
      }
      case 'turn.failed': {
        s.turnFailed = true;
        s.failureMessage = str(obj(msg.error)?.message) ?? s.lastError;
        if (s.failureMessage) stop = classifyCodexError(s.failureMessage, 'turn_failed', this.now(), this.timeZone);
        break;
      }
      case 'error': {
        const message = str(msg.message);
        if (message) {
          s.lastError = message;
          stop = classifyCodexError(message, RECONNECT.test(message) ? 'reconnect' : 'error', this.now(), this.timeZone);
        }
        break;
      }
      case 'item.started':
      case 'item.updated':
      case 'item.completed':
        this.onItem(type, obj(msg.item), events);
        break;
      default:
        break;
    }
    if (stop && !s.stopSignal) s.stopSignal = stop;
    return { parsed: true, kind: type, events, stop };
  }

  /** Run figures so far, for `RunOutcome.stats` (`costUsd` null: codex reports tokens only). */
  stats(): RunStats {
    const s = this.state;
    return {
      sessionId: s.threadId,
      model: null,
      costUsd: null,
      inputTokens: s.inputTokens,
      outputTokens: s.outputTokens,
      numTurns: s.turnsCompleted > 0 ? s.turnsCompleted : null,
    };
  }

  private onItem(type: string, item: Json | null, events: AgentEvent[]): void {
    if (!item) return;
    const itemType = str(item.type);
    if (itemType === 'agent_message' && type === 'item.completed') {
      const text = str(item.text);
      if (text !== null) {
        this.state.lastAgentMessage = text;
        events.push({ type: 'progress', text: this.clip(text) });
      }
    } else if (itemType === 'command_execution') {
      const id = str(item.id) ?? '';
      if (this.seenCommands.has(id)) return;
      this.seenCommands.add(id);
      this.state.commands++;
      events.push({ type: 'progress', text: this.clip(`exec: ${str(item.command) ?? ''}`) });
    } else if (itemType === 'error' && type === 'item.completed') {
      const message = str(item.message);
      if (message) this.state.warnings.push(message);
    }
  }

  private clip(text: string): string {
    const t = text.replace(/\s+/g, ' ').trim();
    return t.length > this.maxProgressChars ? `${t.slice(0, Math.max(0, this.maxProgressChars - 1))}…` : t;
  }
}
