/**
 * `npm run demo`: agent-queue's main job on a bundled example project, offline.
 *
 * 1. copies examples/demo-project/ (minus its tasks/ and rules file) to a fresh temp dir,
 * 2. `agentq init` there, then drops examples/demo-project/tasks/*.md into the inbox,
 * 3. starts the scripted stand-in for the Anthropic Messages API on 127.0.0.1
 *    (test/fixtures/fake-anthropic.ts) with examples/demo-project/fake-api-rules.json,
 * 4. `agentq run --once` with the hermetic env of test/fixtures/claude-env.ts, so the real
 *    Claude Code CLI (node_modules/.bin/claude) talks to the stand-in, not to Anthropic,
 * 5. prints what happened: `agentq list`, the result files, one of them in full, the invalid
 *    task's reason and the files the agents changed; then where the temp project is.
 *
 * Exit code 0 when every task completed except the deliberately invalid one (and the agents'
 * edits are there), 1 otherwise. The repo copy of the demo project is never modified.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { DEFAULT_CLAUDE_MODELS } from '../src/config/config.ts';
import { splitFrontmatter } from '../src/config/task-file.ts';
import { PRIORITIES, type Priority, type Task } from '../src/core/types.ts';
import { CLAUDE_BIN, claudeEnv } from '../test/fixtures/claude-env.ts';
import { loadRulesFile, startFakeAnthropic } from '../test/fixtures/fake-anthropic.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const AGENTQ = path.join(REPO, 'bin', 'agentq');
const DEMO = path.join(REPO, 'examples', 'demo-project');
const TASKS = path.join(DEMO, 'tasks');
const RULES = path.join(DEMO, 'fake-api-rules.json');
/** The task file that is invalid on purpose (`priority: urgent`). */
const INVALID_TASK = 'deploy-friday';
/** The whole `agentq run --once` may take this long before the demo gives up. */
const RUN_LIMIT_MS = 120_000;

const tty = process.stdout.isTTY === true && !process.env.NO_COLOR;
const style = (code: string, reset: string) => (s: string) => (tty ? `\x1b[${code}m${s}\x1b[${reset}m` : s);
const bold = style('1', '22');
const dim = style('2', '22');
const green = style('32', '39');
const red = style('31', '39');

const say = (s = '') => process.stdout.write(`${s}\n`);
const step = (s: string) => say(`${bold('▸')} ${s}`);
const section = (s: string) => say(`\n${bold(`── ${s} ${'─'.repeat(Math.max(3, 60 - s.length))}`)}`);
const indent = (text: string, by = '  ') => text.replace(/\n+$/, '').split('\n').map((l) => (l.trim() ? by + l : '')).join('\n');
/** A path as the user can type it from the directory `npm run demo` ran in. */
const rel = (p: string) => {
  const r = path.relative(process.cwd(), p);
  return r && !r.startsWith('..') && !path.isAbsolute(r) ? r : p;
};

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs bin/agentq. `show`: stream its stdout/stderr to the terminal instead of capturing. */
function agentq(args: string[], env: NodeJS.ProcessEnv, show = false, limitMs = 30_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(AGENTQ, args, { env, stdio: show ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d));
    child.stderr?.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => {
      stderr += `\n(demo: agentq ${args[0]} took longer than ${limitMs / 1000}s and was stopped)\n`;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    }, limitMs);
    child.on('error', (err) => {
      stderr += String(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Copies a directory tree, leaving out the top-level entries in `skip`. */
function copyTree(from: string, to: string, skip: string[] = []): void {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    if (skip.includes(entry.name)) continue;
    const src = path.join(from, entry.name);
    const dst = path.join(to, entry.name);
    if (entry.isDirectory()) copyTree(src, dst);
    else if (entry.isFile()) fs.copyFileSync(src, dst);
  }
}

/** Files under `dir` (relative paths), leaving out `.agent-queue/`. */
function listFiles(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === '.agent-queue') continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(full, base));
    else if (entry.isFile()) out.push(path.relative(base, full));
  }
  return out.sort();
}

const listDir = (dir: string) => {
  try {
    return fs.readdirSync(dir).filter((f) => !f.startsWith('.')).sort();
  } catch {
    return [];
  }
};

