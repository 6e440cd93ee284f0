/**
 * The live progress of `agentq run` and `serve`: a redrawn line per running task on a TTY,
 * plain timestamped lines otherwise.
 */
import type { AgentEvent } from '../agents/runner.ts';
import { formatOrigin } from '../config/project.ts';
import { formatDuration } from '../config/duration.ts';
import { isTerminal, type Claim, type Task, type TaskOrigin } from '../core/types.ts';
import type { DispatcherEvents } from '../events/events.ts';
import { STORE_RETRY_MAX_MS } from '../scheduler/store-retry.ts';
import { cost, fromElsewhere } from './output.ts';

/**
 * log-update, loaded only when stderr is a terminal: it and its dependencies take ~9 MiB of a
 * dispatcher's memory, for nothing when the progress is plain lines (a service, a pipe).
 */
const logUpdate = process.stderr.isTTY ? await import('log-update') : null;

/**
 * Follows dispatcher events and prints progress; returns a function that stops it. `here`:
 * the dispatcher's checkout, so a task from another one that ends here says where its result
 * file goes.
 */
export function attachProgress(events: DispatcherEvents, out: NodeJS.WriteStream = process.stderr, here: TaskOrigin | null = null): () => void {
  const live = new Map<string, { claim: Claim; model: string | null; since: number; last: string }>();
  const tty = out.isTTY === true;
  const update = tty && logUpdate ? logUpdate.createLogUpdate(out) : null;
  const stamp = () => new Date().toISOString().slice(11, 19);
  const print = (text: string) => {
    // A reason of several lines (a setup's last output): its further lines indented.
    const line = text.replace(/\n(?=.)/g, '\n    ');
    if (update) {
      update.clear();
      out.write(`${line}\n`);
      redraw();
    } else out.write(`${stamp()} ${line}\n`);
  };
  const redraw = () => {
    if (!update) return;
    const now = Date.now();
    update(
      [...live.values()]
        .map((r) => `  ▶ #${r.claim.task.id} ${r.claim.task.name} (${r.claim.task.agent}${r.model ? ` ${r.model}` : ''}) ${formatDuration(now - r.since)}  ${r.last}`.slice(0, (out.columns ?? 120) - 1))
        .join('\n'),
    );
  };
  const timer = tty ? setInterval(redraw, 500) : null;
  timer?.unref();
  const label = (t: Task) => `#${t.id} ${t.name}`;
  events.on('task.created', (t) => {
    if (isTerminal(t.state)) return; // invalid or duplicate: reported by task.finished
    print(`queued    ${label(t)} [${t.priority}]`);
  });
  events.on('task.started', (claim, model) => {
    live.set(claim.attempt.id, { claim, model, since: Date.now(), last: '' });
    print(`started   ${label(claim.task)} attempt ${claim.attempt.number} (${claim.task.agent}${model ? ` ${model}` : ''})`);
  });
  events.on('task.progress', (claim, e: AgentEvent) => {
    const r = live.get(claim.attempt.id);
    if (r && e.type === 'progress') r.last = e.text.split('\n')[0]!.slice(0, 80);
  });
  events.on('attempt.outcome', (claim) => {
    live.delete(claim.attempt.id);
    redraw();
  });
  events.on('task.waiting', (t) => print(`waiting   ${label(t)}: its own run completed; it completes when its subtasks do`));
  events.on('task.blocked', (t) =>
    print(t.takenOverAt !== null ? `taken over ${label(t)} by hand: blocked until agentq release ${t.id}` : `blocked   ${label(t)} asks: ${(t.question ?? '').split('\n')[0]}  (agentq answer ${t.id} "…")`),
  );
  events.on('intake.deferred', (files, reason) => print(`waiting   ${files.length} inbox file(s): ${reason}`));
  events.on('intake.refused', (entries) => {
    for (const e of entries) print(`refused   inbox/${e.file} ${e.reason}`);
  });
  events.on('detector.ran', (r) => {
    if (r.error !== null) print(`detector  ${r.name} failed, nothing taken: ${r.error}`);
    else print(`detector  ${r.name}: ${r.lines} line(s), ${r.created} new task(s), ${r.known} known, ${r.problems.length} skipped`);
    for (const p of r.problems) print(`detector  ${r.name} line ${p.line} skipped: ${p.reason}`);
  });
  events.on('task.delayed', (t, until, reason) => print(`waiting   ${label(t)} until ${new Date(until).toISOString()}: ${reason}`));
  events.on('task.requeued', (t, reason) => print(`requeued  ${label(t)}: ${reason}`));
  events.on('task.pushed', (t, to, commits) => print(`pushed    ${label(t)} → ${to} (${commits} commit${commits === 1 ? '' : 's'})`));
  events.on('task.push_failed', (t, error, retryInMs) =>
    print(
      retryInMs === null
        ? `push      ${label(t)} failed: ${error}; the branch stays in this checkout (push_error in the result file)`
        : `push      ${label(t)} failed, trying again in ${formatDuration(retryInMs)}: ${error}`,
    ),
  );
  events.on('agent.paused', (p) => print(`paused    ${p.agent} until ${new Date(p.until).toISOString()}: ${p.reason}`));
  events.on('task.recovered', (t, pids) =>
    print(`recovered ${label(t)} from a stopped dispatcher${pids.length ? ` (stopped ${pids.length} leftover process(es))` : ''}`),
  );
  events.on('task.finished', (t) => {
    const extra = t.state === 'completed' ? [t.durationMs === null ? '' : formatDuration(t.durationMs), cost(t.stats.costUsd)] : [t.failedReason ?? ''];
    if (t.resultPath === null && fromElsewhere(t, here)) extra.push(`(result file in ${formatOrigin(t.origin)})`);
    print(`${t.state.padEnd(9)} ${label(t)} ${extra.filter(Boolean).join(' ')}`);
  });
  events.on('store.unavailable', (err, retryInMs) =>
    print(`store     unavailable (${err.message}); retrying in ${formatDuration(retryInMs)}, then every ${formatDuration(STORE_RETRY_MAX_MS)} at most; running agents go on`),
  );
  events.on('store.back', (outageMs) => print(`store     back after ${formatDuration(outageMs)}`));
  events.on('error', (err) => print(`error     ${err.message}`));
  return () => {
    if (timer) clearInterval(timer);
    update?.clear();
    update?.done();
  };
}
