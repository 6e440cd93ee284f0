/**
 * Detectors (issue 12, the agentwork seed): a recurring file (`.agent-queue/recurring/NAME.md`)
 * with `detect: COMMAND` runs COMMAND on each tick of its `schedule` instead of making one task:
 * `sh -c`, in the project directory, with an agent's environment (never `AGENTQ_TOKEN`), at
 * most `detect_timeout` (default 60s). Each line it prints is a JSON object of task fields
 * (`prompt`, `name`, any field of a task file, `dedup_key` strongly suggested) and becomes a
 * task, validated as a task file's fields and resolved as POST /v1/tasks
 * (`taskSpecFromFields`, `resolveDirect`). The file's own fields are every line's defaults,
 * and its body, if any, comes before each line's `prompt`.
 *
 * Each line has a key (its `dedup_key`, else a hash of the line) and a key is taken in once
 * per detector, ever: running it again creates nothing for lines it printed before. A line
 * that cannot be used is skipped and reported with its number; the rest are taken. A run that
 * fails (non-zero exit, time limit, too much output, cannot start) creates nothing. The run,
 * its tasks and their keys are recorded in one store transaction (`recordDetectorRun`), the
 * run as the detector's newest (`agentq status`). A tick is run by one dispatcher
 * (`claimRecurringTick`); as for recurring files, the first sight of a file only records the
 * time and ticks missed while no dispatcher ran are not made up, only the newest.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { agentEnv } from '../agents/agent-env.ts';
import { runAgentProcess } from '../agents/agent-process.ts';
import type { Config } from '../config/config.ts';
import { projectOrigin, type ProjectPaths } from '../config/project.ts';
import { parseDuration } from '../config/duration.ts';
import { decodeTaskFile, parseFrontmatter, splitFrontmatter, TASK_FIELDS, TASK_NAME_SCHEMA, taskNameFrom, taskSpecFromFields, validateFields } from '../config/task-file.ts';
import { AgentQueueError, InvalidTaskError } from '../core/errors.ts';
import type { Task } from '../core/types.ts';
import type { DetectedTask, DetectorProblem, DetectorRun, Store } from '../store/store.ts';
import { QueueFullError, resolveDirect } from './direct.ts';
import { readTaskFileEntry } from './inbox.ts';
import { latestTick, recurringFiles } from './recurring.ts';

/** `detect_timeout` when a detector file sets none, ms. */
export const DEFAULT_DETECT_TIMEOUT_MS = 60_000;
/** The longest `detect_timeout`, ms (1 h). */
export const MAX_DETECT_TIMEOUT_MS = 3_600_000;
/** Task lines read from one run; past them the rest are skipped (and reported once). */
export const MAX_DETECTOR_LINES = 1000;
/** Bytes a run may print on stdout; past them it is stopped and fails. */
export const MAX_DETECTOR_OUTPUT_BYTES = 16 * 1024 * 1024;
/** Fields of a detector file that are about the detector, not its tasks. */
const DETECTOR_KEYS = ['detect', 'detect_timeout', 'schedule', 'timezone'] as const;

/** A detector file, validated. */
export interface DetectorFile {
  /** The file's name without `.md`. */
  name: string;
  /** Cron expression (5 or 6 fields) and its IANA zone (default the machine's). */
  schedule: string;
  timezone: string | undefined;
  /** The command, run by `sh -c`. */
  command: string;
  /** Its time limit, ms. */
  timeoutMs: number;
  /** The file's task fields (frontmatter names): every line's defaults. */
  fields: Record<string, unknown>;
  /** The file's body, trimmed (may be empty): put before each line's `prompt`. */
  body: string;
}

/** Whether a recurring file's text has a `detect` field (then it is a detector, run here, not by `fireRecurring`). Never throws. */
export function isDetectorFile(text: string): boolean {
  try {
    const { yaml } = splitFrontmatter(text);
    return yaml !== null && Object.hasOwn(parseFrontmatter(yaml), 'detect');
  } catch {
    return false; // left to fireRecurring, which reports what is wrong with it
  }
}

/**
 * Validates a detector file.
 * @param name the file's name without `.md`
 * @param text the file's text (decoded)
 * @param defaults config's `default_timeout` and `default_retries` (for checking the fields)
 * @throws InvalidTaskError naming the field: `detect` (not a non-empty command string),
 *   `detect_timeout` (not a duration from 1ms to 1h), `schedule`, `timezone`, `depends_on`
 *   (not for a detector file), or any task field as in a task file
 */
