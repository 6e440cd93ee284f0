/**
 * `npm run bench:sse`: fan-out of GET /v1/events (Server-Sent Events) of a real
 * `agentq serve` to many clients.
 *
 * A fresh project and `bin/agentq serve` (config `concurrency: 2`); 100 clients (node:http,
 * in this process) subscribe to /v1/events; then 200 tasks (`agent: command`,
 * `command: ["true"]`) are POSTed one after another while the dispatcher runs them, so each
 * client should receive task.created, task.started and task.finished for every task.
 *
 * Figures:
 *   delivery latency  for task.created: client receipt − the event's `task.createdAt` (the
 *                     server's clock when it took the request, whole ms, so figures read
 *                     up to 1 ms high); for task.finished: receipt − `task.finishedAt`.
 *                     Receipt is the wall clock (sub-ms) when the chunk holding the event
 *                     reached the client's `data` handler. p50/p99/max over every
 *                     (event, client) pair.
 *   spread            per event, last client's receipt − first client's (same clock): what
 *                     fanning out to N sockets costs.
 *   RSS               of the server process: idle, with the clients connected, after every
 *                     event was delivered.
 * All clients share this process's event loop, so receipt times include its own work.
 *
 * Prints figures only; it never asserts timings. It exits 1 when delivery is incorrect:
 * every client must get the same events, each exactly once, ids strictly increasing by one
 * (none missing), and for each task created/started/finished once.
 *
 * Options (`node --import tsx bench/sse-fanout.ts …`, or `npm run bench:sse -- …`):
 *   --clients 100   SSE clients
 *   --tasks 200     tasks POSTed
 *   --keep          keep the temporary project
 */
import fs from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import type { Task } from '../src/core/types.ts';
import { makeProject } from '../test/fixtures/project.ts';
import { runMain } from './common.ts';
import { mib, startServe } from './serve-process.ts';

/** One event as a client received it. */
interface Received {
  id: number;
  event: string;
  /** Wall clock of receipt, epoch ms with sub-ms precision. */
  at: number;
  data: string;
}

interface Client {
  events: Received[];
  /** Bytes left after the last complete event. */
  buffer: string;
  req: http.ClientRequest;
  closed: boolean;
}

const nowEpoch = () => performance.timeOrigin + performance.now();

