/**
 * One task: its fields, result or failure reason, attempts (agent, model, outcome, duration,
 * cost, tokens), its verify runs, the agent's output streamed from GET /v1/tasks/:id/logs, and the actions
 * cancel, retry and (for a blocked task) answering its question.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, apiFetch, apiJson, apiPost, type Attempt, type Task, type TaskDetail, type Verification } from '../api.ts';
import { fmtDuration, fmtTime, fmtTokens, fmtUsd } from '../format.ts';
import { useLive } from '../live.ts';
import { TERMINAL_STATES } from '../../../src/core/types.ts';

/** States `cancel` acts on (the others have ended). */
const ACTIVE: readonly string[] = ['queued', 'running', 'blocked', 'waiting'];
/** States `retry` requeues (as the store's `retry`): every end but completed and invalid. */
const RETRYABLE: readonly string[] = TERMINAL_STATES.filter((s) => s !== 'completed' && s !== 'invalid');
/** The output pane keeps the last this many characters. */
const LOG_CAP = 512 * 1024;

/** Loads GET /v1/tasks/:ref and loads it again whenever an event about the task arrives. */
function useTaskDetail(ref: string): { detail: TaskDetail | null; error: ApiError | null; reload: () => void } {
  const snap = useLive();
  const [detail, setDetail] = useState<TaskDetail | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [nonce, setNonce] = useState(0);
  const version = detail ? (snap.taskVersion.get(detail.task.id) ?? 0) : 0;
  useEffect(() => {
    let gone = false;
    apiJson<TaskDetail>(`/v1/tasks/${encodeURIComponent(ref)}`)
      .then((d) => {
        if (gone) return;
        setDetail(d);
        setError(null);
      })
      .catch((e: unknown) => {
        if (!gone) setError(e instanceof ApiError ? e : new ApiError(0, 'error', String(e), null));
      });
    return () => {
      gone = true;
    };
  }, [ref, version, nonce]);
  return { detail, error, reload: () => setNonce((n) => n + 1) };
}

/** Streams one attempt's output; follows it while the attempt runs. */
function LogView({ taskId, attempt, follow }: { taskId: number; attempt: number; follow: boolean }) {
  const [text, setText] = useState('');
  const [status, setStatus] = useState<'loading' | 'streaming' | 'done' | 'empty' | 'error'>('loading');
  const [message, setMessage] = useState('');
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const ctrl = new AbortController();
    let buf = '';
    (async () => {
      for (let tries = 0; ; tries++) {
        const res = await apiFetch(`/v1/tasks/${taskId}/logs?attempt=${attempt}${follow ? '&follow=1' : ''}`, { signal: ctrl.signal, cache: 'no-store' });
        if (res.status === 404 && follow && tries < 30) {
          // The attempt's log file may not exist yet.
          await res.body?.cancel();
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        if (!res.ok || !res.body) {
          const body = await res.text().catch(() => '');
          let msg = `HTTP ${res.status}`;
          try {
            msg = (JSON.parse(body) as { error: { message: string } }).error.message;
          } catch {
            /* not JSON */
          }
          setMessage(msg);
          setStatus(res.status === 404 ? 'empty' : 'error');
          return;
        }
        setStatus('streaming');
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buf += value;
          if (buf.length > LOG_CAP) buf = buf.slice(buf.length - LOG_CAP);
          setText(buf);
        }
        setStatus(buf === '' ? 'empty' : 'done');
        return;
      }
    })().catch((e: unknown) => {
      if (ctrl.signal.aborted) return;
      setMessage((e as Error).message);
      setStatus('error');
    });
    return () => ctrl.abort();
  }, [taskId, attempt, follow]);
  // Keep the newest output in view unless the reader scrolled up.
  useEffect(() => {
    const el = pre.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 80) el.scrollTop = el.scrollHeight;
  }, [text]);
  return (
    <div class="log">
      <div class="log-status muted">
        {status === 'loading' && 'loading…'}
        {status === 'streaming' && (follow ? 'following the output…' : 'loading…')}
        {status === 'done' && `${text.length.toLocaleString()} characters${text.length >= LOG_CAP ? ' (the end only)' : ''}`}
        {status === 'empty' && `no output${message ? ` (${message})` : ''}`}
        {status === 'error' && <span class="error">could not load the output: {message}</span>}
      </div>
      <pre ref={pre} class="log-text" aria-label="Agent output" tabIndex={0}>
        {text}
      </pre>
    </div>
  );
}

function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </>
  );
}

