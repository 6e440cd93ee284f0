/**
 * Store contract, the claim against its rule: seeded random work (tasks of several agents,
 * labels, groups, priorities, `runAt`s and dependencies; claims with random agents, labels,
 * accounts, limits and clocks; ends, requeues, questions, cancels, retries, pauses,
 * dependency failures) where every claim must take exactly the task the rule written out
 * here in TypeScript picks (or none when it picks none), and every batch (`claimMany`) the
 * tasks that rule picks one after the other, each counted running for the next, `countByState` must match the tasks,
 * and `failBlockedDependents` must fail exactly the queued tasks with a dependency that ended
 * unsuccessfully (transitively). Backends keep what makes a claim cheap on the side
 * (SQLite: lanes, `deps_open`, `delayed`, counts, `dep_failures`); this holds them to the
 * rule. A failure names its seed and step.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../../src/agents/runner.ts';
import { priorityRank, PRIORITIES, TASK_STATES, TERMINAL_STATES, type Claim, type Task, type TaskState } from '../../../src/core/types.ts';
import type { ClaimOptions } from '../../../src/store/store.ts';
import { prng } from '../../fixtures/prng.ts';
import { newTask, T0, type StoreFactory } from './shared.ts';

const AGENTS = ['command', 'claude', 'codex'];
const LABELS = ['gpu', 'arm'];
const GROUPS = [null, 'api', 'db'];

/** The task the claim rule picks (see `AttemptStore.claim`), or null. */
function expectedClaim(tasks: Task[], paused: Set<string>, o: ClaimOptions): Task | null {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const running = tasks.filter((t) => t.state === 'running');
  if (running.length >= o.concurrency) return null;
  const ready = tasks.filter(
    (t) =>
      t.state === 'queued' &&
      t.runAfter <= o.now &&
      o.agents.includes(t.agent) &&
      t.runsOn.every((l) => o.labels.includes(l)) &&
      !paused.has(o.accounts?.[t.agent] ?? t.agent) &&
      t.dependsOnIds.every((d) => byId.get(d)?.state === 'completed') &&
      (t.concurrencyGroup === null || running.filter((r) => r.concurrencyGroup === t.concurrencyGroup).length < (o.groupConcurrency ?? 1)) &&
      running.filter((r) => r.agent === t.agent).length < (o.agentConcurrency?.[t.agent] ?? Infinity),
  );
  ready.sort((a, b) => priorityRank(a.priority) - priorityRank(b.priority) || a.id - b.id);
  return ready[0] ?? null;
}

/**
 * The tasks a batch of up to `max` takes (see `AttemptStore.claimMany`): the rule's pick, marked
 * running, then the pick among what is left, until `max` or none.
 */
function expectedBatch(tasks: Task[], paused: Set<string>, o: ClaimOptions, max: number): Task[] {
  const copies = tasks.map((t) => ({ ...t }));
  const taken: Task[] = [];
  while (taken.length < max) {
    const t = expectedClaim(copies, paused, o);
    if (t === null) break;
    t.state = 'running';
    taken.push(t);
  }
  return taken;
}

/** The queued tasks `failBlockedDependents` must fail: a dependency ended unsuccessfully, transitively. */
function expectedDependencyFailures(tasks: Task[]): number[] {
  const state = new Map(tasks.map((t) => [t.id, t.state]));
  const bad = (s: TaskState | undefined) => s !== undefined && s !== 'completed' && TERMINAL_STATES.includes(s);
  const failed: number[] = [];
  for (let changed = true; changed; ) {
    changed = false;
    for (const t of tasks) {
      if (state.get(t.id) === 'queued' && t.dependsOnIds.some((d) => bad(state.get(d)))) {
        state.set(t.id, 'failed');
        failed.push(t.id);
        changed = true;
      }
    }
  }
  return failed.sort((a, b) => a - b);
}