export function readDetectorFile(name: string, text: string, defaults: Pick<Config, 'default_timeout' | 'default_retries'>): DetectorFile {
  const { yaml, body } = splitFrontmatter(text);
  const fm = yaml === null ? {} : parseFrontmatter(yaml);
  const { detect, detect_timeout: timeout, schedule, timezone } = fm;
  if (typeof detect !== 'string' || detect.trim() === '') {
    throw new InvalidTaskError('detect', `detect: ${JSON.stringify(detect)} is not a command (a string run by sh -c that prints one JSON task per line)`);
  }
  const timeoutMs = timeout === undefined || timeout === null ? DEFAULT_DETECT_TIMEOUT_MS : parseDuration(timeout, MAX_DETECT_TIMEOUT_MS);
  if (timeoutMs === null) throw new InvalidTaskError('detect_timeout', `detect_timeout: ${JSON.stringify(timeout)} is not a duration from 1ms to 1h, such as 30s or 5m`);
  if (typeof schedule !== 'string' || schedule.trim() === '') {
    throw new InvalidTaskError('schedule', `schedule: ${JSON.stringify(schedule)} is not a cron expression such as "*/15 * * * *"`);
  }
  if (timezone !== undefined && typeof timezone !== 'string') throw new InvalidTaskError('timezone', `timezone: ${JSON.stringify(timezone)} is not an IANA zone`);
  const fields = Object.fromEntries(Object.entries(fm).filter(([k]) => !(DETECTOR_KEYS as readonly string[]).includes(k)));
  if (fields.depends_on !== undefined && fields.depends_on !== null) {
    throw new InvalidTaskError('depends_on', 'depends_on: not supported in a detector file (a line may name stored tasks it depends on)');
  }
  // The fields as any line would get them (a body of its own or not).
  taskSpecFromFields(name, fields, body.trim() || 'prompt', defaults, 'detector');
  return { name, schedule, timezone, command: detect, timeoutMs, fields, body: body.trim() };
}

/** What a line may hold: `prompt`, `name` and the task fields, nothing else. */
const LINE = z.strictObject({
  prompt: z.string({ error: (iss) => `${JSON.stringify(iss.input)} is not a string` }).nullish(),
  name: TASK_NAME_SCHEMA.nullish(),
  ...TASK_FIELDS.shape,
});

/** A line of a detector's output made into a task spec, not yet resolved against the store. */
export interface DetectedLine {
  /** 1-based line number in the output. */
  line: number;
  key: string;
  task: DetectedTask['task']['spec'];
}

/**
 * Reads a detector's output (pure): one JSON object of task fields per line, blank lines
 * ignored. A line becomes a spec with the file's fields under its own, the file's body
 * before its `prompt` (joined by a blank line), source `detector`, and `extra.detector` /
 * `extra.tick` (ISO); its name is `name`, else made from its `title` or prompt. Its key is
 * its `dedup_key`, else `sha256:` and the hash of the line.
 * @param output the whole stdout text
 * @param tick the schedule tick the run was for, epoch ms
 * @returns the specs in order, and the lines skipped with why (not JSON, not an object, a
 *   field refused as in a task file, no prompt, a key already used by an earlier line, past
 *   {@link MAX_DETECTOR_LINES}); `lines` counts the non-blank lines
 */
export function readDetectorOutput(
  file: DetectorFile,
  output: string,
  tick: number,
  defaults: Pick<Config, 'default_timeout' | 'default_retries'>,
): { specs: DetectedLine[]; problems: DetectorProblem[]; lines: number } {
  const specs: DetectedLine[] = [];
  const problems: DetectorProblem[] = [];
  const keys = new Map<string, number>();
  let lines = 0;
  const rows = output.split('\n');
  for (const [i, raw] of rows.entries()) {
    const text = raw.trim();
    if (text === '') continue;
    const line = i + 1;
    if (++lines > MAX_DETECTOR_LINES) {
      if (lines === MAX_DETECTOR_LINES + 1) problems.push({ line, reason: `more than ${MAX_DETECTOR_LINES} task lines in one run: this one and the rest are not read` });
      continue;
    }
    try {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new InvalidTaskError('line', `not JSON: ${(err as Error).message}`);
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidTaskError('line', 'not a JSON object of task fields');
      const given = validateFields(LINE, value as Record<string, unknown>);
      const { prompt: _prompt, name: _name, ...fields } = value as Record<string, unknown>;
      const prompt = [file.body, given.prompt?.trim() ?? ''].filter(Boolean).join('\n\n');
      if (prompt === '') throw new InvalidTaskError('prompt', 'prompt: missing (the line has none and the detector file no body)');
      const name = given.name ?? taskNameFrom(given.title ?? given.prompt ?? file.body);
      const spec = taskSpecFromFields(name, { ...file.fields, ...fields }, prompt, defaults, 'detector');
      spec.extra = { ...spec.extra, detector: file.name, tick: new Date(tick).toISOString() };
      const key = spec.dedupKey ?? `sha256:${crypto.createHash('sha256').update(text).digest('hex')}`;
      const earlier = keys.get(key);
      if (earlier !== undefined) {
        throw spec.dedupKey === null
          ? new InvalidTaskError('line', `the same as line ${earlier}`)
          : new InvalidTaskError('dedup_key', `dedup_key: ${JSON.stringify(key)} is the key of line ${earlier} already`);
      }
      keys.set(key, line);
      specs.push({ line, key, task: spec });
    } catch (err) {
      if (!(err instanceof InvalidTaskError)) throw err;
      problems.push({ line, reason: err.message });
    }
  }
  return { specs, problems, lines };
}

