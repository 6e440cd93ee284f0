/**
 * The stall watchdog (`stall_timeout`): an attempt whose agent shows no activity for that
 * long is stopped by its dispatcher (stop reason `stall`: the staged stop of the whole
 * process tree) and ends `stalled`; the next attempt resumes the agent's session with
 * {@link stallNote}. Activity is any of:
 * - an event of the agent's stream (a parsed stdout line: {@link ActivityWatch.touch});
 * - growth of the attempt's stdout or stderr log (any output, parsed or not);
 * - work in the agent's process tree: a descendant (a tool command and what it started)
 *   used CPU time or wrote bytes since the last sample (see src/process/activity.ts). A Bash
 *   tool's output reaches the stream only when the command ends, so a test suite printing
 *   for twenty minutes counts through this; `sleep 3600` does not. The agent's own process
 *   counts too only for runners whose process is the work (`AgentRunner.ownProcessIsWork`,
 *   `agent: command`): an agent CLI keeps ticking while it waits.
 * Samples are taken every `min(stall_timeout / 4, 5 s)`, and once more when the quiet time
 * reaches `stall_timeout`, so a stall is called within a sample's reach of it.
 */
import fs from 'node:fs';
import { formatDuration } from '../config/duration.ts';
import type { Config } from '../config/config.ts';
import type { Attempt, Task } from '../core/types.ts';
import { sampleTree, treeWorked, type TreeSample } from '../process/activity.ts';

/** Longest pause between two samples of a watched attempt, ms. */
export const STALL_SAMPLE_MAX_MS = 5_000;

/** The stall timeout of a task, ms: its own `stall_timeout`, else config's; 0: no watchdog. */
export function stallTimeoutOf(task: Pick<Task, 'stallTimeoutMs'>, config: Pick<Config, 'stall_timeout'>): number {
  return task.stallTimeoutMs ?? config.stall_timeout;
}

/** Options of {@link ActivityWatch}. */
export interface ActivityWatchOptions {
  /** Quiet time after which the agent has stalled, ms; 0: never (activity is still tracked for `lastActivityAt`). */
  timeoutMs: number;
  /** Files whose growth is activity: the attempt's stdout and stderr logs. */
  logs: readonly string[];
  /** Whether the agent process's own CPU time and writes count, besides its descendants' (`AgentRunner.ownProcessIsWork`). */
  ownProcessIsWork?: boolean;
  /** Called once when the agent has stalled, with how long it was quiet (ms). The watch has stopped by then. */
  onStall: (quietMs: number) => void;
  /** Clock, epoch ms. Default Date.now. */
  now?: () => number;
  /** Longest pause between samples, ms. Default `min(timeoutMs / 4, STALL_SAMPLE_MAX_MS)`. */
  sampleMs?: number;
}

/** Size of a file in bytes; -1 when it cannot be read (not written yet). */
function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return -1;
  }
}

/**
 * Watches one attempt's agent for activity (see the module comment) from its creation, the
 * attempt's start. {@link start} arms the watchdog when `timeoutMs` > 0; {@link stop} ends it
 * (call it when the runner returns). Never throws from its timers.
 */
export class ActivityWatch {
  private last: number;
  private pid: number | null = null;
  private sizes: number[];
  private tree: TreeSample | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly now: () => number;
  private readonly sampleMs: number;

  constructor(private readonly o: ActivityWatchOptions) {
    this.now = o.now ?? Date.now;
    this.last = this.now();
    this.sizes = o.logs.map(sizeOf);
    this.sampleMs = Math.max(1, o.sampleMs ?? Math.min(o.timeoutMs / 4, STALL_SAMPLE_MAX_MS));
  }

  /** Activity now (an agent event). */
  touch(): void {
    this.last = this.now();
  }

  /** The agent's process (its runner's `spawned` event): its tree is sampled from now on. */
  setPid(pid: number): void {
    this.pid = pid;
    this.tree = null;
  }

  /** When the agent last showed activity, epoch ms (the logs are looked at now; the tree at the last sample). */
  lastActivityAt(): number {
    this.checkLogs();
    return this.last;
  }

  /** Arms the watchdog (nothing when `timeoutMs` is 0). */
  start(): void {
    if (this.o.timeoutMs > 0 && !this.stopped) this.schedule();
  }

  /** Ends the watch; no `onStall` after it. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private checkLogs(): void {
    const sizes = this.o.logs.map(sizeOf);
    if (sizes.some((s, i) => s !== this.sizes[i])) this.touch();
    this.sizes = sizes;
  }

  private schedule(): void {
    const untilStall = this.last + this.o.timeoutMs - this.now();
    this.timer = setTimeout(() => void this.sample(), Math.max(1, Math.min(this.sampleMs, untilStall)));
    this.timer.unref();
  }

  private async sample(): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    try {
      this.checkLogs();
      if (this.pid !== null) {
        const tree = await sampleTree(this.pid, { includeRoot: this.o.ownProcessIsWork === true });
        if (this.tree !== null && treeWorked(this.tree, tree)) this.touch();
        this.tree = tree;
      }
    } catch {
      // A sample that cannot be read counts as no activity; the next one tries again.
    }
    if (this.stopped) return;
    const quiet = this.now() - this.last;
    if (quiet >= this.o.timeoutMs) {
      this.stop();
      this.o.onStall(quiet);
    } else this.schedule();
  }
}

/** What a stalled attempt's reason says about the stop, e.g. `no activity for 5.0s (stall_timeout 5.0s)`. */
export function stallDetail(quietMs: number, timeoutMs: number): string {
  return `no activity for ${formatDuration(quietMs)} (stall_timeout ${formatDuration(timeoutMs)}: no output, stream event or work in its tool commands)`;
}

/**
 * The prompt that resumes the session of a stalled attempt: the previous run stopped
 * responding and was stopped; go on from where it was.
 */
export function stallNote(stalled: Pick<Attempt, 'number' | 'reason'>): string {
  return (
    `Note from agent-queue: your previous run (attempt ${stalled.number}) stopped responding and was stopped ` +
    `(${stalled.reason ?? 'stalled'}). Any command it was running was killed. Continue the task from where you were; ` +
    'do not run a command that waits without end or without output (run long commands with a time limit, and in the background if they need no watching).'
  );
}