function AttemptsTable({ attempts, selected, onSelect }: { attempts: Attempt[]; selected: number | null; onSelect: (n: number) => void }) {
  if (attempts.length === 0) return <p class="muted">No attempts yet.</p>;
  return (
    <div class="table-wrap">
      <table class="attempts">
        <caption class="sr-only">Attempts</caption>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Agent</th>
            <th scope="col">Model</th>
            <th scope="col">Outcome</th>
            <th scope="col">Started</th>
            <th scope="col">Duration</th>
            <th scope="col">Cost</th>
            <th scope="col">Tokens in / out</th>
            <th scope="col">Reason</th>
            <th scope="col">
              <span class="sr-only">Output</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {[...attempts]
            .sort((a, b) => a.number - b.number)
            .map((a) => (
              <tr class={selected === a.number ? 'selected' : ''}>
                <td>{a.number}</td>
                <td>{a.agent}</td>
                <td>{a.stats?.model ?? a.model ?? '–'}</td>
                <td>
                  <span class={`pill st-${a.outcome}`}>{a.outcome.replace('_', ' ')}</span>
                </td>
                <td>{fmtTime(a.startedAt)}</td>
                <td>{fmtDuration(a.durationMs ?? (a.finishedAt ? a.finishedAt - a.startedAt : null))}</td>
                <td>{fmtUsd(a.stats?.costUsd)}</td>
                <td>
                  {fmtTokens(a.stats?.inputTokens)} / {fmtTokens(a.stats?.outputTokens)}
                </td>
                <td class="reason">{a.reason ?? ''}</td>
                <td>
                  <button type="button" class="small" aria-pressed={selected === a.number} onClick={() => onSelect(a.number)}>
                    Output of attempt {a.number}
                  </button>
                </td>
              </tr>
            ))}
        </tbody>
      </table>
    </div>
  );
}