/** The body of a result file on one line, shortened to `max` characters. */
function gist(file: string, max = 96): string {
  const text = splitFrontmatter(fs.readFileSync(file, 'utf8')).body.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function frontmatter(file: string): Record<string, unknown> {
  const { yaml } = splitFrontmatter(fs.readFileSync(file, 'utf8'));
  try {
    const parsed: unknown = yaml === null ? {} : YAML.parse(yaml);
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** One line describing a task file as agentq will see it. */
function describeTask(file: string): string {
  const name = path.basename(file, '.md');
  const fm = frontmatter(file);
  const priority = typeof fm.priority === 'string' ? fm.priority : 'default';
  const agent = typeof fm.agent === 'string' ? fm.agent : 'claude';
  let how = agent;
  if (agent === 'claude') {
    const model = typeof fm.model === 'string' ? fm.model : DEFAULT_CLAUDE_MODELS[priority as Priority];
    how = model ? `claude → ${model}` : 'claude';
  } else if (Array.isArray(fm.command)) how = `command: ${fm.command.join(' ')}`;
  const deps = Array.isArray(fm.depends_on) && fm.depends_on.length ? `, after ${fm.depends_on.join(', ')}` : '';
  const bad = (PRIORITIES as readonly string[]).includes(priority) ? '' : red('  ← not a valid priority');
  return `${name.padEnd(16)} ${priority.padEnd(9)} ${how}${deps}${bad}`;
}

/** The lines of `after` that are new compared with `before` (common head and tail removed). */
function markChanges(before: string | null, after: string): string {
  const b = before === null ? [] : before.replace(/\n$/, '').split('\n');
  const a = after.replace(/\n$/, '').split('\n');
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  return a.map((line, i) => (i >= head && i < a.length - tail ? green(`+ ${line}`.trimEnd()) : `  ${line}`.trimEnd())).join('\n');
}

async function main(): Promise<number> {
  const started = Date.now();
  say(bold('agent-queue demo') + dim(' — the real Claude Code CLI on a queue of task files, against a scripted API (offline, no key)'));
  say();

  // 1. A throwaway copy of the demo project.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-demo-'));
  const project = path.join(root, 'project');
  const claudeHome = path.join(root, 'claude-home');
  fs.mkdirSync(claudeHome);
  copyTree(DEMO, project, ['tasks', 'fake-api-rules.json']);
  step(`Copied ${rel(DEMO)} to ${project}`);

  // 2. agentq init, then the task files into the inbox.
  const baseEnv = { ...process.env };
  const init = await agentq(['init', project], baseEnv);
  if (init.code !== 0) {
    say(red(`agentq init failed (exit ${init.code}):\n${init.stdout}${init.stderr}`));
    return 1;
  }
  step('agentq init: created .agent-queue/ (inbox, done, failed, logs, config.yaml)');
  const taskFiles = listDir(TASKS).filter((f) => f.endsWith('.md'));
  const inbox = path.join(project, '.agent-queue', 'inbox');
  for (const f of taskFiles) fs.copyFileSync(path.join(TASKS, f), path.join(inbox, f));
  step(`Dropped ${taskFiles.length} task files from ${rel(TASKS)}/ into .agent-queue/inbox/:`);
  say(dim(`    ${'NAME'.padEnd(16)} ${'PRIORITY'.padEnd(9)} AGENT`));
  for (const f of taskFiles) say(`    ${describeTask(path.join(TASKS, f))}`);

  // 3. The stand-in API.
  const fake = await startFakeAnthropic(loadRulesFile(RULES));
  let ok = false;
  try {
    step(`Starting a scripted stand-in for the Anthropic API on ${fake.url}`);
    say(dim(`  answers come from ${rel(RULES)}; the claude CLI really runs the Bash commands it is sent`));

    // 4. The run.
    const env = claudeEnv(fake.url, claudeHome, { AGENTQ_CLAUDE_COMMAND: CLAUDE_BIN });
    step(`Running agentq run --once --project ${project}`);
    say(dim(`  ANTHROPIC_BASE_URL=${fake.url}, HOME=CLAUDE_CONFIG_DIR=${claudeHome}, IS_SANDBOX=1, claude = ${rel(CLAUDE_BIN)}`));
    say();
    const t0 = Date.now();
    const run = await agentq(['run', '--once', '--project', project], env, true, RUN_LIMIT_MS);
    say();
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    step(`agentq run --once exited ${run.code} after ${secs}s${run.code === 1 ? dim(` (1 = not every task completed; expected, as ${INVALID_TASK} is invalid)`) : ''}`);
    if (run.stderr) say(red(run.stderr.trim()));

    // 5. What happened.
    const listed = await agentq(['list', '--project', project], env);
    section('agentq list');
    say(indent(listed.stdout || listed.stderr));

    const q = path.join(project, '.agent-queue');
    const done = listDir(path.join(q, 'done'));
    const failed = listDir(path.join(q, 'failed'));
    section('Result files');
    for (const f of done) {
      const fm = frontmatter(path.join(q, 'done', f));
      const facts = [fm.agent, fm.model, fm.num_turns === undefined ? null : `${String(fm.num_turns)} turn(s)`].filter(Boolean).join(', ');
      say(`  done/${f.padEnd(22)} ${dim(facts)}`);
      say(`    ${gist(path.join(q, 'done', f))}`);
    }
    for (const f of failed) say(`  failed/${f.padEnd(20)} ${dim(String(frontmatter(path.join(q, 'failed', f)).status ?? ''))}`);

    const showcase = ['review-greeting.md', ...done].find((f) => done.includes(f));
    if (showcase) {
      section(`done/${showcase}`);
      say(indent(fs.readFileSync(path.join(q, 'done', showcase), 'utf8')));
    }

    const invalidFile = path.join(q, 'failed', `${INVALID_TASK}.md`);
    section(`Why ${INVALID_TASK} failed`);
    say(fs.existsSync(invalidFile) ? `  failed_reason: ${red(String(frontmatter(invalidFile).failed_reason))}` : red(`  no failed/${INVALID_TASK}.md`));

    section('What the agents changed in the project');
    const before = new Set(listFiles(DEMO));
    const changed: string[] = [];
    for (const f of listFiles(project)) {
      const now = fs.readFileSync(path.join(project, f), 'utf8');
      const orig = before.has(f) ? fs.readFileSync(path.join(DEMO, f), 'utf8') : null;
      if (orig === now) continue;
      changed.push(f);
      say(`  ${bold(f)} ${dim(orig === null ? '(new file)' : '(changed)')}`);
      say(indent(markChanges(orig, now), '    '));
    }
    if (changed.length === 0) say(red('  nothing changed'));

    // Did it go as expected?
    const tasks = JSON.parse((await agentq(['list', '--json', '--project', project], env)).stdout || '[]') as Task[];
    const problems: string[] = [];
    if (run.code !== 1) problems.push(`agentq run --once exited ${run.code}, expected 1 (only ${INVALID_TASK} does not complete)`);
    for (const f of taskFiles) {
      const name = path.basename(f, '.md');
      const want = name === INVALID_TASK ? 'invalid' : 'completed';
      const got = tasks.find((t) => t.name === name)?.state ?? 'missing';
      if (got !== want) problems.push(`${name} is ${got}, expected ${want}`);
    }
    const changelog = path.join(project, 'CHANGELOG.md');
    if (!fs.existsSync(changelog) || !fs.readFileSync(changelog, 'utf8').includes('farewell')) problems.push("the Bash tool's CHANGELOG.md edit is missing");
    if (!changed.includes(path.join('test', 'greet.test.js'))) problems.push('test/greet.test.js was not written');

    section('Look around');
    say(`  bin/agentq status --project ${project}`);
    say(`  bin/agentq show add-farewell --project ${project}`);
    say(`  bin/agentq logs write-tests --project ${project}   ${dim('(raw stream-json of the claude run)')}`);
    say(`  ls ${path.join(q, 'done')}`);
    say(dim(`  (remove it with: rm -rf ${root})`));
    say();
    const total = ((Date.now() - started) / 1000).toFixed(1);
    if (problems.length === 0) {
      say(green(bold(`✔ Demo OK in ${total}s: ${taskFiles.length - 1} tasks completed, ${INVALID_TASK} refused with a clear reason.`)));
      ok = true;
    } else {
      say(red(bold('✘ The demo did not go as expected:')));
      for (const p of problems) say(red(`  - ${p}`));
    }
  } finally {
    await fake.close();
  }
  return ok ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`demo: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
