/**
 * Push notifications of delegated tasks, within one `agentq serve` process: where a remote
 * A2A agent POSTs the changes of a remote task (`POST <base>/a2a/push/<delegation id>`, with a
 * per-delegation token whose sha256 the ledger keeps), and who is told when one arrives (the
 * `a2a` runner tracking that delegation, which then reads the remote task at once instead of
 * waiting for its next `tasks/get`). Polling stays the fallback: a dispatcher without a
 * reachable address (`agentq run`), a lost push, a restart on another address.
 * No SDK here: `agentq serve` loads this at start.
 */
import crypto from 'node:crypto';

/** The route of push notifications on `agentq serve` (Fastify pattern). */
export const PUSH_ROUTE = '/a2a/push/:delegation';

/** The path of delegation `id`'s push notifications. */
export const pushPath = (id: number) => `/a2a/push/${id}`;

/** The header the token travels in (A2A's `PushNotificationConfig.token`). */
export const PUSH_TOKEN_HEADER = 'x-a2a-notification-token';

/** A new push token: 32 random bytes, base64url (43 characters). */
export function newPushToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/** sha256 of a token, hex: what the ledger keeps (`Delegation.pushTokenSha256`). */
export function pushTokenDigest(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Whether `token` is the one whose digest is `digestHex` (constant time). */
export function pushTokenMatches(token: string, digestHex: string): boolean {
  const expected = Buffer.from(digestHex, 'hex');
  const given = Buffer.from(pushTokenDigest(token), 'hex');
  return expected.length === given.length && crypto.timingSafeEqual(expected, given);
}

/**
 * The push notifications of one dispatcher process: its public base URL, once known, and the
 * listeners of each delegation (the attempts tracking them).
 */
export class DelegationPushes {
  private base: string | null = null;
  private readonly listeners = new Map<number, Set<() => void>>();

  /**
   * Sets the base URL remotes reach this `agentq serve` at (`serve.public_url`, else its
   * listen address); null: none (no push notifications are asked for).
   */
  setBase(url: string | null): void {
    this.base = url === null ? null : url.replace(/\/+$/, '');
  }

  /** The URL a remote POSTs delegation `id`'s push notifications to, or null without a base. */
  urlFor(id: number): string | null {
    return this.base === null ? null : `${this.base}${pushPath(id)}`;
  }

  /** Calls `listener` at each push for delegation `id` until the returned function is called. */
  subscribe(id: number, listener: () => void): () => void {
    let set = this.listeners.get(id);
    if (!set) this.listeners.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(id) === set) this.listeners.delete(id);
    };
  }

  /**
   * A push for delegation `id` arrived (its token checked by the route): wakes its listeners.
   * @returns how many were woken (0: no attempt of this process tracks it; its own polling will see the change)
   */
  notify(id: number): number {
    const set = this.listeners.get(id);
    if (!set) return 0;
    for (const listener of [...set]) {
      try {
        listener();
      } catch {
        // A broken listener must not stop the others.
      }
    }
    return set.size;
  }
}
