/**
 * The submit form: POST /v1/tasks with the task-file field names. A 400 is shown next to
 * the field it names; each submission carries an Idempotency-Key, so a double click or a
 * resend after a dropped answer creates one task.
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError, apiPost, type Task } from '../api.ts';
import { AUTO_AGENT, KNOWN_AGENTS, PRIORITIES } from '../../../src/core/types.ts';
import { live } from '../live.ts';
import { navigate } from '../router.ts';

interface FormState {
  title: string;
  prompt: string;
  priority: string;
  agent: string;
  model: string;
  tags: string;
  command: string;
  timeout: string;
}

const EMPTY: FormState = { title: '', prompt: '', priority: 'default', agent: '', model: '', tags: '', command: '', timeout: '' };

/** Request fields the form has an input for (an error naming another field is shown above the form). */
const FORM_FIELDS = ['title', 'prompt', 'priority', 'agent', 'model', 'tags', 'command', 'timeout'] as const;
type FormField = (typeof FORM_FIELDS)[number];

function newKey(): string {
  return typeof crypto.randomUUID === 'function' ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** The request body: only the fields that were filled in. */
function body(f: FormState): Record<string, unknown> {
  const b: Record<string, unknown> = { prompt: f.prompt };
  if (f.title.trim()) b.title = f.title.trim();
  if (f.priority !== 'default') b.priority = f.priority;
  if (f.agent.trim()) b.agent = f.agent.trim();
  if (f.model.trim()) b.model = f.model.trim();
  const tags = f.tags.split(',').map((t) => t.trim()).filter(Boolean);
  if (tags.length) b.tags = tags;
  if (f.command.trim()) b.command = f.command.trim();
  if (f.timeout.trim()) b.timeout = /^\d+$/.test(f.timeout.trim()) ? Number(f.timeout.trim()) : f.timeout.trim();
  return b;
}

/** `tags.0`, `tags[0]`, `/tags/0` → `tags`. */
function topField(field: string): string {
  return field.replace(/^[/$.]+/, '').split(/[.[/]/)[0] ?? field;
}

export function SubmitForm() {
  const [f, setF] = useState<FormState>(EMPTY);
  const [errors, setErrors] = useState<Partial<Record<FormField, string>>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [key, setKey] = useState(newKey);

  const set = (k: keyof FormState) => (e: Event) => {
    const v = (e.currentTarget as HTMLInputElement).value;
    setF((old) => ({ ...old, [k]: v }));
    if (errors[k as FormField]) setErrors((old) => ({ ...old, [k]: undefined }));
    setKey(newKey()); // a different body is a different submission
  };

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setFormError(null);
    if (!f.prompt.trim()) {
      setErrors({ prompt: 'A prompt is required.' });
      return;
    }
    setBusy(true);
    try {
      const r = await apiPost<{ task: Task }>('/v1/tasks', body(f), { 'Idempotency-Key': key });
      live.putNew(r.task);
      setF(EMPTY);
      setErrors({});
      setKey(newKey());
      navigate('/');
    } catch (err) {
      if (err instanceof ApiError && err.field && (FORM_FIELDS as readonly string[]).includes(topField(err.field))) {
        setErrors({ [topField(err.field)]: err.message });
      } else {
        setFormError(err instanceof Error ? err.message : String(err));
      }
    } finally {
      setBusy(false);
    }
  };

  const field = (k: FormField, label: string, input: JSX.Element, hint?: string) => (
    <div class={`field${errors[k] ? ' invalid' : ''}`}>
      <label for={`f-${k}`}>{label}</label>
      {input}
      {hint && !errors[k] && <p class="hint" id={`f-${k}-hint`}>{hint}</p>}
      {errors[k] && (
        <p class="field-error" id={`f-${k}-error`} role="alert">
          {errors[k]}
        </p>
      )}
    </div>
  );
  const describedBy = (k: FormField): string | undefined => (errors[k] ? `f-${k}-error` : undefined);

  return (
    <div class="page">
      <h1>Submit a task</h1>
      <form class="submit" onSubmit={submit} noValidate>
        {formError && (
          <p class="error" role="alert">
            {formError}
          </p>
        )}
        {field('title', 'Title', <input id="f-title" value={f.title} onInput={set('title')} aria-invalid={!!errors.title} aria-describedby={describedBy('title')} />, 'Shown in lists and results; default: the name.')}
        {field(
          'prompt',
          'Prompt',
          <textarea id="f-prompt" rows={8} value={f.prompt} onInput={set('prompt')} aria-invalid={!!errors.prompt} aria-describedby={describedBy('prompt')} />,
          'What the agent should do (Markdown).',
        )}
        <div class="row">
          {field(
            'priority',
            'Priority',
            <select id="f-priority" value={f.priority} onChange={set('priority')} aria-invalid={!!errors.priority} aria-describedby={describedBy('priority')}>
              {PRIORITIES.map((p) => (
                <option value={p}>{p}</option>
              ))}
            </select>,
          )}
          {field(
            'agent',
            'Agent',
            <>
              <input id="f-agent" list="agents-list" value={f.agent} placeholder="claude" onInput={set('agent')} aria-invalid={!!errors.agent} aria-describedby={describedBy('agent')} />
              <datalist id="agents-list">
                {[...KNOWN_AGENTS, AUTO_AGENT].map((a) => (
                  <option value={a} />
                ))}
              </datalist>
            </>,
          )}
          {field('model', 'Model', <input id="f-model" value={f.model} placeholder="routing" onInput={set('model')} aria-invalid={!!errors.model} aria-describedby={describedBy('model')} />)}
        </div>
        <div class="row">
          {field('tags', 'Tags', <input id="f-tags" value={f.tags} placeholder="docs, small" onInput={set('tags')} aria-invalid={!!errors.tags} aria-describedby={describedBy('tags')} />, 'Comma-separated.')}
          {field('timeout', 'Timeout', <input id="f-timeout" value={f.timeout} placeholder="30m" onInput={set('timeout')} aria-invalid={!!errors.timeout} aria-describedby={describedBy('timeout')} />, 'Per attempt: 90s, 30m, 2h.')}
        </div>
        {(f.agent.trim() === 'command' || f.command !== '' || errors.command) &&
          field(
            'command',
            'Command',
            <input id="f-command" class="mono" value={f.command} placeholder="npm test" onInput={set('command')} aria-invalid={!!errors.command} aria-describedby={describedBy('command')} />,
            'For the command agent: run by sh -c, the prompt on stdin, stdout is the result.',
          )}
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            Submit task
          </button>
          <a href="#/">Back to the board</a>
        </div>
      </form>
    </div>
  );
}