/** Registers the claim fuzz for a backend's stores. */
export function claimFuzzContract(factory: StoreFactory): void {
  describe('the claim against its rule (seeded fuzz)', () => {
    for (const seed of [13, 1013]) {
      it(`seed ${seed}: every claim takes the task the rule picks; counts and dependency failures hold`, async () => {
        const { store } = await factory.open();
        const rand = prng(seed);
        const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
        const some = <T>(xs: readonly T[], p = 0.5): T[] => xs.filter(() => rand() < p);
        let now = T0;
        let n = 0;
        const claims: Claim[] = [];
        const all = () => store.listTasks({});
        const check = async (step: string) => {
          const tasks = await all();
          const counts = Object.fromEntries(TASK_STATES.map((s) => [s, tasks.filter((t) => t.state === s).length]));
          assert.deepEqual(await store.countByState(), counts, `seed ${seed}, ${step}: countByState`);
        };
        for (let step = 0; step < 260; step++) {
          const r = rand();
          const label = `step ${step}`;
          if (r < 0.3) {
            const tasks = await all();
            const batch = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => {
              const deps = rand() < 0.3 && tasks.length > 0 ? [...new Set(some(tasks, 0.05).map((t) => t.id))].slice(0, 3) : [];
              return newTask(
                `t${n++}`,
                {
                  agent: pick(AGENTS),
                  priority: pick(PRIORITIES),
                  runsOn: rand() < 0.2 ? some(LABELS) : [],
                  concurrencyGroup: rand() < 0.3 ? pick(GROUPS) : null,
                  runAt: rand() < 0.15 ? now + Math.floor(rand() * 5000) : null,
                },
                deps,
              );
            });
            await store.enqueue(batch, now);
          } else if (r < 0.6) {
            const o: ClaimOptions = {
              workerId: 'w1',
              now,
              leaseMs: 60_000,
              concurrency: 1 + Math.floor(rand() * 8),
              agents: some(AGENTS, 0.7),
              labels: some(LABELS),
              groupConcurrency: 1 + Math.floor(rand() * 2),
              agentConcurrency: rand() < 0.3 ? { [pick(AGENTS)]: 1 + Math.floor(rand() * 2) } : {},
              accounts: rand() < 0.3 ? { claude: 'shared', codex: 'shared' } : {},
            };
            const paused = new Set((await store.listPauses(now)).map((p) => p.agent));
            if (rand() < 0.5) {
              const expected = expectedClaim(await all(), paused, o);
              const claim = await store.claim(o);
              assert.equal(claim?.task.id ?? null, expected?.id ?? null, `seed ${seed}, ${label}: claim ${JSON.stringify(o)}`);
              if (claim) claims.push(claim);
            } else {
              const max = 1 + Math.floor(rand() * 5);
              const expected = expectedBatch(await all(), paused, o, max);
              const batch = await store.claimMany(o, max);
              assert.deepEqual(
                batch.map((c) => c.task.id),
                expected.map((t) => t.id),
                `seed ${seed}, ${label}: claimMany(${max}) ${JSON.stringify(o)}`,
              );
              claims.push(...batch);
            }
          } else if (r < 0.8 && claims.length > 0) {
            const c = claims.splice(Math.floor(rand() * claims.length), 1)[0]!;
            const how = rand();
            const end = { stats: emptyStats(), now };
            if (how < 0.5) await store.finish(c.attempt.id, { ...end, state: 'completed', attemptOutcome: 'completed', result: 'ok' });
            else if (how < 0.7) await store.finish(c.attempt.id, { ...end, state: 'failed', attemptOutcome: 'failed', reason: 'exit 1' });
            else if (how < 0.9) await store.requeue(c.attempt.id, { ...end, attemptOutcome: 'rate_limited', reason: '429', runAfter: now + Math.floor(rand() * 3000) });
            else await store.block(c.attempt.id, { ...end, question: 'which?' });
          } else if (r < 0.85) {
            const tasks = await all();
            const blocked = tasks.filter((t) => t.state === 'blocked');
            if (blocked.length) await store.answer(pick(blocked).id, 'this one', now);
            const ended = tasks.filter((t) => t.state === 'failed' || t.state === 'cancelled');
            if (ended.length && rand() < 0.5) await store.retry(pick(ended).id, now);
          } else if (r < 0.9) {
            const queued = (await all()).filter((t) => t.state === 'queued');
            if (queued.length) await store.cancel(pick(queued).id, now);
          } else if (r < 0.95) {
            await store.pauseAgent({ agent: pick([...AGENTS, 'shared']), until: now + Math.floor(rand() * 4000), reason: 'fuzz' });
          } else {
            const expected = expectedDependencyFailures(await all());
            const failed = (await store.failBlockedDependents(now)).map((t) => t.id).sort((a, b) => a - b);
            assert.deepEqual(failed, expected, `seed ${seed}, ${label}: failBlockedDependents`);
          }
          now += Math.floor(rand() * 600);
          await check(label);
        }
        await store.close();
      });
    }
  });
}
