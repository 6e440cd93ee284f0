/**
 * The `openai` runner: one streamed request to any OpenAI-compatible chat-completions
 * endpoint (`POST {base_url}/chat/completions`): OpenAI itself, gateways (LiteLLM,
 * OpenRouter…), local servers (Ollama, vLLM, LM Studio, llama.cpp). No child process: the
 * model answers in text only, it does not edit files or run commands.
 *
 * HTTP goes through the official `openai` SDK (SSE parsing, errors carrying status and
 * headers) with its retries off (`maxRetries: 0`): the dispatcher retries and fails over.
 */
import type { WriteStream } from 'node:fs';
import OpenAI, { APIConnectionError, APIError } from 'openai';
import type { ChatCompletionChunk, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { ConfigError } from '../../core/errors.ts';
import { closeLog, openLog } from '../log-stream.ts';
import { cancelled, timedOut } from '../outcomes.ts';
import { emptyStats, type AgentEvent, type AgentRunner, type RunOutcome, type RunRequest } from '../runner.ts';
import { resetAtFromHeaders } from './reset-headers.ts';

/** Options of {@link OpenAIRunner}. */
export interface OpenAIRunnerOptions {
  /**
   * Base URL of the API, up to and including the version (`https://api.openai.com/v1`,
   * `http://127.0.0.1:11434/v1` for Ollama); `/chat/completions` is appended. From
   * config `agents.openai.base_url`.
   */
  baseUrl: string;
  /**
   * Name of the environment variable (looked up in `request.env`) that holds the API key,
   * sent as `Authorization: Bearer <key>`. Default `OPENAI_API_KEY`. When it is unset or
   * empty {@link NO_API_KEY} is sent, for local servers that need no key.
   */
  apiKeyEnv?: string;
  /** Longest `progress` text, characters. Default 200. */
  maxProgressChars?: number;
}

/** The key sent when the key variable is unset (local servers ignore it). */
export const NO_API_KEY = 'none';

/** Longest delay `setTimeout` takes (about 24.8 days); longer deadlines are re-armed. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Runs one attempt as a single streamed chat completion and maps the answer to a
 * {@link RunOutcome}.
 *
 * Request: `{ model: request.model, messages: [system?, user], stream: true,
 * stream_options: { include_usage: true } }`; the system message is
 * `request.systemPromptAppend` (omitted when empty), the user message `request.prompt`.
 * `request.cwd` is not used; resuming is not supported (`canResume` false: the dispatcher
 * restates a question and its answer in the prompt).
 *
 * While it streams:
 * - `request.stdoutLog` gets one JSON line per SSE chunk as received (`ChatCompletionChunk`);
 *   `request.stderrLog` one line per error (HTTP status, message, rate-limit headers);
 * - events: `session` at the first chunk (the completion id, `chatcmpl-…`, as session id;
 *   the chunk's `model`), `progress` per completed line of answer text (and for a line
 *   longer than `maxProgressChars`, every that many characters), `usage` whenever a chunk
 *   carries `usage`, and one `turn` (tokens of the response) when the stream ends.
 *
 * Outcomes:
 * - the stream ends with a `finish_reason` → `completed`, `result` the whole text.
 *   `length` (the server's token limit cut it short) also completes, with the text so far;
 *   `content_filter` → `failed`, not retryable;
 * - HTTP 429 → `rate_limited`, `resetAt` from `retry-after-ms`, `Retry-After` (seconds or
 *   HTTP-date), else `x-ratelimit-reset-requests` / `-tokens` (see ./reset-headers.ts),
 *   else null; an `error` event in the stream with code 429 or a rate-limit type → the same
 *   with `resetAt` null;
 * - HTTP 401 / 403 → `auth_failed`;
 * - HTTP 408, 409, 425, 5xx, a refused or dropped connection, a stream that breaks off or
 *   ends without a `finish_reason`, another `error` event in the stream → `failed`,
 *   retryable;
 * - any other HTTP error (400 unknown model or bad request, 404 wrong URL, 413, 422) and a
 *   null `request.model` → `failed`, not retryable; the reason carries the server's message;
 * - `request.signal` aborted → `cancelled`; `request.deadline` passed → `timed_out` (the
 *   HTTP request is aborted, closing the connection).
 * Stats: `sessionId` the completion id, `model` the chunk's (else the requested one),
 * `inputTokens` / `outputTokens` the usage's `prompt_tokens` / `completion_tokens`,
 * `numTurns` 1 once usage arrives, `costUsd` null (the dispatcher prices tokens);
 * `exitCode` always null. Never throws for API failures.
 */
export class OpenAIRunner implements AgentRunner {
  readonly name = 'openai';
  readonly canResume = false;
  private readonly baseUrl: string;
  private readonly apiKeyEnv: string;
  private readonly maxProgressChars: number;

  /** @throws ConfigError (code `config`) when `baseUrl` is empty or not an http(s) URL; the message names `agents.openai.base_url`. */
  constructor(options: OpenAIRunnerOptions) {
    const raw = options.baseUrl?.trim() ?? '';
    if (!raw) {
      throw new ConfigError(
        'agents.openai.base_url is not set: the openai agent needs the URL of an OpenAI-compatible API in config.yaml, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1 (Ollama)',
      );
    }
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new ConfigError(`agents.openai.base_url: not a URL: ${JSON.stringify(raw)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigError(`agents.openai.base_url: not an http(s) URL: ${JSON.stringify(raw)}`);
    }
    this.baseUrl = raw.replace(/\/+$/, '');
    this.apiKeyEnv = options.apiKeyEnv || 'OPENAI_API_KEY';
    this.maxProgressChars = options.maxProgressChars ?? 200;
  }

  async run(request: RunRequest): Promise<RunOutcome> {
    const stats = { ...emptyStats(), model: request.model };
    const emit = (event: AgentEvent): void => {
      try {
        request.onEvent?.(event);
      } catch {
        // A broken listener must not break the attempt.
      }
    };
    const base = () => ({ stats: { ...stats }, exitCode: null });

    if (!request.model) {
      return {
        ...base(),
        kind: 'failed',
        retryable: false,
        reason: "openai: no model to ask for: set the task's `model`, or `agents.openai.model` (or `models` per priority) in config.yaml",
      };
    }
    let logs: { out: WriteStream; err: WriteStream };
    try {
      const out = await openLog(request.stdoutLog);
      try {
        logs = { out, err: await openLog(request.stderrLog) };
      } catch (err) {
        await closeLog(out);
        throw err;
      }
    } catch (err) {
      return { ...base(), kind: 'failed', retryable: false, reason: `openai: cannot open the attempt log: ${describe(err)}` };
    }

    // One controller aborts the HTTP request for both a cancel and the deadline.
    const controller = new AbortController();
    let stoppedFor: 'cancel' | 'timeout' | null = null;
    const stop = (why: 'cancel' | 'timeout') => {
      stoppedFor ??= why;
      controller.abort(why);
    };
    const onAbort = () => stop('cancel');
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      const left = request.deadline - Date.now();
      if (left <= 0) stop('timeout');
      else timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    };
    if (request.signal.aborted) stop('cancel');
    else request.signal.addEventListener('abort', onAbort, { once: true });
    if (!stoppedFor) arm();

    const apiKey = request.env[this.apiKeyEnv] || NO_API_KEY;
    const client = new OpenAI({
      baseURL: this.baseUrl,
      apiKey,
      // Only what config says: no organization / project / admin key from agentq's own environment.
      organization: null,
      project: null,
      adminAPIKey: null,
      webhookSecret: null,
      maxRetries: 0,
      // The deadline timer above bounds the request; the SDK's own timeout (default 10 min) must not.
      timeout: MAX_TIMER_MS,
      logLevel: 'off',
    });
    const messages: ChatCompletionMessageParam[] = [];
    if (request.systemPromptAppend) messages.push({ role: 'system', content: request.systemPromptAppend });
    messages.push({ role: 'user', content: request.prompt });

    let text = '';
    let finishReason: string | null = null;
    let turnUsage: { inputTokens: number; cachedInputTokens: number; outputTokens: number } | null = null;
    const progress = new LineProgress(this.maxProgressChars, (line) => emit({ type: 'progress', text: line }));
    const logError = (line: string) => logs.err.write(`${line}\n`);
    const where = `${this.baseUrl}/chat/completions`;

    let outcome: RunOutcome;
    try {
      if (stoppedFor) throw new Error('stopped before the request');
      const stream = await client.chat.completions.create(
        { model: request.model, messages, stream: true, stream_options: { include_usage: true } },
        { signal: controller.signal },
      );
      for await (const chunk of stream as AsyncIterable<ChatCompletionChunk>) {
        logs.out.write(`${JSON.stringify(chunk)}\n`);
        if (stats.sessionId === null && typeof chunk.id === 'string' && chunk.id) {
          stats.sessionId = chunk.id;
          if (typeof chunk.model === 'string' && chunk.model) stats.model = chunk.model;
          emit({ type: 'session', sessionId: chunk.id, model: stats.model });
        }
        for (const choice of Array.isArray(chunk.choices) ? chunk.choices : []) {
          if ((choice.index ?? 0) !== 0) continue;
          const delta = choice.delta?.content;
          if (typeof delta === 'string' && delta) {
            text += delta;
            progress.push(delta);
          }
          if (choice.finish_reason) finishReason = choice.finish_reason;
        }
        const usage = chunk.usage;
        if (usage && typeof usage === 'object') {
          const input = count(usage.prompt_tokens);
          const output = count(usage.completion_tokens);
          const cached = Math.min(count(usage.prompt_tokens_details?.cached_tokens), input);
          stats.inputTokens = input;
          stats.outputTokens = output;
          stats.numTurns = 1;
          turnUsage = { inputTokens: input - cached, cachedInputTokens: cached, outputTokens: output };
          emit({ type: 'usage', stats: { ...stats } });
        }
      }
      progress.flush();
      // Servers may repeat cumulative usage on every chunk: the response is priced once, at the end.
      if (turnUsage) emit({ type: 'turn', model: stats.model, usage: turnUsage });
      // The SDK ends the iteration quietly when the request is aborted mid-stream. An answer
      // that was complete when the deadline struck still counts.
      if (stoppedFor === 'cancel') outcome = cancelled(request, base());
      else if (stoppedFor === 'timeout' && finishReason === null) outcome = deadlinePassed(request, base());
      else if (finishReason === null) {
        logError(`stream ended without a finish_reason after ${text.length} characters`);
        outcome = {
          ...base(),
          kind: 'failed',
          retryable: true,
          reason: `openai: the stream from ${where} ended without a finish_reason (connection dropped?) after ${text.length} characters`,
        };
      } else if (finishReason === 'content_filter') {
        outcome = { ...base(), kind: 'failed', retryable: false, reason: `openai: the answer was stopped by the server's content filter (finish_reason content_filter)` };
      } else {
        outcome = { ...base(), kind: 'completed', result: text };
      }
    } catch (err) {
      progress.flush();
      if (stoppedFor === 'cancel') outcome = cancelled(request, base());
      else if (stoppedFor === 'timeout') outcome = deadlinePassed(request, base());
      else outcome = this.errorOutcome(err, base(), where, request, logError);
    } finally {
      clearTimeout(timer);
      request.signal.removeEventListener('abort', onAbort);
    }
    await Promise.all([closeLog(logs.out), closeLog(logs.err)]);
    return outcome;
  }

  /** An error thrown by the SDK (HTTP status, connection, stream) → outcome. */
  private errorOutcome(
    err: unknown,
    base: { stats: RunOutcome['stats']; exitCode: null },
    where: string,
    request: RunRequest,
    logError: (line: string) => void,
  ): RunOutcome {
    if (err instanceof APIConnectionError) {
      const detail = causeOf(err);
      logError(`connection error: ${detail}`);
      return { ...base, kind: 'failed', retryable: true, reason: `openai: cannot reach ${where}: ${detail}` };
    }
    if (err instanceof APIError && typeof err.status === 'number') {
      const status = err.status;
      const message = serverMessage(err);
      const headers = ['retry-after-ms', 'retry-after', 'x-ratelimit-remaining-requests', 'x-ratelimit-reset-requests', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-tokens']
        .map((h) => [h, err.headers?.get(h)] as const)
        .filter(([, v]) => v != null)
        .map(([h, v]) => `${h}: ${v}`);
      logError(`HTTP ${status} from POST ${where}: ${message}${headers.length ? ` (${headers.join('; ')})` : ''}`);
      const said = `HTTP ${status} from ${where}: ${message}`;
      if (status === 429) {
        const resetAt = resetAtFromHeaders(err.headers, Date.now());
        return { ...base, kind: 'rate_limited', resetAt, reason: `openai: rate limited: ${said}` };
      }
      if (status === 401 || status === 403) {
        const key = request.env[this.apiKeyEnv] ? `the key in $${this.apiKeyEnv}` : `no key: $${this.apiKeyEnv} is not set`;
        return { ...base, kind: 'auth_failed', reason: `openai: credentials refused (${key}): ${said}` };
      }
      const retryable = status >= 500 || status === 408 || status === 409 || status === 425;
      return { ...base, kind: 'failed', retryable, reason: `openai: ${said}` };
    }
    if (err instanceof APIError) {
      // An `error` object inside the SSE stream of a 200 response.
      const message = serverMessage(err);
      logError(`error in the stream from ${where}: ${message}`);
      if (isRateLimitError(err)) return { ...base, kind: 'rate_limited', resetAt: null, reason: `openai: rate limited (in the stream from ${where}): ${message}` };
      return { ...base, kind: 'failed', retryable: true, reason: `openai: error in the stream from ${where}: ${message}` };
    }
    const detail = describe(err);
    logError(`stream broke off: ${detail}`);
    return { ...base, kind: 'failed', retryable: true, reason: `openai: the stream from ${where} broke off: ${detail}` };
  }
}

/** {@link timedOut}, worded for an HTTP request rather than a process tree. */
function deadlinePassed(request: RunRequest, base: { stats: RunOutcome['stats']; exitCode: null }): RunOutcome {
  const outcome = timedOut(request, base);
  return { ...outcome, reason: (outcome as { reason: string }).reason.replace('process tree stopped', 'request aborted') } as RunOutcome;
}

/** Text deltas → one callback per completed line (blank lines skipped); over-long lines in pieces. */
class LineProgress {
  private pending = '';
  constructor(
    private readonly max: number,
    private readonly onLine: (line: string) => void,
  ) {}

  push(delta: string): void {
    this.pending += delta;
    let nl = this.pending.indexOf('\n');
    while (nl >= 0) {
      this.send(this.pending.slice(0, nl));
      this.pending = this.pending.slice(nl + 1);
      nl = this.pending.indexOf('\n');
    }
    while (this.pending.length >= this.max) {
      this.send(this.pending.slice(0, this.max));
      this.pending = this.pending.slice(this.max);
    }
  }

  flush(): void {
    this.send(this.pending);
    this.pending = '';
  }

  private send(line: string): void {
    const text = line.trim();
    if (text) this.onLine(text);
  }
}

/** The server's own error message (`{"error":{"message":…}}`), else the SDK's. */
function serverMessage(err: APIError): string {
  const body = err.error as { message?: unknown } | undefined;
  if (body && typeof body.message === 'string' && body.message) return body.message;
  // The SDK prefixes the status: "400 …".
  return err.message.replace(/^\d{3}\s+/, '') || '(no message)';
}

function isRateLimitError(err: APIError): boolean {
  const body = err.error as { code?: unknown; type?: unknown } | undefined;
  const code = String(body?.code ?? err.code ?? '');
  const type = String(body?.type ?? err.type ?? '');
  return code === '429' || /rate_limit|too_many_requests/i.test(`${code} ${type}`);
}

/** The innermost cause of a connection error, e.g. `connect ECONNREFUSED 127.0.0.1:9 (ECONNREFUSED)`. */
function causeOf(err: Error): string {
  let e: unknown = err;
  let last = err.message;
  let code: string | undefined;
  for (let depth = 0; e instanceof Error && depth < 5; depth++) {
    last = e.message || last;
    const c = (e as NodeJS.ErrnoException).code;
    if (typeof c === 'string') code = c;
    e = (e as { cause?: unknown }).cause;
  }
  return code && !last.includes(code) ? `${last} (${code})` : last;
}

function count(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.round(v) : 0;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
