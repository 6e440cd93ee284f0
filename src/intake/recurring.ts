/**
 * Recurring work: `.agent-queue/recurring/NAME.md` is a task file with a cron `schedule`
 * (cron-parser syntax, 5 or 6 fields, optional `timezone`, default the machine's). On each
 * tick of its schedule it creates a task `NAME-YYYYMMDDTHHMM` (UTC tick time) with the
 * file's fields and body; the file itself stays. One task per tick, however many
 * dispatchers run (the tick is recorded in the same transaction as the task); ticks that
 * passed while no dispatcher ran are not made up, only the newest one is. A file with
 * `detect:` is a detector instead (src/intake/detect.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import { projectOrigin, type ProjectPaths } from '../config/project.ts';
import { decodeTaskFile } from '../config/task-text.ts';
import { readTaskFileEntry } from './inbox.ts';
import { InvalidTaskError } from '../core/errors.ts';
import type { Task } from '../core/types.ts';
import type { Store } from '../store/store.ts';

export interface RecurringResult {
  created: Task[];
  /** One line per recurring file that cannot be used, naming the field. */
  problems: string[];
}

/**
 * The newest tick of `schedule` in (after, now], or null. cron-parser (with luxon: ~6 MiB) is
 * loaded by the first call, so a dispatcher without recurring files never loads it.
 * @throws Error from cron-parser for an expression it cannot read
 */
export async function latestTick(schedule: string, timezone: string | undefined, after: number, now: number): Promise<number | null> {
  const { CronExpressionParser } = await import('cron-parser');
  const it = CronExpressionParser.parse(schedule, { currentDate: new Date(after), ...(timezone ? { tz: timezone } : {}) });
  let latest: number | null = null;
  for (let i = 0; i < 100_000; i++) {
    const next = it.next().getTime();
    if (next > now) break;
    latest = next;
  }
  return latest;
}

function tickSuffix(tick: number): string {
  return new Date(tick).toISOString().slice(0, 16).replace(/[-:]/g, '');
}

/**
 * The names of the recurring files (`recurring/*.md`, hidden ones left out), sorted; none
 * when the folder does not exist. Recurring files and detectors are both read from this list.
 * @throws file-system errors other than ENOENT
 */
export function recurringFiles(paths: Pick<ProjectPaths, 'recurring'>): string[] {
  try {
    return fs.readdirSync(paths.recurring).filter((f) => f.endsWith('.md') && !f.startsWith('.')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Creates the tasks of every recurring file whose schedule ticked since the last look; they come from this checkout (`Task.origin`). */
export async function fireRecurring(paths: ProjectPaths, store: Store, config: Config, now = Date.now()): Promise<RecurringResult> {
  const files = recurringFiles(paths);
  if (files.length === 0) return { created: [], problems: [] };
  // The task-file schema (zod, yaml) is loaded once there are recurring files, not by every dispatcher.
  const [{ parseTaskFile }, { isDetectorFile }] = await Promise.all([import('../config/task-file.ts'), import('./detect.ts')]);
  const created: Task[] = [];
  const problems: string[] = [];
  for (const file of files) {
    const name = file.slice(0, -3);
    try {
      // Read like an inbox file: no links, FIFOs or folders, UTF-8 text only.
      const entry = readTaskFileEntry(path.join(paths.recurring, file));
      if (entry.kind === 'gone' || entry.kind === 'unsettled') continue;
      if (entry.kind === 'refused') throw new InvalidTaskError('file', `file: ${entry.reason}`);
      const text = decodeTaskFile(entry.content);
      if (isDetectorFile(text)) continue; // `detect:` files run their command instead: src/intake/detect.ts
      const spec = parseTaskFile(name, text, config, 'recurring');
      const { schedule, timezone, ...extra } = spec.extra;
      if (typeof schedule !== 'string' || schedule.trim() === '') {
        throw new InvalidTaskError('schedule', `schedule: ${JSON.stringify(schedule)} is not a cron expression such as "0 9 * * 1-5"`);
      }
      if (spec.dependsOn.length) throw new InvalidTaskError('depends_on', 'depends_on: not supported in recurring files (each tick is a task of its own)');
      if (timezone !== undefined && typeof timezone !== 'string') throw new InvalidTaskError('timezone', `timezone: ${JSON.stringify(timezone)} is not an IANA zone`);
      const last = await store.getRecurringTick(name);
      if (last === null) {
        await store.recordRecurringTick(name, now, null, now); // first seen: start from now
        continue;
      }
      let tick: number | null;
      try {
        tick = await latestTick(schedule, timezone, last, now);
      } catch (err) {
        throw new InvalidTaskError('schedule', `schedule: ${JSON.stringify(schedule)} is not a valid cron expression (${(err as Error).message})`);
      }
      if (tick === null) continue;
      const task = await store.recordRecurringTick(
        name,
        tick,
        {
          spec: { ...spec, name: `${name}-${tickSuffix(tick)}`, extra: { ...extra, recurring: name, tick: new Date(tick).toISOString() } },
          dependsOnIds: [],
          origin: projectOrigin(paths),
        },
        now,
      );
      if (task) created.push(task);
    } catch (err) {
      if (!(err instanceof InvalidTaskError)) throw err;
      problems.push(`recurring/${file}: ${err.message}`);
    }
  }
  return { created, problems };
}
