/**
 * An incremental parser for Gemini CLI's `-o stream-json` output (one JSON object per stdout
 * line: `init`, `message`, `tool_use`, `tool_result`, `error`, `result`; shapes observed with
 * `@google/gemini-cli` 0.61.0, see /work/shared/reference/gemini-headless.md), plus the
 * stderr lines and exit codes the CLI uses to report API errors. Pure: no I/O, no timers;
 * the clock is passed in. The runner feeds it lines and acts on the signals it returns.
 *
 * Why stderr matters: while the CLI retries a failing request (429, 500, unreachable server:
 * up to 10 attempts over ~3.5 minutes) stdout stays silent; each failed attempt is reported
 * only on stderr (`Attempt 1 failed with status 429. Retrying with backoff... _ApiError: {…}`).
 */
import type { AgentEvent } from '../runner.ts';
import type { RunStats } from '../../core/types.ts';
import { parseResetTime } from '../claude/reset-time.ts';
import { num, obj, parseJsonLine, str, type Json } from '../json.ts';

/**
 * Something that decides the attempt's outcome by itself.
 * - `auth_failed`: credentials refused; `status` the HTTP status when known (401/403).
 * - `rate_limited`: a rate limit / quota; `resetAt` epoch ms when the text said when to retry.
 * `source`: `stderr` (a failed attempt the CLI is about to retry: stop it now), `error` (an
 * `error` stream event), `result` (the final `result` line).
 */
export type GeminiSignal =
  | { kind: 'auth_failed'; status: number | null; reason: string; source: GeminiSignalSource }
  | { kind: 'rate_limited'; resetAt: number | null; reason: string; source: GeminiSignalSource };

export type GeminiSignalSource = 'stderr' | 'error' | 'result';

/** What one stdout line told the caller. */
export interface GeminiParsedLine {
  /** False when the line was not a JSON object with a string `type` (skipped). */
  parsed: boolean;
  /** The line's `type` (`init`, `message`, `tool_use`, …); null if unparsed. */
  kind: string | null;
  /** Events to forward to `RunRequest.onEvent`. */
  events: AgentEvent[];
  /** Set when the run should stop now (auth failure or rate limit). */
  stop: GeminiSignal | null;
}

/** Everything the parser has learnt so far. Tokens are counts, times epoch ms / ms. */
export interface GeminiStreamState {
  /** `session_id` of the `init` line (the same id again when resumed). */
  sessionId: string | null;
  /**
   * The model: `init.model` (what was asked for, `auto` without `-m`), replaced on the
   * result line by the model that used the most tokens in `stats.models` when it is concrete.
   */
  model: string | null;
  /** Keys of `result.stats.models`: the models actually called. */
  modelsUsed: string[];
  hasResult: boolean;
  /** `now` when the result line was pushed, null before. */
  resultAt: number | null;
  /** `result.status`: `success` or `error`. */
  status: string | null;
  /** `result.error.message` (e.g. `[API Error: …]`), null when none. */
  errorMessage: string | null;
  /** `result.error.type` (`unknown`, …). */
  errorType: string | null;
  /** `result.stats`: `input_tokens`, `output_tokens`, `total_tokens`, `cached`. */
  inputTokens: number | null;
  outputTokens: number | null;
  totalTokens: number | null;
  cachedTokens: number | null;
  /** `result.stats.duration_ms`, ms (API time as the CLI counts it). */
  durationMs: number | null;
  /** `result.stats.tool_calls`, else the `tool_use` lines seen. */
  toolCalls: number;
  /** Model responses seen: runs of assistant text / tool calls between user input and tool results. */
  turns: number;
  /** Assistant text after the last tool call/result (the final answer so far; deltas joined). */
  finalText: string;
  /** Messages of `error` events (warnings and errors), in order. */
  errors: string[];
  /** Lines that were not JSON objects with a `type`. */
  skippedLines: number;
  /** The first stop signal returned (stdout or stderr), if any. */
  stopSignal: GeminiSignal | null;
}