/** What one detector run printed, or why it failed. */
interface DetectorOutput {
  output: string;
  exitCode: number | null;
  /** Null when it exited 0 within its limits. */
  error: string | null;
}

/** The log files of a detector's newest run: `.agent-queue/logs/detectors/NAME.stdout.log` (and `.stderr.log`). */
export function detectorLogFile(paths: ProjectPaths, name: string, stream: 'stdout' | 'stderr'): string {
  return path.join(paths.logs, 'detectors', `${name}.${stream}.log`);
}

/** Runs a detector's command once (see the module's comment); its output also goes to its log files, replaced each run. */
async function runDetectorCommand(file: DetectorFile, o: FireDetectorsOptions & { tick: number }): Promise<DetectorOutput> {
  const stdoutLog = detectorLogFile(o.paths, file.name, 'stdout');
  const stderrLog = detectorLogFile(o.paths, file.name, 'stderr');
  fs.mkdirSync(path.dirname(stdoutLog), { recursive: true });
  fs.writeFileSync(stdoutLog, '');
  fs.writeFileSync(stderrLog, '');
  const agent = typeof file.fields.agent === 'string' ? file.fields.agent : 'claude';
  const env = agentEnv(o.env, o.config, agent, { AGENTQ_DETECTOR: file.name, AGENTQ_TICK: new Date(o.tick).toISOString() });
  const chunks: string[] = [];
  let bytes = 0;
  let tooMuch = false;
  let lastStderr = '';
  const stdout = (line: string, stop: (reason: string) => void) => {
    bytes += Buffer.byteLength(line) + 1;
    if (bytes > MAX_DETECTOR_OUTPUT_BYTES) {
      tooMuch = true;
      stop('too much output');
    } else chunks.push(line);
  };
  const started = Date.now();
  let result;
  try {
    result = await runAgentProcess(
      { attemptId: `detector-${crypto.randomUUID()}`, cwd: o.paths.root, env, deadline: started + file.timeoutMs, stdoutLog, stderrLog, signal: o.signal ?? new AbortController().signal },
      ['sh', '-c', file.command],
      { graceMs: o.config.kill_grace, onStdoutLine: stdout, onStderrLine: (line) => (lastStderr = line.trim() || lastStderr) },
    );
  } catch (err) {
    if (!(err instanceof AgentQueueError) || err.code !== 'spawn_failed') throw err;
    return { output: '', exitCode: null, error: `detect: ${err.message}` };
  }
  const excerpt = lastStderr ? `: ${lastStderr.slice(0, 300)}` : '';
  const output = chunks.join('\n');
  if (tooMuch) return { output, exitCode: result.exitCode, error: `detect: printed more than ${MAX_DETECTOR_OUTPUT_BYTES} bytes; stopped` };
  if (result.stoppedFor === 'timeout') return { output, exitCode: result.exitCode, error: `detect: timed out after ${file.timeoutMs} ms (detect_timeout); stopped` };
  if (result.stoppedFor === 'cancel') return { output, exitCode: result.exitCode, error: 'detect: stopped (the dispatcher is shutting down)' };
  if (result.exitCode !== 0) {
    const how = result.exitCode === null ? `was killed by signal ${result.signal ?? 'unknown'}` : `exited with code ${result.exitCode}`;
    return { output, exitCode: result.exitCode, error: `detect: ${how}${excerpt}` };
  }
  return { output, exitCode: 0, error: null };
}

