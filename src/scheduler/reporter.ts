/**
 * The reporter: writes the `done/` and `failed/` files of terminal tasks and records their
 * paths, in the task's origin checkout only (`Task.origin`; a task without one, stored before
 * origins were recorded, in any checkout). A dispatcher reports the tasks it ends at once and
 * the missing ones on every tick; `agentq sync` runs it once without a dispatcher.
 */
import os from 'node:os';
import { sameOrigin, writesResultHere, type ProjectPaths } from '../config/project.ts';
import type { Task, TaskOrigin } from '../core/types.ts';
import type { DispatcherEvents } from '../events/events.ts';
import { isAlive } from '../process/process-tree.ts';
import { GroupSync } from '../results/group-sync.ts';
import { resultExtras, writeResultFile } from '../results/result-file.ts';
import type { Store, WorkerInfo } from '../store/store.ts';
import { STORE_RETRY_MAX_MS } from './store-retry.ts';

export interface ReporterOptions {
  paths: ProjectPaths;
  store: Store;
  /** This checkout (`projectOrigin(paths)`): the tasks from it are the ones reported here. */
  origin: TaskOrigin;
  /** `task.finished` for each task reported, `error` for a file that could not be written (once per task and error). */
  events: DispatcherEvents;
  /** Config `lease`, ms: how long another dispatcher that ended a task is given to write its file itself. */
  leaseMs: number;
  /** Clock, epoch ms. */
  now: () => number;
  /** The worker id of the dispatcher it reports for; null for none (`agentq sync`). */
  workerId: string | null;
  /**
   * Whether a lease that expired at `expiresAt` (epoch ms) counts as lost by `now`: the
   * dispatcher's judgement, which allows for its own store outages. Default: once it expired.
   */
  leaseLapsed?: (expiresAt: number, now: number) => boolean;
  /**
   * Records what a task's end needs recorded besides its file (its notifications,
   * `Notifier.taskEnded`; idempotent). Called for every task reported: for this checkout's
   * before its file is written (a throw leaves it unreported, tried again with the file),
   * for another checkout's before it is announced (a throw is emitted as an `error`).
   */
  recordEnd?: (task: Task) => Promise<void>;
}

/** What one {@link Reporter.writeMissing} did. */
export interface MissingResults {
  /** Tasks whose file it wrote, with `resultPath` set. */
  written: Task[];
  /** Tasks left to the live dispatcher that ended them moments ago (it writes their file itself). */
  deferred: Task[];
  /** Tasks whose file could not be written (tried again next time), with the error. */
  failed: Array<{ task: Task; error: Error }>;
}

/**
 * Writes result files for one checkout (see the module comment): {@link report} for a task
 * just ended, {@link writeMissing} for every one still missing. An error writing a file or
 * recording its path (a full disk) is emitted (`error`, once per task and error), the task left
 * for the next call; errors listing the tasks are thrown (a dispatcher's store retries
 * transient ones below it).
 */
export class Reporter {
  /** Per task whose result file could not be written: the error (code) last reported. */
  private readonly errors = new Map<number, string>();
  private readonly leaseLapsed: (expiresAt: number, now: number) => boolean;
  /** The fsyncs of the result files written together, made in groups (see {@link GroupSync}). */
  readonly durable = new GroupSync();
  /** The writes under way, by task id. */
  private readonly writing = new Map<number, Promise<{ file: string } | { error: Error }>>();
  /** Per {@link writeMissing} pass under way: the tasks written since it began listing (its list may still hold them as unreported). */
  private readonly passes = new Set<Set<number>>();

  constructor(private readonly o: ReporterOptions) {
    this.leaseLapsed = o.leaseLapsed ?? ((expiresAt, now) => expiresAt <= now);
  }

  /** Whether this checkout writes `task`'s result file ({@link writesResultHere}). */
  writesHere(task: Pick<Task, 'origin'>): boolean {
    return writesResultHere(task, this.o.origin);
  }

  /**
   * Reports a task that just ended: writes its result file and records its path when it is
   * this checkout's ({@link writesHere}); a task from another checkout is only announced
   * (`task.finished` with `resultPath` null): its origin's agentq writes the file (its `run`
   * or `serve` on its next tick, or `agentq sync`).
   * @returns the path written; null when the task is another checkout's or the write failed
   *   (a full disk: the error is emitted once, the task is left unreported for the next try)
   */
  async report(task: Task): Promise<string | null> {
    if (!this.writesHere(task)) {
      await this.o.recordEnd?.(task).catch((err: unknown) => this.o.events.emit('error', err instanceof Error ? err : new Error(String(err))));
      this.o.events.emit('task.finished', task);
      return null;
    }
    const written = await this.write(task);
    return 'file' in written ? written.file : null;
  }