/** Options of {@link GeminiStreamParser}. */
export interface GeminiStreamParserOptions {
  /** Clock, epoch ms; used for retry times and `resultAt`. Default `Date.now`. */
  now?: () => number;
}


/** Texts of rate limits and quotas (Gemini API 429 `RESOURCE_EXHAUSTED`, as the CLI prints them). */
const RATE_LIMIT_RE = /\bstatus 429\b|"code"\s*:\s*429\b|\bRESOURCE_EXHAUSTED\b|resource has been exhausted|quota exceeded|exhausted your (?:daily )?quota|rate limit/i;
/** Texts of refused credentials (401 `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`). */
const AUTH_RE = /\bstatus (40[13])\b|"code"\s*:\s*(40[13])\b|\b(UNAUTHENTICATED|PERMISSION_DENIED)\b|API key not valid|API_KEY_INVALID/i;

/**
 * When the text says to retry, as epoch ms, or null. Shapes: Google's `Please retry in
 * 41.12s.`, the CLI's `Suggested retry after 2s.`, a `"retryDelay":"2s"` RetryInfo detail,
 * and Claude-style `resets 5:50pm (Zone)` clock times (via parseResetTime). The CLI's own
 * backoff (`Retrying after 5436ms`) is not a reset time and is ignored.
 */
export function parseRetryTime(text: string, now: number): number | null {
  const m =
    /\bretry (?:in|after) (\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|sec(?:ond)?s?|m|min(?:ute)?s?|h|hours?)\b/i.exec(text) ??
    /"?retryDelay"?\s*[:=]\s*"?(\d+(?:\.\d+)?)(s|ms)"?/i.exec(text);
  if (m?.[1] && m[2]) {
    const n = Number(m[1]);
    const unit = m[2].toLowerCase();
    const ms = unit.startsWith('ms') || unit.startsWith('milli') ? n : unit.startsWith('h') ? n * 3600_000 : unit.startsWith('m') ? n * 60_000 : n * 1000;
    return Math.round(now + ms);
  }
  return /\bresets?\b/i.test(text) ? parseResetTime(text, now) : null;
}

/**
 * Classify an API error text (stderr attempt line, `error` event, `result.error.message`).
 * Auth wins over rate limit when both match (a 401 body never mentions quota).
 */
export function classifyErrorText(text: string, now: number, source: GeminiSignalSource): GeminiSignal | null {
  const auth = AUTH_RE.exec(text);
  if (auth) {
    const code = auth[1] ?? auth[2];
    const status = code ? Number(code) : /PERMISSION_DENIED/i.test(auth[3] ?? '') ? 403 : 401;
    return { kind: 'auth_failed', status, reason: `authentication failed (HTTP ${status}): ${shorten(apiMessage(text))}`, source };
  }
  if (RATE_LIMIT_RE.test(text)) {
    const resetAt = parseRetryTime(text, now);
    return { kind: 'rate_limited', resetAt, reason: `rate limited (HTTP 429): ${shorten(apiMessage(text))}`, source };
  }
  return null;
}

