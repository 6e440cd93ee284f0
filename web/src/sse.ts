/**
 * Server-Sent Events over `fetch` (so the `Authorization` header can be sent, which
 * `EventSource` cannot), parsed by eventsource-parser. Reconnects after a drop with
 * `Last-Event-ID`, so the server replays what was missed (or sends `reset`).
 */
import { createParser } from 'eventsource-parser';
import { apiFetch } from './api.ts';

export type ConnectionState = 'connecting' | 'live' | 'reconnecting';

export interface EventStreamOptions {
  url: string;
  /** A parsed event: its name (`message` when none), its JSON data (the raw text if not JSON), its id. */
  onEvent: (name: string, data: unknown, id: string | null) => void;
  /** The stream is open (`resumed`: it was opened with a Last-Event-ID). */
  onOpen: (resumed: boolean) => void;
  onState: (state: ConnectionState) => void;
}

/** Reconnect delay: 1 s doubling to 15 s (the server's `retry:` field overrides the base). */
const MAX_DELAY_MS = 15_000;
/** The server sends `: ping` every 15 s; silence this long means a dead connection. */
const IDLE_TIMEOUT_MS = 45_000;

/** Opens the stream and keeps it open until the returned function is called. */
export function openEventStream(o: EventStreamOptions): () => void {
  let stopped = false;
  let lastId: string | null = null;
  let baseDelay = 1000;
  let ctrl: AbortController | null = null;

  const run = async (): Promise<void> => {
    let delay = baseDelay;
    while (!stopped) {
      ctrl = new AbortController();
      const c = ctrl;
      let idle: ReturnType<typeof setTimeout> | undefined;
      const touch = (): void => {
        clearTimeout(idle);
        idle = setTimeout(() => c.abort(), IDLE_TIMEOUT_MS);
      };
      try {
        const headers: Record<string, string> = { Accept: 'text/event-stream' };
        if (lastId !== null) headers['Last-Event-ID'] = lastId;
        touch();
        const res = await apiFetch(o.url, { headers, signal: c.signal, cache: 'no-store' });
        if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`);
        delay = baseDelay;
        o.onState('live');
        o.onOpen(lastId !== null);
        const parser = createParser({
          onEvent: (m) => {
            if (m.id !== undefined) lastId = m.id;
            let data: unknown = m.data;
            try {
              data = m.data === '' ? {} : JSON.parse(m.data);
            } catch {
              /* not JSON: hand over the text */
            }
            o.onEvent(m.event ?? 'message', data, m.id ?? null);
          },
          onRetry: (ms) => {
            baseDelay = Math.max(250, ms);
          },
        });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          touch();
          parser.feed(value);
        }
      } catch {
        /* dropped, refused or idle: reconnect below */
      } finally {
        clearTimeout(idle);
      }
      if (stopped) return;
      o.onState('reconnecting');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  };
  o.onState('connecting');
  void run();
  return () => {
    stopped = true;
    ctrl?.abort();
  };
}
