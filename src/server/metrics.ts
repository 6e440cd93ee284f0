/**
 * GET /metrics: Prometheus text format (prom-client, a registry of its own per server).
 * Read from the store at each scrape (so every dispatcher on the store counts, across
 * restarts): tasks per state, running tasks, attempts, cost and tokens per agent. Counted
 * from this process's dispatcher events: task failures by end state, rate-limit pauses,
 * and the claim latency (from the time a task may run, its `run_after`, to the start of
 * its attempt).
 */
import client from 'prom-client';
import { isTerminal, TASK_STATES } from '../core/types.ts';
import type { DispatcherEvents } from '../events/events.ts';
import type { Store } from '../store/store.ts';

/** Claim latency buckets, seconds. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

export interface Metrics {
  registry: client.Registry;
  /** Stops following the dispatcher's events. */
  detach(): void;
}

/** Builds the registry; pass the dispatcher's events to count failures, pauses and claim latency. */
export function createMetrics(store: Store, events: DispatcherEvents | null): Metrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'agentq_' });

  new client.Gauge({
    name: 'agentq_tasks',
    help: 'Tasks in the store per state (queue depth: state="queued").',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const counts = await store.countByState();
      for (const s of TASK_STATES) this.set({ state: s }, counts[s] ?? 0);
    },
  });
  // One store read per scrape for the per-agent series.
  let usage: Promise<Awaited<ReturnType<Store['agentUsage']>>> | null = null;
  const readUsage = () => {
    usage ??= store.agentUsage(0).finally(() => setImmediate(() => (usage = null)));
    return usage;
  };
  new client.Gauge({
    name: 'agentq_running_tasks',
    help: 'Attempts running now, per agent.',
    labelNames: ['agent'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const a of await readUsage()) this.set({ agent: a.agent }, a.running);
    },
  });
  new client.Counter({
    name: 'agentq_attempts_total',
    help: 'Attempts started, per agent (every claim, including interrupted and rate-limited ones).',
    labelNames: ['agent'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const a of await readUsage()) this.inc({ agent: a.agent }, a.attempts);
    },
  });
  new client.Counter({
    name: 'agentq_cost_usd_total',
    help: 'Spend reported by agents, USD, per agent.',
    labelNames: ['agent'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const a of await readUsage()) this.inc({ agent: a.agent }, a.costUsd);
    },
  });
  new client.Counter({
    name: 'agentq_tokens_total',
    help: 'Tokens reported by agents, per agent and direction (input, output).',
    labelNames: ['agent', 'direction'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const a of await readUsage()) {
        this.inc({ agent: a.agent, direction: 'input' }, a.inputTokens);
        this.inc({ agent: a.agent, direction: 'output' }, a.outputTokens);
      }
    },
  });
  const failures = new client.Counter({
    name: 'agentq_task_failures_total',
    help: 'Tasks this server saw end in a state other than completed, per state.',
    labelNames: ['state'],
    registers: [registry],
  });
  const pauses = new client.Counter({
    name: 'agentq_rate_limit_pauses_total',
    help: 'Agents paused after a rate limit, per agent (seen by this server).',
    labelNames: ['agent'],
    registers: [registry],
  });
  const latency = new client.Histogram({
    name: 'agentq_claim_latency_seconds',
    help: 'From the time a task may run (created, retry backoff over, answered) to the start of its attempt, seconds.',
    labelNames: ['agent'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });

  const onFinished = (task: { state: (typeof TASK_STATES)[number] }) => {
    if (isTerminal(task.state) && task.state !== 'completed') failures.inc({ state: task.state });
  };
  const onPaused = (p: { agent: string }) => pauses.inc({ agent: p.agent });
  const onStarted = (claim: { task: { agent: string; runAfter: number; createdAt: number }; attempt: { startedAt: number } }) => {
    const ready = Math.max(claim.task.runAfter, claim.task.createdAt);
    latency.observe({ agent: claim.task.agent }, Math.max(0, claim.attempt.startedAt - ready) / 1000);
  };
  events?.on('task.finished', onFinished);
  events?.on('agent.paused', onPaused);
  events?.on('task.started', onStarted);
  return {
    registry,
    detach() {
      events?.off('task.finished', onFinished);
      events?.off('agent.paused', onPaused);
      events?.off('task.started', onStarted);
    },
  };
}