  /**
   * Writes a task's result file and records its path; an error is emitted once per task and
   * error (a full disk), the task left unreported. A task being written already (its end
   * reported while a tick looks for missing files) gets that write's outcome.
   */
  private write(task: Task): Promise<{ file: string } | { error: Error }> {
    const current = this.writing.get(task.id);
    if (current) return current;
    const written = this.writeOnce(task).finally(() => this.writing.delete(task.id));
    this.writing.set(task.id, written);
    return written;
  }

  private async writeOnce(task: Task): Promise<{ file: string } | { error: Error }> {
    try {
      // Recorded first: a crash before the file is written reports (and records) the end again, once.
      await this.o.recordEnd?.(task);
      // Durable before its path is recorded: a task recorded as reported has its file after a crash.
      const file = await writeResultFile(this.o.paths, task, await resultExtras(this.o.store, task), (target) => this.durable.sync(target));
      await this.o.store.setResultPath(task.id, file);
      for (const pass of this.passes) pass.add(task.id);
      this.errors.delete(task.id);
      this.o.events.emit('task.finished', { ...task, resultPath: file });
      return { file };
    } catch (err) {
      const e: NodeJS.ErrnoException = err instanceof Error ? err : new Error(String(err));
      if (this.errors.get(task.id) !== (e.code ?? e.message)) this.o.events.emit('error', e);
      this.errors.set(task.id, e.code ?? e.message);
      return { error: e };
    }
  }

  /**
   * Writes every missing result file of this checkout's tasks (`Store.listUnreported` with
   * this origin): after a crash, an I/O error, or a task another checkout's dispatcher ended.
   * A task that another live dispatcher ended moments ago and writes itself (it is in the
   * task's origin checkout too, or the task has no origin) is left to it: it writes the file
   * right after its finish commits, and for a task without an origin writing it here too
   * would make a second file in another checkout.
   */
  async writeMissing(): Promise<MissingResults> {
    const done: MissingResults = { written: [], deferred: [], failed: [] };
    // A write of this process that ends while this pass runs (a task's end reported) is not
    // written again: the list below may have been read before that write recorded its path.
    const writtenMeanwhile = new Set<number>();
    this.passes.add(writtenMeanwhile);
    try {
      const unreported = await this.o.store.listUnreported(this.o.origin);
      if (unreported.length === 0) return done;
      const now = this.o.now();
      const workers = new Map((await this.o.store.listWorkers()).map((w) => [w.id, w]));
      for (const task of unreported) {
        if (writtenMeanwhile.has(task.id)) continue;
        if (await this.endedByAnotherLiveWriter(task, workers, now)) {
          done.deferred.push(task);
          continue;
        }
        if (writtenMeanwhile.has(task.id)) continue;
        const written = await this.write(task);
        if ('file' in written) done.written.push({ ...task, resultPath: written.file });
        else done.failed.push({ task, error: written.error });
      }
      return done;
    } finally {
      this.passes.delete(writtenMeanwhile);
    }
  }

  /**
   * Whether `task` was ended by another dispatcher's attempt less than `lease` (+ the longest
   * store retry backoff) ago, that dispatcher writes its file (its checkout is the task's
   * origin, or the task has none, or its row predates recorded roots) and it looks alive
   * (registered, its pid alive on this host, its heartbeat within the same bound).
   */
  private async endedByAnotherLiveWriter(task: Task, workers: Map<string, WorkerInfo>, now: number): Promise<boolean> {
    const grace = this.o.leaseMs + STORE_RETRY_MAX_MS;
    if (task.finishedAt === null || now - task.finishedAt >= grace) return false;
    const last = (await this.o.store.listAttempts(task.id)).at(-1);
    if (!last || last.workerId === this.o.workerId) return false;
    const w = workers.get(last.workerId);
    if (!w) return false;
    if (task.origin !== null && w.root !== null && !sameOrigin(task.origin, { host: w.host, root: w.root })) return false;
    if (w.host === os.hostname() && !isAlive(w.pid)) return false;
    return !this.leaseLapsed(w.heartbeatAt + this.o.leaseMs, now);
  }
}
