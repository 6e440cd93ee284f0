/**
 * Dispatcher ids (the worker rows' and attempts' `workerId`): made by the dispatcher, read back
 * by the CLI (`agentq show`) without loading the dispatcher.
 */

/** A new dispatcher's id: `HOST:PID:RANDOM` (8 hex digits), unique across restarts and hosts. */
export function workerIdOf(host: string, pid: number): string {
  return `${host}:${pid}:${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * The host in a dispatcher id made by {@link workerIdOf} (known after the dispatcher left the
 * worker table, as attempts keep its id); null for an id of another form.
 */
export function hostOfWorker(workerId: string): string | null {
  const m = /^(.+):\d+:[0-9a-f]{8}$/.exec(workerId);
  return m ? m[1]! : null;
}