/** The verify commands run after the agent reported success: per attempt, command, how it ended, duration, the end of its output. */
function VerificationsTable({ verifications }: { verifications: Verification[] }) {
  return (
    <div class="table-wrap">
      <table>
        <thead>
          <tr>
            <th scope="col">Attempt</th>
            <th scope="col">#</th>
            <th scope="col">Command</th>
            <th scope="col">Exit</th>
            <th scope="col">Duration</th>
            <th scope="col">Output (last lines)</th>
          </tr>
        </thead>
        <tbody>
          {verifications.map((v) => (
            <tr>
              <td>{v.attemptNumber}</td>
              <td>{v.number}</td>
              <td>
                <code>{v.command}</code>
              </td>
              <td>{v.timedOut ? 'timed out' : v.exitCode === null ? 'killed' : v.exitCode}</td>
              <td>{fmtDuration(v.durationMs)}</td>
              <td>
                <details>
                  <summary>{v.outputTail.trimEnd().split('\n').at(-1) || '(no output)'}</summary>
                  <pre>{v.outputTail}</pre>
                </details>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function AnswerForm({ task, onDone }: { task: Task; onDone: () => void }) {
  const [answer, setAnswer] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <form
      class="answer"
      onSubmit={async (e) => {
        e.preventDefault();
        if (!answer.trim()) {
          setError('Write an answer first.');
          return;
        }
        setBusy(true);
        setError(null);
        try {
          await apiPost<{ task: Task }>(`/v1/tasks/${task.id}/answer`, { answer });
          setAnswer('');
          onDone();
        } catch (err) {
          setError((err as Error).message);
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2>Question</h2>
      <blockquote class="question">{task.question}</blockquote>
      <label>
        Answer
        <textarea rows={3} value={answer} onInput={(e) => setAnswer(e.currentTarget.value)} />
      </label>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          Send answer
        </button>
      </div>
    </form>
  );
}

export function TaskDetailView({ id }: { id: string }) {
  const { detail, error, reload } = useTaskDetail(id);
  const [picked, setPicked] = useState<number | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  if (error && !detail) {
    return (
      <div class="page">
        <p class="error" role="alert">
          {error.status === 404 ? `No task ${id}.` : `Could not load task ${id}: ${error.message}`}
        </p>
        <a href="#/">Back to the board</a>
      </div>
    );
  }
  if (!detail) return <p class="muted page">Loading…</p>;
  const { task, attempts, callback } = detail;
  const latest = attempts.reduce<Attempt | null>((m, a) => (m === null || a.number > m.number ? a : m), null);
  const shown = picked ?? latest?.number ?? null;
  const shownAttempt = attempts.find((a) => a.number === shown);

  const act = async (what: 'cancel' | 'retry'): Promise<void> => {
    setBusy(true);
    setActionError(null);
    try {
      // The board hears of the change through the events; this page reloads the task.
      await apiPost<{ task: Task }>(`/v1/tasks/${task.id}/${what}`);
      setPicked(null);
      reload();
    } catch (e) {
      setActionError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="page detail">
      <p class="crumbs">
        <a href="#/">Board</a> / task #{task.id}
      </p>
      <div class="detail-head">
        <h1>
          <span class="muted">#{task.id}</span> {task.title}
        </h1>
        <span class={`pill big st-${task.state}`} aria-label={`state ${task.state}`}>
          {task.state.replace('_', ' ')}
        </span>
        {task.cancelRequested && task.state === 'running' && <span class="muted">cancelling…</span>}
        <div class="actions">
          {ACTIVE.includes(task.state) && (
            <button type="button" class="danger" disabled={busy || task.cancelRequested} onClick={() => act('cancel')}>
              Cancel
            </button>
          )}
          {RETRYABLE.includes(task.state) && (
            <button type="button" disabled={busy} onClick={() => act('retry')}>
              Retry
            </button>
          )}
        </div>
      </div>
      {actionError && (
        <p class="error" role="alert">
          {actionError}
        </p>
      )}

      {task.state === 'blocked' && (
        <AnswerForm
          task={task}
          onDone={() => {
            setPicked(null);
            reload();
          }}
        />
      )}

      {task.state === 'completed' && task.result !== null && (
        <section aria-labelledby="result-h">
          <h2 id="result-h">Result</h2>
          <pre class="result">{task.result}</pre>
        </section>
      )}
      {task.failedReason && (
        <section aria-labelledby="reason-h">
          <h2 id="reason-h">{task.state === 'queued' ? 'Last failure' : 'Failure reason'}</h2>
          <pre class="result failed">{task.failedReason}</pre>
        </section>
      )}
      {task.answer && task.state !== 'blocked' && (
        <p>
          <strong>Asked:</strong> {task.question} <strong>Answered:</strong> {task.answer}
        </p>
      )}

      <section aria-labelledby="fields-h">
        <h2 id="fields-h">Details</h2>
        <dl class="fields">
          <Field label="Name">{task.name}</Field>
          <Field label="Priority">{task.priority}</Field>
          <Field label="Agent">{task.runAgent && task.runAgent !== task.agent ? `${task.runAgent} (${task.agent})` : task.agent}</Field>
          <Field label="Model">{task.stats?.model ?? task.model ?? 'routing'}</Field>
          <Field label="Created">{fmtTime(task.createdAt)}</Field>
          <Field label="Started">{fmtTime(task.startedAt)}</Field>
          <Field label="Finished">{fmtTime(task.finishedAt)}</Field>
          <Field label="Duration">{fmtDuration(task.durationMs)}</Field>
          <Field label="Attempts">
            {task.attempts} of {task.retries + 1}
            {task.claims > task.attempts ? ` (${task.claims} claims)` : ''}
          </Field>
          <Field label="Cost">{fmtUsd(task.stats?.costUsd)}</Field>
          <Field label="Tokens in / out">
            {fmtTokens(task.stats?.inputTokens)} / {fmtTokens(task.stats?.outputTokens)}
          </Field>
          {task.stats?.numTurns != null && <Field label="Turns">{task.stats.numTurns}</Field>}
          {task.stats?.sessionId && <Field label="Session">{task.stats.sessionId}</Field>}
          {task.tags.length > 0 && <Field label="Tags">{task.tags.join(', ')}</Field>}
          {task.runsOn?.length > 0 && <Field label="Runs on">{task.runsOn.join(', ')}</Field>}
          {task.remote && <Field label="Delegated to">{task.remote}</Field>}
          {task.origin && <Field label="Origin">{`${task.origin.host}:${task.origin.root}`}</Field>}
          {task.ranOn && <Field label="Ran on">{task.ranOn}</Field>}
          {task.dependsOnIds.length > 0 && (
            <Field label="Depends on">
              {task.dependsOnIds.map((d) => (
                <a href={`#/tasks/${d}`}>#{d} </a>
              ))}
            </Field>
          )}
          {task.parentId !== null && (
            <Field label="Parent">
              <a href={`#/tasks/${task.parentId}`}>#{task.parentId}</a>
            </Field>
          )}
          {task.branch && <Field label="Branch">{task.branch}</Field>}
          {task.commits?.length > 0 && <Field label="Commits">{task.commits.map((c) => `${c.hash.slice(0, 8)} ${c.subject}`).join('; ')}</Field>}
          {task.pushedTo && <Field label="Pushed to">{task.pushedTo}</Field>}
          {task.pushError && <Field label="Push error">{task.pushError}</Field>}
          {task.resultPath && <Field label="Result file">{task.resultPath}</Field>}
          {callback && (
            <Field label="Callback">
              {callback.url} — {callback.state}
              {callback.attempts ? ` after ${callback.attempts} tries` : ''}
              {callback.lastError ? ` (${callback.lastError})` : ''}
            </Field>
          )}
        </dl>
      </section>

      <section aria-labelledby="attempts-h">
        <h2 id="attempts-h">Attempts</h2>
        <AttemptsTable attempts={attempts} selected={shown} onSelect={setPicked} />
      </section>

      {(detail.verifications?.length ?? 0) > 0 && (
        <section aria-labelledby="verify-h">
          <h2 id="verify-h">Verifications</h2>
          <VerificationsTable verifications={detail.verifications ?? []} />
        </section>
      )}

      {shown !== null && (
        <section aria-labelledby="output-h">
          <h2 id="output-h">Output of attempt {shown}</h2>
          <LogView key={`${task.id}:${shown}`} taskId={task.id} attempt={shown} follow={shownAttempt?.outcome === 'running'} />
        </section>
      )}

      <details class="prompt">
        <summary>Prompt</summary>
        <pre>{task.prompt}</pre>
      </details>
    </div>
  );
}
