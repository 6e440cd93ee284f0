/**
 * A dispatcher service on a cadence of its own (the lease keeper, the rescuer): its step
 * runs every `everyMs` after the previous one ended (never two at once), until stopped.
 * A step that throws is reported (`onError`) and the service goes on. Its timer does not
 * keep the process alive by itself.
 */
export class Periodic {
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<void> | null = null;
  private stopped = false;

  /**
   * @param name what the service is (`lease keeper`, `rescuer`)
   * @param everyMs pause between the end of one step and the start of the next, ms
   * @param step the service's work
   * @param onError told of what a step threw
   */
  constructor(
    readonly name: string,
    private readonly everyMs: number,
    private readonly step: () => Promise<unknown>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Schedules the first step after `everyMs`. */
  start(): void {
    this.stopped = false;
    this.schedule();
  }

  /** No further steps; resolves once a step in progress has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.current;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.current = this.step()
        .then(
          () => {},
          (err: unknown) => this.onError(err),
        )
        .finally(() => {
          this.current = null;
          this.schedule();
        });
    }, this.everyMs);
    this.timer.unref();
  }
}
