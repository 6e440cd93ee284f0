/**
 * `notify:` targets: their kind, the id their notifications are stored under (a hash, so no
 * webhook URL, topic or command is written to the store), and how they are named to people
 * (`agentq status`) without their secrets.
 */
import crypto from 'node:crypto';
import type { NotifyTarget } from '../config/config.ts';

/**
 * Where a `notify:` target sends: exactly one of these keys (config.ts checks it). Here, not in
 * config.ts, so that `agentq status` (notify/status.ts) names targets without the config schema.
 */
export const NOTIFY_KINDS = ['webhook', 'ntfy', 'slack', 'command'] as const;

export type NotifyKind = (typeof NOTIFY_KINDS)[number];

/** The kind of a target: the one of `webhook`, `ntfy`, `slack`, `command` it gives (config checks there is exactly one). */
export function targetKind(t: NotifyTarget): NotifyKind {
  return NOTIFY_KINDS.find((k) => t[k] !== undefined) ?? 'webhook';
}

/**
 * The id a target's notifications are stored under: the first 16 hex digits of the sha256 of
 * its kind and destination (`on:`, tries and the like left out, so editing them keeps its
 * pending deliveries). Two targets with one destination share an id (and each notification).
 */
export function targetId(t: NotifyTarget): string {
  const kind = targetKind(t);
  return crypto.createHash('sha256').update(JSON.stringify([kind, t[kind]])).digest('hex').slice(0, 16);
}

/**
 * How a target is shown: `notify[0] ntfy https://ntfy.sh/…` — a URL by its origin only (the
 * path of a Slack webhook or an ntfy topic is its secret), a command as written.
 */
export function targetLabel(t: NotifyTarget, index: number): string {
  const kind = targetKind(t);
  const dest = t[kind];
  let shown: string;
  if (kind === 'command') shown = typeof dest === 'string' ? dest : JSON.stringify(dest);
  else {
    const u = new URL(String(dest));
    shown = `${u.origin}${u.pathname === '/' && !u.search ? '/' : '/…'}`;
  }
  return `notify[${index}] ${kind} ${shown}`;
}