export interface FireDetectorsOptions {
  paths: ProjectPaths;
  store: Store;
  config: Config;
  /** agentq's environment, for the detectors' (see `agentEnv`). */
  env: Record<string, string | undefined>;
  /** Clock, epoch ms. */
  now: () => number;
  /** Aborted: a detector running is stopped (its run then fails, creating nothing). */
  signal?: AbortSignal;
}

/** What {@link fireDetectors} did. */
export interface DetectorsResult {
  /** Each detector run, as recorded, with the tasks it created. */
  runs: Array<{ run: DetectorRun; created: Task[] }>;
  /** One line per detector file that cannot be used, naming the field (`recurring/NAME.md: …`). */
  problems: string[];
}

/**
 * Runs every detector whose schedule ticked since the last look (claiming the tick, so one
 * dispatcher runs it), one after the other, and takes in what they print: the lines whose key
 * the detector has not taken in before, each resolved as POST /v1/tasks resolves a spec (its
 * `depends_on` and `parent` among stored tasks, `dedup_key` against active tasks, the queue
 * depth: past `max_queue_depth` the remaining lines are skipped, to be printed again by the
 * next run). A line refused there is skipped and reported like a bad line.
 * @throws the store's errors and file-system errors other than a file that vanished or is refused
 */
export async function fireDetectors(o: FireDetectorsOptions): Promise<DetectorsResult> {
  const result: DetectorsResult = { runs: [], problems: [] };
  for (const f of recurringFiles(o.paths)) {
    if (o.signal?.aborted) break;
    const name = f.slice(0, -3);
    let file: DetectorFile;
    let tick: number | null;
    try {
      // Refused entries and files that are not text are reported by fireRecurring.
      const entry = readTaskFileEntry(path.join(o.paths.recurring, f));
      if (entry.kind !== 'file') continue;
      let text: string;
      try {
        text = decodeTaskFile(entry.content);
      } catch {
        continue;
      }
      if (!isDetectorFile(text)) continue;
      file = readDetectorFile(name, text, o.config);
      const now = o.now();
      const last = await o.store.getRecurringTick(name);
      if (last === null) {
        await o.store.recordRecurringTick(name, now, null, now); // first seen: start from now
        continue;
      }
      try {
        tick = await latestTick(file.schedule, file.timezone, last, now);
      } catch (err) {
        throw new InvalidTaskError('schedule', `schedule: ${JSON.stringify(file.schedule)} is not a valid cron expression (${(err as Error).message})`);
      }
    } catch (err) {
      if (!(err instanceof InvalidTaskError)) throw err;
      result.problems.push(`recurring/${f}: ${err.message}`);
      continue;
    }
    if (tick === null || !(await o.store.claimRecurringTick(name, tick))) continue;
    result.runs.push(await runDetector(file, tick, o));
  }
  return result;
}

/** Runs one detector for `tick` and records the run with the tasks it gives. */
async function runDetector(file: DetectorFile, tick: number, o: FireDetectorsOptions): Promise<{ run: DetectorRun; created: Task[] }> {
  const ranAt = o.now();
  const printed = await runDetectorCommand(file, { ...o, tick });
  const base = { name: file.name, tick, ranAt, exitCode: printed.exitCode, error: printed.error };
  const entries: DetectedTask[] = [];
  let problems: DetectorProblem[] = [];
  let lines = 0;
  let known = 0;
  if (printed.error === null) {
    const read = readDetectorOutput(file, printed.output, tick, o.config);
    ({ problems, lines } = read);
    const taken = new Set(await o.store.knownDetectorKeys(file.name, read.specs.map((s) => s.key)));
    for (const [i, s] of read.specs.entries()) {
      if (taken.has(s.key)) {
        known++;
        continue;
      }
      try {
        entries.push({ key: s.key, task: await resolveDirect(o.store, o.config, s.task, projectOrigin(o.paths)) });
      } catch (err) {
        if (err instanceof QueueFullError) {
          for (const rest of read.specs.slice(i)) if (!taken.has(rest.key)) problems.push({ line: rest.line, reason: `${err.message} (printed again, it is taken by a later run)` });
          break;
        }
        if (!(err instanceof InvalidTaskError)) throw err;
        problems.push({ line: s.line, reason: err.message });
      }
    }
    problems.sort((a, b) => a.line - b.line);
  }
  const run = { ...base, durationMs: o.now() - ranAt, problems, lines, known };
  const created = await o.store.recordDetectorRun(run, entries, o.now());
  return { run: { ...run, created: created.length, known: known + entries.length - created.length }, created };
}
