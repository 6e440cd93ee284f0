/**
 * The dashboard in a real browser: playwright-core drives Debian's chromium against a real
 * `agentq serve` (dispatcher, HTTP API and web/dist in one process) over a temp project,
 * with a token set, command tasks and the real Claude Code CLI against the scripted
 * Messages API (for spend and tokens).
 *
 * `AGENTQ_SCREENSHOTS=1` also writes the main views to docs/dashboard-*.png.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Locator, Page } from 'playwright-core';
import type { Task } from '../../src/core/types.ts';
import { ensureChromium, launchBrowser } from '../fixtures/browser.ts';
import { claudeEnv, makeClaudeSandbox } from '../fixtures/claude-env.ts';
import { startFakeAnthropic } from '../fixtures/fake-anthropic.ts';
import { AGENTQ, makeProject, REPO_ROOT } from '../fixtures/project.ts';
import { pidsWithEnv, waitFor } from '../fixtures/procs.ts';

const DIST_INDEX = path.join(REPO_ROOT, 'web', 'dist', 'index.html');
const SCREENSHOTS = process.env.AGENTQ_SCREENSHOTS === '1';
const TOKEN = 'dashboard-e2e-token';

function skipReason(): string | false {
  const missing = ensureChromium();
  if (missing) return missing;
  if (!fs.existsSync(DIST_INDEX)) {
    // A checkout without `npm ci`'s prepare step: build the dashboard once.
    const r = spawnSync('npm', ['run', 'build:web'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0 || !fs.existsSync(DIST_INDEX)) return `web/dist is missing and npm run build:web failed: ${r.stderr.trim().split('\n').pop()}`;
  }
  return false;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function shot(page: Page, name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  await page.evaluate(() => document.fonts.ready);
  await page.screenshot({ path: path.join(REPO_ROOT, 'docs', `dashboard-${name}.png`), fullPage: true });
}

describe('dashboard in chromium against agentq serve', { skip: skipReason(), concurrency: false, timeout: 300_000 }, () => {
  let fake: Awaited<ReturnType<typeof startFakeAnthropic>>;
  let server: ChildProcess;
  let serverLog = '';
  let base: string;
  let page: Page;
  let closeBrowser: () => Promise<void>;
  let root: string;
  const gates: string[] = [];

  /** Calls the API from the test (with the token), e.g. to create tasks the UI then shows. */
  async function api<T>(method: string, route: string, body?: unknown): Promise<T> {
    const res = await fetch(`${base}${route}`, {
      method,
      headers: { Authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    assert.ok(res.ok, `${method} ${route} → ${res.status} ${text}`);
    return JSON.parse(text) as T;
  }

  let port: number;
  let serverEnv: Record<string, string>;

  /** Starts `agentq serve` on `port` over the project and waits until /healthz answers. */
  async function startServer(): Promise<void> {
    server = spawn(AGENTQ, ['serve', '--project', root, '--port', String(port)], { env: serverEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (d) => (serverLog += d));
    server.stderr!.on('data', (d) => (serverLog += d));
    await waitFor(
      async () => {
        assert.equal(server.exitCode, null, `agentq serve exited: ${serverLog}`);
        return fetch(`${base}/healthz`).then((r) => r.ok, () => false);
      },
      30_000,
      `agentq serve on ${base}`,
    );
  }

  /** SIGTERM (SIGKILL after 15 s) and waits for the exit. */
  async function stopServer(): Promise<void> {
    if (!server || server.exitCode !== null || server.signalCode !== null) return;
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    const timer = setTimeout(() => server.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  const getTask = async (id: number): Promise<Task> => (await api<{ task: Task }>('GET', `/v1/tasks/${id}`)).task;

  /**
   * Waits until the locator is visible (attached, for `detached`); on a timeout the error
   * also says what the server holds and where a screenshot of the page was saved.
   */
  async function see(locator: Locator, what: string, timeout?: number, state?: 'detached'): Promise<void> {
    try {
      await locator.waitFor({ timeout, ...(state ? { state } : {}) });
    } catch (e) {
      const file = path.join(os.tmpdir(), `agentq-dashboard-failure-${Date.now()}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      const tasks = await api<{ tasks: Task[] }>('GET', '/v1/tasks').then(
        (b) => b.tasks.map((t) => `#${t.id} ${t.title}: ${t.state}`).join('; '),
        (err: Error) => err.message,
      );
      throw new Error(`${what}: ${(e as Error).message.split('\n')[0]}\nserver tasks: ${tasks}\npage: ${file}\nserver log:\n${serverLog.slice(-2000)}`);
    }
  }

  before(async () => {
    fake = await startFakeAnthropic({
      rules: [{ match: 'summarise the changelog', turns: [{ text: 'The changelog lists three fixes.', usage: { input_tokens: 52_000, output_tokens: 4_100 } }] }],
    });
    const paths = makeProject({ concurrency: 4, poll_interval: '200ms' });
    root = paths.root;
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    serverEnv = { ...claudeEnv(fake.url, makeClaudeSandbox().config), AGENTQ_TOKEN: TOKEN };
    await startServer();
    const browser = await launchBrowser();
    closeBrowser = browser.close;
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
    page.setDefaultTimeout(30_000);
  });

  after(async () => {
    for (const g of gates) fs.writeFileSync(g, '');
    await closeBrowser?.();
    await stopServer();
    await fake?.close();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('asks for the token once; a task submitted in the form appears on the board, runs, and shows its result', async () => {
    await page.goto(`${base}/`);
    // The static page loads without a token; the first API call's 401 opens the dialog.
    const dialog = page.getByRole('dialog', { name: 'API token' });
    await see(dialog, 'the token dialog');
    await dialog.getByLabel('Token').fill('wrong-token');
    await dialog.getByRole('button', { name: 'Use token' }).click();
    await see(dialog.getByText('The server refused that token'), 'the refused-token message');
    await dialog.getByLabel('Token').fill(TOKEN);
    await dialog.getByRole('button', { name: 'Use token' }).click();
    await see(dialog, 'the token dialog closing', undefined, 'detached');
    await see(page.getByRole('status').getByText('live'), 'the live badge');

    await page.getByRole('link', { name: 'Submit', exact: true }).click();
    // A field the server refuses is shown next to that field, and creates nothing.
    await page.getByLabel('Prompt').fill('shout this');
    await page.getByLabel('Agent').fill('nobody');
    await page.getByRole('button', { name: 'Submit task' }).click();
    const agentError = page.locator('#f-agent-error');
    await see(agentError, 'the agent field error');
    assert.match(await agentError.innerText(), /agent/i);
    assert.equal((await api<{ tasks: Task[] }>('GET', '/v1/tasks')).tasks.length, 0, 'a refused submission creates no task');

    // A command task that waits for a gate file, so the test sees it running, then upper-cases its prompt (stdin).
    const gate = path.join(root, 'gate-submit');
    gates.push(gate);
    await page.getByLabel('Title').fill('Shout the prompt');
    await page.getByLabel('Agent').fill('command');
    await page.getByLabel('Command').fill(`while [ ! -f '${gate}' ]; do sleep 0.1; done; tr a-z A-Z`);
    await page.getByLabel('Priority').selectOption('high');
    await page.getByLabel('Tags').fill('demo, e2e');
    await shot(page, 'submit');
    await page.getByRole('button', { name: 'Submit task' }).click();

    // Back on the board: the card moves to Running by itself (events), then to Completed.
    const running = page.getByRole('region', { name: 'Running' }).getByRole('link', { name: /Shout the prompt/ });
    await see(running, 'the card in Running');
    const card = await running.innerText();
    assert.match(card, /high/);
    assert.match(card, /command/);
    fs.writeFileSync(gate, '');
    const completed = page.getByRole('region', { name: 'Completed' }).getByRole('link', { name: /Shout the prompt/ });
    await see(completed, 'the card in Completed');

    await completed.click();
    await see(page.getByRole('heading', { name: /Shout the prompt/ }), 'the task heading');
    await see(page.getByLabel('state completed'), 'state completed');
    const result = page.getByRole('region', { name: 'Result' });
    assert.equal((await result.locator('pre').innerText()).trim(), 'SHOUT THIS');
    const attempts = page.getByRole('region', { name: 'Attempts' }).getByRole('row');
    assert.equal(await attempts.count(), 2, 'header + one attempt');
    assert.match(await attempts.nth(1).innerText(), /command[\s\S]*completed/);
    // The agent's output (stdout log) of that attempt.
    await see(page.getByLabel('Agent output').getByText('SHOUT THIS'), 'the output SHOUT THIS');
    await shot(page, 'task');
  });

  it('cancels a running task: its process stops and it ends cancelled', async () => {
    const { task } = await api<{ task: Task }>('POST', '/v1/tasks', { title: 'Sleep for a while', prompt: 'wait', agent: 'command', command: 'sleep 30' });
    await page.goto(`${base}/#/tasks/${task.id}`);
    await see(page.getByLabel('state running'), 'state running');
    // Every process of the attempt carries its id (AGENTQ_ATTEMPT_ID).
    const attemptId = (await api<{ attempts: Array<{ id: string }> }>('GET', `/v1/tasks/${task.id}`)).attempts[0]!.id;
    await waitFor(() => pidsWithEnv('AGENTQ_ATTEMPT_ID', attemptId).length > 0, 10_000, 'the sleep process');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await see(page.getByLabel('state cancelled'), 'state cancelled');
    assert.equal((await getTask(task.id)).state, 'cancelled');
    await waitFor(() => pidsWithEnv('AGENTQ_ATTEMPT_ID', attemptId).length === 0, 10_000, 'no process of the attempt left');
    // Retry is offered for a cancelled task; the board lists it under Ended.
    await see(page.getByRole('button', { name: 'Retry' }), 'the Retry button');
    await page.getByRole('link', { name: 'Board', exact: true }).first().click();
    await see(page.getByRole('region', { name: 'Ended' }).getByRole('link', { name: /Sleep for a while/ }), 'the cancelled card in Ended');
  });

  it('shows a delegated task with its remote, on the board and in the detail, and where it came from', async () => {
    // No remote named "buildbox" is configured: the task fails at once, naming it; its card and detail still say where it was to go.
    const { task } = await api<{ task: Task }>('POST', '/v1/tasks', { title: 'Build on the box', prompt: 'build', agent: 'a2a', remote: 'buildbox' });
    await page.goto(`${base}/#/`);
    const card = page.getByRole('region', { name: 'Ended' }).getByRole('link', { name: /Build on the box/ });
    await see(card, 'the delegated card in Ended');
    assert.match(await card.innerText(), /a2a → buildbox/);
    await card.click();
    await see(page.getByText('buildbox', { exact: true }), 'the Delegated to field');
    const origin = (await getTask(task.id)).origin!;
    await see(page.getByText(`${origin.host}:${origin.root}`, { exact: true }), 'the Origin field');
  });

  it('answers a blocked task: it runs again and the next attempt gets the answer', async () => {
    // Asks on the first attempt; on the next one (its prompt now holds the answer) prints the prompt.
    const command = `input=$(cat); case "$input" in *'The answer:'*) printf '%s' "$input";; *) printf '<<question>>Which colour?<</question>>';; esac`;
    const { task } = await api<{ task: Task }>('POST', '/v1/tasks', { title: 'Paint the fence', prompt: 'Paint the fence.', agent: 'command', command });
    await page.goto(`${base}/#/`);
    const blocked = page.getByRole('region', { name: 'Blocked' }).getByRole('link', { name: /Paint the fence/ });
    await see(blocked, 'the card in Blocked');
    assert.match(await blocked.innerText(), /Which colour\?/);
    await blocked.click();
    await see(page.getByLabel('state blocked'), 'state blocked');
    await see(page.getByText('Which colour?', { exact: true }), 'the question');
    await page.getByLabel('Answer').fill('Blue, please.');
    await page.getByRole('button', { name: 'Send answer' }).click();
    await see(page.getByLabel('state completed'), 'state completed after the answer');
    const result = await page.getByRole('region', { name: 'Result' }).locator('pre').innerText();
    assert.match(result, /Paint the fence\./);
    assert.match(result, /The answer: Blue, please\./);
    assert.equal((await getTask(task.id)).state, 'completed');
    assert.equal((await page.getByRole('region', { name: 'Attempts' }).getByRole('row').count()) - 1, 2, 'two attempts');
  });

  it('shows per-agent spend and tokens today, a usage-limit pause with its reset time, and spend per day', async () => {
    const { task } = await api<{ task: Task }>('POST', '/v1/tasks', { title: 'Summarise the changelog', prompt: 'Please summarise the changelog.', agent: 'claude', tags: ['docs'] });
    await waitFor(async () => !['queued', 'running'].includes((await getTask(task.id)).state), 120_000, 'the claude task to finish');
    const done = await getTask(task.id);
    assert.equal(done.state, 'completed', `${done.failedReason}\n${serverLog}`);
    assert.ok((done.stats.costUsd ?? 0) > 0, 'the claude task cost something');

    await page.getByRole('link', { name: 'Agents & spend' }).click();
    const claude = page.getByRole('row', { name: /^claude/ });
    await see(claude, 'the claude row');
    let cells = await claude.getByRole('cell').allInnerTexts();
    // Status, running, attempts, spend, tokens in, tokens out, paused until.
    assert.equal(cells[0], 'idle');
    assert.equal(cells[2], '1', 'one claude attempt today');
    assert.match(cells[3] ?? '', /^\$\d/);
    assert.notEqual(cells[3], '$0');
    assert.notEqual(cells[4], '0', 'input tokens today');
    const chart = page.getByRole('img', { name: /Spend per day/ });
    await see(chart, 'the spend chart');
    const label = (await chart.getAttribute('aria-label')) ?? '';
    assert.match(label, /Spend per day over 14 days, \$0\.\d+ in all/);

    // Claude Code reports its usage limit: the agent is paused until the reset, shown in local time (the page runs in UTC).
    const resetAt = (Math.floor(Date.now() / 1000) + 3 * 3600) * 1000;
    fake.setRules([{ match: 'translate the docs', turns: [{ text: `Claude AI usage limit reached|${resetAt / 1000}` }] }]);
    await api('POST', '/v1/tasks', { title: 'Translate the docs', prompt: 'Please translate the docs.', agent: 'claude' });
    await see(claude.getByText('paused', { exact: true }), 'the claude row paused', 60_000);
    cells = await claude.getByRole('cell').allInnerTexts();
    const until = claude.locator('time');
    assert.equal(await until.getAttribute('datetime'), new Date(resetAt).toISOString());
    assert.match(cells[6] ?? '', /\(in 3\.0 h\)/);
    assert.match(cells[6] ?? '', /usage limit/i);

    if (SCREENSHOTS) {
      // More on the board for the picture: a running, a scheduled and a failed task.
      const gate = path.join(root, 'gate-shot');
      gates.push(gate);
      await api('POST', '/v1/tasks', { title: 'Run the test suite', prompt: 'npm test', agent: 'command', command: `while [ ! -f '${gate}' ]; do sleep 0.1; done`, tags: ['ci'] });
      await api('POST', '/v1/tasks', { title: 'Nightly dependency update', prompt: 'update', agent: 'command', command: 'true', run_at: new Date(Date.now() + 3600_000).toISOString(), priority: 'low' });
      await api('POST', '/v1/tasks', { title: 'Lint the repository', prompt: 'lint', agent: 'command', command: 'echo "2 problems" >&2; exit 3', priority: 'critical' });
      await shot(page, 'agents');
      await page.getByRole('link', { name: 'Board', exact: true }).click();
      await see(page.getByRole('region', { name: 'Running' }).getByRole('link', { name: /Run the test suite/ }), 'the gated card in Running');
      await see(page.getByRole('region', { name: 'Ended' }).getByRole('link', { name: /Lint the repository/ }), 'the failed card in Ended');
      await shot(page, 'board');
    }
  });

  it('reconnects after the server restarts and, told to reset, reloads what changed meanwhile', async () => {
    const { task } = await api<{ task: Task }>('POST', '/v1/tasks', { title: 'Later task', prompt: 'later', agent: 'command', command: 'true', run_at: new Date(Date.now() + 3600_000).toISOString() });
    await page.goto(`${base}/#/`);
    await see(page.getByRole('region', { name: 'Queued' }).getByRole('link', { name: /Later task/ }), 'the scheduled card in Queued');
    await see(page.getByRole('status').getByText('live'), 'the live badge');
    await stopServer();
    await see(page.getByRole('status').getByText('reconnecting…'), 'the reconnecting badge');
    // Changed while no server runs, so no event tells of it: only a reload shows it.
    const cancel = spawnSync(AGENTQ, ['cancel', String(task.id), '--project', root], { encoding: 'utf8', env: serverEnv });
    assert.equal(cancel.status, 0, cancel.stderr);
    await startServer();
    // The new process's event ids are all larger: the old Last-Event-ID gets `reset`, the board reloads.
    await see(page.getByRole('status').getByText('live'), 'the live badge again', 60_000);
    await see(page.getByRole('region', { name: 'Ended' }).getByRole('link', { name: /Later task/ }), 'the cancelled card in Ended');
    assert.equal(await page.getByRole('region', { name: 'Queued' }).getByRole('link', { name: /Later task/ }).count(), 0);
  });
});
