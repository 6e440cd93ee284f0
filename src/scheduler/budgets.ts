/**
 * Daily spend limits (`budgets.daily_usd` for the project, `agents.<name>.budgets.daily_usd`
 * per agent): which agents must pause, and until when.
 */
import type { Config } from '../config/config.ts';
import { accountOf, agentConfig } from '../config/project.ts';
import type { AgentUsage } from '../store/store.ts';

/**
 * The budget day that holds `now`: it starts at `dayStart` (`HH:MM`, local time of this
 * process) and ends at the same clock time the next calendar day (23 or 25 h across a DST
 * change). Epoch ms.
 */
export function budgetDay(now: number, dayStart: string): { start: number; end: number } {
  const [h, m] = dayStart.split(':').map(Number) as [number, number];
  const start = new Date(now);
  start.setHours(h, m, 0, 0);
  if (start.getTime() > now) start.setDate(start.getDate() - 1);
  const end = new Date(start);
  end.setDate(end.getDate() + 1);
  return { start: start.getTime(), end: end.getTime() };
}

/** An agent that spent its (or the project's) daily budget. */
export interface BudgetHold {
  agent: string;
  /** The account to pause (`accountOf` the agent). */
  account: string;
  /** Epoch ms: the next budget day's start. */
  until: number;
  /** E.g. `daily budget reached: $5.0123 of agents.claude.budgets.daily_usd $5`. */
  reason: string;
}

/**
 * The agents of `agents` that must pause until the budget day ends: each agent whose spend
 * today (`usage`, since {@link budgetDay}'s start) reached its `budgets.daily_usd`, and every
 * agent when their sum reached the project's `budgets.daily_usd`. Empty when no budget is set.
 */
export function budgetHolds(config: Config, agents: readonly string[], usage: readonly AgentUsage[], now: number): BudgetHold[] {
  const { end } = budgetDay(now, config.budgets.day_start);
  const spent = new Map(usage.map((u) => [u.agent, u.costUsd]));
  const usd = (n: number) => `$${n.toFixed(4)}`;
  const holds: BudgetHold[] = [];
  const project = config.budgets.daily_usd;
  const total = usage.reduce((sum, u) => sum + u.costUsd, 0);
  for (const agent of agents) {
    if (project !== undefined && total >= project) {
      holds.push({ agent, account: accountOf(config, agent), until: end, reason: `daily budget reached: ${usd(total)} of budgets.daily_usd $${project}` });
      continue;
    }
    const limit = agentConfig(config, agent).budgets.daily_usd;
    const own = spent.get(agent) ?? 0;
    if (limit !== undefined && own >= limit) {
      holds.push({ agent, account: accountOf(config, agent), until: end, reason: `daily budget reached: ${usd(own)} of agents.${agent}.budgets.daily_usd $${limit}` });
    }
  }
  return holds;
}
