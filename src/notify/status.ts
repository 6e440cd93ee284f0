/**
 * How the `notify:` targets stand, for `agentq status` (and GET /v1/status): per target its
 * deliveries (delivered, pending, retrying, given up) and its newest error, from the store.
 */
import type { Config } from '../config/config.ts';
import type { NotificationHealth, Store } from '../store/store.ts';
import type { NotifyEventName } from './events.ts';
import { targetId, targetLabel } from './targets.ts';

/** One target's deliveries (see {@link NotificationHealth}). */
export interface NotifyTargetStatus extends NotificationHealth {
  /** `notify[0] webhook https://example.com/…` (URLs by origin only); a target whose notifications remain but that this config no longer has: `(not in config) ID`. */
  label: string;
  /** The events it wants; empty for a target not in this config. */
  on: NotifyEventName[];
  /** Whether its newest try failed (an error newer than its last delivery): the receiver is down or refusing. */
  failing: boolean;
}

/** The status of each configured target (in config order), then of stored targets not in config. */
export async function notifyStatus(store: Store, config: Pick<Config, 'notify'>): Promise<NotifyTargetStatus[]> {
  const health = new Map((await store.notificationHealth()).map((h) => [h.target, h]));
  const empty = (target: string): NotificationHealth => ({ target, delivered: 0, pending: 0, retrying: 0, failed: 0, lastError: null, lastErrorAt: null, lastDeliveredAt: null });
  const failing = (h: NotificationHealth) => h.lastErrorAt !== null && h.lastErrorAt >= (h.lastDeliveredAt ?? 0);
  const out: NotifyTargetStatus[] = [];
  const seen = new Set<string>();
  config.notify.forEach((t, i) => {
    const id = targetId(t);
    const same = out.find((o) => o.target === id);
    if (same) {
      same.on = [...new Set([...same.on, ...t.on])]; // one destination listed twice: one target
      return;
    }
    seen.add(id);
    const h = health.get(id) ?? empty(id);
    out.push({ ...h, label: targetLabel(t, i), on: [...t.on], failing: failing(h) });
  });
  for (const h of health.values()) {
    if (!seen.has(h.target)) out.push({ ...h, label: `(not in config) ${h.target}`, on: [], failing: failing(h) });
  }
  return out;
}
