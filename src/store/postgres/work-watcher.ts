/**
 * `LISTEN` on one dedicated `pg.Client` (not from the pool: a pooled connection is handed to
 * other queries and its notifications would reach whoever holds it). `pg` never reconnects a
 * client: after a cut (server restart, `pg_terminate_backend`, network) it emits `'error'`,
 * then `'end'`. The watcher then opens a new client with backoff, `LISTEN`s again and calls
 * `onWork` once, since notifications sent in the gap are lost.
 */
import pg from 'pg';

export interface WorkWatcherOptions {
  /** What `pg` connects with (the pool's settings: URL, `search_path` options, timeouts). */
  client: pg.ClientConfig;
  /** The channel to `LISTEN` on (an identifier; quoted here). */
  channel: string;
  onWork: () => void;
  /** First wait before reconnecting, doubled per failed try up to `retryMaxMs`, ms. */
  retryFirstMs: number;
  retryMaxMs: number;
}

export class WorkWatcher {
  private client: pg.Client | null = null;
  private stopped = false;
  /** Failed tries since the last good connection (for the backoff). */
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Set by {@link stop}: the connection attempt in flight. */
  private connecting: Promise<void> | null = null;

  constructor(private readonly o: WorkWatcherOptions) {}

  /** The server pid of the listening connection, or null while there is none (tests). */
  get pid(): number | null {
    return (this.client as unknown as { processID?: number } | null)?.processID ?? null;
  }

  /** Connects and listens; on failure schedules a retry. Resolves either way after the first try. */
  start(): Promise<void> {
    return this.connect(false);
  }

  private connect(catchUp: boolean): Promise<void> {
    const attempt = (async () => {
      const client = new pg.Client(this.o.client);
      // Without a listener, the error of a cut connection would crash the process.
      client.on('error', () => {});
      client.on('end', () => this.lost(client));
      client.on('notification', (n) => {
        if (n.channel === this.o.channel && this.client === client) this.notify();
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${client.escapeIdentifier(this.o.channel)}`);
      } catch {
        await client.end().catch(() => {});
        this.retry();
        return;
      }
      if (this.stopped) {
        await client.end().catch(() => {});
        return;
      }
      this.client = client;
      this.failures = 0;
      if (catchUp) this.notify();
    })();
    this.connecting = attempt;
    return attempt;
  }

  private notify(): void {
    if (this.stopped) return;
    try {
      this.o.onWork();
    } catch {
      // A waker's own failure is not the watcher's; the poll still runs.
    }
  }

  /** The listening connection ended (not by {@link stop}): reconnect after the backoff. */
  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = null;
    this.retry();
  }

  private retry(): void {
    if (this.stopped || this.timer) return;
    const wait = Math.min(this.o.retryMaxMs, this.o.retryFirstMs * 2 ** this.failures++);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) void this.connect(true);
    }, wait);
    this.timer.unref();
  }

  /** Stops listening and closes the connection. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.connecting?.catch(() => {});
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => {});
  }
}