/** The `message` of an embedded `{"error":{…}}` body when there is one, else the text. */
function apiMessage(text: string): string {
  const m = /"message"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(text.replace(/\\"/g, '"'));
  return (m?.[1] ?? text).trim();
}

function shorten(text: string, max = 300): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

/** How an exit code without a usable `result` line reads (Gemini CLI 0.61 `Fatal*Error` codes). */
export interface GeminiExitInfo {
  /** e.g. `authentication setup failed (exit 41)`. */
  reason: string;
  /** Whether another attempt may help. */
  retryable: boolean;
  /** The outcome kind this code implies by itself (`auth_failed` for 41 and HTTP 401/403). */
  kind: 'failed' | 'auth_failed' | 'rate_limited';
  /** HTTP status the code stands for (API errors exit with status mod 256), else null. */
  httpStatus: number | null;
}

/**
 * Meaning of a Gemini CLI exit code: 41 authentication setup (no/invalid auth type, missing
 * `GEMINI_API_KEY`), 42 bad input (`--resume` / `--session-id`), 44 sandbox, 52 config,
 * 53 session turn limit (`model.maxSessionTurns`), 54 tool execution, 55 untrusted folder
 * (`--skip-trust`), 130 cancelled; 144–255 the HTTP status of the last API error mod 256
 * (429 → 173, 401 → 145, 400 → 144, 500 → 244); 1 other errors (e.g. server unreachable).
 * Code 0 is also what the CLI returns when killed by a signal.
 */
export function describeExitCode(code: number | null): GeminiExitInfo {
  const base = { kind: 'failed' as const, httpStatus: null };
  switch (code) {
    case null:
      return { ...base, reason: 'ended without an exit code', retryable: true };
    case 0:
      return { ...base, reason: 'exited with code 0', retryable: true };
    case 1:
      return { ...base, reason: 'exited with code 1 (error)', retryable: true };
    case 41:
      return { kind: 'auth_failed', httpStatus: null, reason: 'authentication setup failed (exit 41)', retryable: false };
    case 42:
      return { ...base, reason: 'invalid input, e.g. an unknown --resume session (exit 42)', retryable: false };
    case 44:
      return { ...base, reason: 'sandbox error (exit 44)', retryable: false };
    case 52:
      return { ...base, reason: 'configuration error (exit 52)', retryable: false };
    case 53:
      return { ...base, reason: 'session turn limit reached (exit 53)', retryable: false };
    case 54:
      return { ...base, reason: 'tool execution error (exit 54)', retryable: true };
    case 55:
      return { ...base, reason: 'workspace folder not trusted (exit 55; pass --skip-trust)', retryable: false };
    case 130:
      return { ...base, reason: 'cancelled (exit 130)', retryable: true };
  }
  if (code >= 144 && code <= 255) {
    const http = code + 256;
    const reason = `API error HTTP ${http} (exit ${code})`;
    if (http === 401 || http === 403) return { kind: 'auth_failed', httpStatus: http, reason, retryable: false };
    if (http === 429) return { kind: 'rate_limited', httpStatus: http, reason, retryable: true };
    return { ...base, httpStatus: http, reason, retryable: http !== 400 && http !== 404 };
  }
  return { ...base, reason: `exited with code ${code}`, retryable: true };
}

/** Classify the result line: a rate limit or auth failure in `result.error`, else null. */
export function classifyResult(state: GeminiStreamState, now: number): GeminiSignal | null {
  if (!state.hasResult || state.status === 'success' || !state.errorMessage) return null;
  return classifyErrorText(state.errorMessage, now, 'result');
}

/** Incremental parser: `push` each stdout line, `pushStderr` each stderr line. */
export class GeminiStreamParser {
  readonly state: GeminiStreamState = {
    sessionId: null,
    model: null,
    modelsUsed: [],
    hasResult: false,
    resultAt: null,
    status: null,
    errorMessage: null,
    errorType: null,
    inputTokens: null,
    outputTokens: null,
    totalTokens: null,
    cachedTokens: null,
    durationMs: null,
    toolCalls: 0,
    turns: 0,
    finalText: '',
    errors: [],
    skippedLines: 0,
    stopSignal: null,
  };
  private readonly now: () => number;
  private inTurn = false;

  constructor(options: GeminiStreamParserOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  /** Run stats so far (tokens only; Gemini CLI reports no cost, so `costUsd` is null). */
  stats(): RunStats {
    const s = this.state;
    return {
      sessionId: s.sessionId,
      model: s.model,
      costUsd: null,
      inputTokens: s.inputTokens,
      outputTokens: s.outputTokens,
      numTurns: s.turns > 0 || s.hasResult ? s.turns : null,
    };
  }

  /**
   * One stderr line. Returns a stop signal for the CLI's retry reports of a 429/quota or
   * 401/403 (`Attempt N failed with status 429. …`, `Attempt N failed: Quota exceeded …`),
   * and for the JSON error object `-o json` prints there; null for noise (color warning,
   * YOLO notice, ripgrep, `[STARTUP]`, 500 retries, unreachable server).
   */
  pushStderr(line: string): GeminiSignal | null {
    const text = line.trim();
    if (!text) return null;
    if (!/^Attempt \d+ failed|^\{.*"error"|\bApiError\b|\[API Error/.test(text)) return null;
    const signal = classifyErrorText(text, this.now(), 'stderr');
    if (signal && !this.state.stopSignal) this.state.stopSignal = signal;
    return signal;
  }

  /** One stdout line (without its newline). Lines that are not JSON objects are counted and skipped. */
  push(line: string): GeminiParsedLine {
    const text = line.trim();
    const none: GeminiParsedLine = { parsed: false, kind: null, events: [], stop: null };
    if (!text) return none;
    const msg = parseJsonLine(text);
    const type = msg ? str(msg.type) : null;
    if (!msg || !type) {
      this.state.skippedLines++;
      return none;
    }
    const events: AgentEvent[] = [];
    let stop: GeminiSignal | null = null;
    const s = this.state;
    switch (type) {
      case 'init': {
        s.sessionId = str(msg.session_id) ?? s.sessionId;
        s.model = str(msg.model) ?? s.model;
        if (s.sessionId) events.push({ type: 'session', sessionId: s.sessionId, model: s.model });
        break;
      }
      case 'message': {
        const role = str(msg.role);
        const content = str(msg.content) ?? '';
        if (role === 'assistant') {
          if (!this.inTurn) {
            s.turns++;
            this.inTurn = true;
          }
          s.finalText += content;
        } else if (role === 'user') {
          this.inTurn = false;
        }
        break;
      }
      case 'tool_use': {
        if (!this.inTurn) {
          s.turns++;
          this.inTurn = true;
        }
        s.toolCalls++;
        s.finalText = '';
        events.push({ type: 'progress', text: describeTool(str(msg.tool_name), obj(msg.parameters)) });
        break;
      }
      case 'tool_result': {
        this.inTurn = false;
        s.finalText = '';
        break;
      }
      case 'error': {
        const message = str(msg.message) ?? JSON.stringify(msg);
        s.errors.push(message);
        stop = classifyErrorText(message, this.now(), 'error');
        break;
      }
      case 'result': {
        s.hasResult = true;
        s.resultAt = this.now();
        s.status = str(msg.status);
        const error = obj(msg.error);
        s.errorMessage = error ? str(error.message) : null;
        s.errorType = error ? str(error.type) : null;
        const stats = obj(msg.stats);
        if (stats) {
          s.inputTokens = num(stats.input_tokens);
          s.outputTokens = num(stats.output_tokens);
          s.totalTokens = num(stats.total_tokens);
          s.cachedTokens = num(stats.cached);
          s.durationMs = num(stats.duration_ms);
          s.toolCalls = num(stats.tool_calls) ?? s.toolCalls;
          const models = obj(stats.models);
          if (models) {
            s.modelsUsed = Object.keys(models);
            let best: string | null = null;
            let bestTokens = 0;
            for (const [name, m] of Object.entries(models)) {
              const t = num(obj(m)?.total_tokens) ?? 0;
              if (t > bestTokens) [best, bestTokens] = [name, t];
            }
            if (best && (!s.model || s.model === 'auto' || !s.modelsUsed.includes(s.model))) s.model = best;
          }
        }
        events.push({ type: 'usage', stats: this.stats() });
        break;
      }
      default:
        break;
    }
    if (stop && !s.stopSignal) s.stopSignal = stop;
    return { parsed: true, kind: type, events, stop };
  }
}

/** `run_shell_command: npm test`, `write_file: a.txt`, or the tool name. */
function describeTool(name: string | null, params: Json | null): string {
  const tool = name ?? 'tool';
  const detail = params ? (str(params.command) ?? str(params.file_path) ?? str(params.absolute_path) ?? str(params.path) ?? str(params.pattern)) : null;
  return detail ? `${tool}: ${shorten(detail, 120)}` : tool;
}