/** Connects to GET /v1/events; resolves once the 200 headers arrived (the server has subscribed it by then). */
function connect(url: string, onEvent: (c: Client) => void): Promise<Client> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}/v1/events`, { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`GET /v1/events: ${res.statusCode}`));
        res.resume();
        return;
      }
      const client: Client = { events: [], buffer: '', req, closed: false };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const at = nowEpoch();
        client.buffer += chunk;
        let end: number;
        let got = false;
        while ((end = client.buffer.indexOf('\n\n')) !== -1) {
          const block = client.buffer.slice(0, end);
          client.buffer = client.buffer.slice(end + 2);
          let id: number | null = null;
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) id = Number(line.slice(4));
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data = data ? `${data}\n${line.slice(6)}` : line.slice(6);
          }
          if (id === null) continue; // a `: ping` comment
          client.events.push({ id, event, at, data });
          got = true;
        }
        if (got) onEvent(client);
      });
      res.on('close', () => (client.closed = true));
      resolve(client);
    });
    req.on('error', reject);
  });
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function dist(values: number[]): string {
  const s = [...values].sort((a, b) => a - b);
  return `p50 ${quantile(s, 0.5).toFixed(2)} ms, p99 ${quantile(s, 0.99).toFixed(2)} ms, max ${quantile(s, 1).toFixed(2)} ms (n=${s.length})`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { clients: { type: 'string' }, tasks: { type: 'string' }, keep: { type: 'boolean' } } });
  const nClients = Number(values.clients ?? 100);
  const nTasks = Number(values.tasks ?? 200);
  if (!Number.isInteger(nClients) || nClients < 1) throw new Error(`--clients: ${values.clients} is not a positive integer`);
  if (!Number.isInteger(nTasks) || nTasks < 1) throw new Error(`--tasks: ${values.tasks} is not a positive integer`);

  const paths = makeProject({ concurrency: 2 });
  const server = await startServe(paths.root);
  const problems: string[] = [];
  const clients: Client[] = [];
  try {
    const rssIdle = await server.rssBytes();
    // Every client has seen task.finished for every task: done.
    const finishedSeen = new Map<Client, number>();
    let allDone: () => void = () => {};
    const done = new Promise<void>((r) => (allDone = r));
    // Per chunk: count the client's new task.finished events.
    const counted = new Map<Client, number>();
    const onEvent = (c: Client) => {
      let from = counted.get(c) ?? 0;
      let fin = finishedSeen.get(c) ?? 0;
      for (; from < c.events.length; from++) if (c.events[from]!.event === 'task.finished') fin++;
      counted.set(c, from);
      finishedSeen.set(c, fin);
      if (fin >= nTasks && clients.length === nClients && clients.every((o) => (finishedSeen.get(o) ?? 0) >= nTasks)) allDone();
    };
    const t0 = performance.now();
    const connected = await Promise.all(Array.from({ length: nClients }, () => connect(server.url, onEvent)));
    clients.push(...connected);
    const connectMs = performance.now() - t0;
    const rssConnected = await server.rssBytes();

    const posted: Task[] = [];
    const tPost = performance.now();
    for (let i = 1; i <= nTasks; i++) {
      const r = await fetch(`${server.url}/v1/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: `fan-${i}`, prompt: `Fan-out task ${i}.`, agent: 'command', command: ['true'] }),
      });
      if (r.status !== 201) throw new Error(`POST /v1/tasks: ${r.status} ${await r.text()}`);
      posted.push(((await r.json()) as { task: Task }).task);
    }
    const postMs = performance.now() - tPost;
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 120_000).unref());
    if ((await Promise.race([done, timeout])) === 'timeout') problems.push('not every client saw every task finish within 120 s');
    const deliverMs = performance.now() - tPost;
    const rssAfter = await server.rssBytes();
    for (const c of clients) c.req.destroy();

    // Correctness: the same consecutive ids for every client, each event once.
    const ids = clients.flatMap((c) => c.events.map((e) => e.id));
    const first = Math.min(...ids);
    const last = Math.max(...ids);
    const expected = last - first + 1;
    let badClients = 0;
    for (const [i, c] of clients.entries()) {
      const why: string[] = [];
      if (c.closed && c.events.length < expected) why.push('its stream closed early');
      if (c.events.length !== expected) why.push(`${c.events.length} events, expected ${expected}`);
      for (let k = 0; k < c.events.length; k++) {
        if (c.events[k]!.id !== first + k) {
          why.push(`event #${k} has id ${c.events[k]!.id}, expected ${first + k} (ids must rise by one)`);
          break;
        }
      }
      const perTask = new Map<number, string[]>();
      for (const e of c.events) {
        const d = JSON.parse(e.data) as { task?: Task };
        if (d.task) {
          const seen = perTask.get(d.task.id);
          if (seen) seen.push(e.event);
          else perTask.set(d.task.id, [e.event]);
        }
      }
      for (const t of posted) {
        const names = perTask.get(t.id)?.join(',') ?? '';
        if (names !== 'task.created,task.started,task.finished') {
          why.push(`task ${t.id}: got ${names || 'nothing'}`);
          break;
        }
      }
      if (why.length) {
        badClients++;
        if (badClients <= 5) problems.push(`client ${i}: ${why.join('; ')}`);
      }
    }
    const names = new Map<string, number>();
    for (const e of clients[0]!.events) names.set(e.event, (names.get(e.event) ?? 0) + 1);

    // Latencies and spread.
    const createdLat: number[] = [];
    const finishedLat: number[] = [];
    const receipts = new Map<number, number[]>();
    for (const c of clients) {
      for (const e of c.events) {
        const at = receipts.get(e.id);
        if (at) at.push(e.at);
        else receipts.set(e.id, [e.at]);
        if (e.event === 'task.created') createdLat.push(e.at - (JSON.parse(e.data) as { task: Task }).task.createdAt);
        else if (e.event === 'task.finished') {
          const f = (JSON.parse(e.data) as { task: Task }).task.finishedAt;
          if (f !== null) finishedLat.push(e.at - f);
        }
      }
    }
    const spread = [...receipts.values()].map((at) => Math.max(...at) - Math.min(...at));
    const deliveries = clients.reduce((n, c) => n + c.events.length, 0);

    const out = [
      `SSE fan-out of a real agentq serve: ${nClients} clients on GET /v1/events, ${nTasks} tasks POSTed one after another (agent command ["true"], concurrency 2); node ${process.version}, ${process.platform}`,
      `  connect ${nClients} clients:      ${connectMs.toFixed(0)} ms`,
      `  POST ${nTasks} tasks:            ${postMs.toFixed(0)} ms (${((nTasks / postMs) * 1000).toFixed(0)} tasks/s, sequential)`,
      `  all events delivered:     ${deliverMs.toFixed(0)} ms after the first POST; ${deliveries} deliveries (${((deliveries / deliverMs) * 1000).toFixed(0)}/s) of ${expected} events (${[...names].map(([n, k]) => `${n} ${k}`).join(', ')})`,
      `  task.created latency:     ${dist(createdLat)}  [receipt − task.createdAt; createdAt is whole ms]`,
      `  task.finished latency:    ${dist(finishedLat)}  [receipt − task.finishedAt]`,
      `  spread first→last client: ${dist(spread)}`,
      `  server RSS:               idle ${mib(rssIdle)}, ${nClients} clients connected ${mib(rssConnected)}, after delivery ${mib(rssAfter)} (${rssAfter >= rssIdle ? '+' : '-'}${mib(Math.abs(rssAfter - rssIdle))} from idle)`,
      `  exactly once, in order:   ${badClients ? `NO (${badClients} of ${nClients} clients wrong)` : `yes (every client: ${expected} events, ids ${first}…${last} consecutive, created/started/finished once per task)`}`,
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  } catch (err) {
    process.stderr.write(`${server.output()}\n`);
    throw err;
  } finally {
    for (const c of clients) c.req.destroy();
    const code = await server.stop();
    if (code !== 0) problems.push(`agentq serve exited ${code}: ${server.output().slice(-2000)}`);
    if (!values.keep) fs.rmSync(paths.root, { recursive: true, force: true });
    else process.stdout.write(`  kept ${paths.root}\n`);
  }
  for (const p of problems) process.stdout.write(`FAIL ${p}\n`);
  return problems.length ? 1 : 0;
}

runMain(main);
