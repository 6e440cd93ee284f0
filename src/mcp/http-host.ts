/**
 * agentq's MCP server for the agents a dispatcher starts, served from the dispatcher's own
 * process over streamable HTTP (stateless: each POST is answered by a fresh
 * `createMcpServer`, src/mcp/server.ts) on 127.0.0.1, instead of an `agentq mcp` process per
 * attempt: Claude Code connects it before its first turn (`alwaysLoad`), and a process per
 * attempt made every task wait for node, the MCP SDK and the store to load (≈0.5–1.5 s).
 *
 * Each attempt gets its own bearer token (32 random bytes), valid from `open` to `close`; the
 * token names the attempt, so what its agent submits are its task's subtasks (as
 * `AGENTQ_TASK_ID` / `AGENTQ_ATTEMPT_ID` do for `agentq mcp`: `runningTaskOf`). The server
 * listens from the first `open` (the SDK, the tools and a store connection on the
 * dispatcher's store URL load meanwhile, while the agent starts) until `lingerMs` after the
 * last open attempt closed (the SDK stays in the module cache): one attempt after another
 * reuses it instead of each paying a new server and store connection (8–15 ms).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Config, ProjectPaths } from '../config/config.ts';
import type { Store } from '../store/store.ts';
import type { McpAttachment, McpAttempt, McpOpened } from './attach.ts';

/** A running host: its HTTP server, endpoint, and what its requests need, loading while the agent starts. */
interface Serving {
  server: http.Server;
  url: string;
  loaded: Promise<Loaded>;
}

/** The SDK's HTTP transport, the tools and a store connection. */
interface Loaded {
  StreamableHTTPServerTransport: typeof import('@modelcontextprotocol/sdk/server/streamableHttp.js').StreamableHTTPServerTransport;
  createMcpServer: typeof import('./server.ts').createMcpServer;
  runningTaskOf: typeof import('./server.ts').runningTaskOf;
  store: Store;
}

/** Options of {@link McpHttpHost}. */
export interface McpHttpHostOptions {
  paths: ProjectPaths;
  /** `store` (the URL in force) is opened; `max_subtasks`, `remotes`… are read by the tools. */
  config: Config;
  /** Where the tools' log lines go. Default stderr. */
  log?: (line: string) => void;
  /**
   * How long the host keeps listening once no attempt is open, in ms (default
   * {@link MCP_HOST_LINGER_MS}; 0: it stops with its last attempt). While it lingers it does
   * not keep the process alive.
   */
  lingerMs?: number;
}

/** Default {@link McpHttpHostOptions.lingerMs}: 2 s, longer than a dispatcher takes from one attempt's end to the next claim's start. */
export const MCP_HOST_LINGER_MS = 2_000;

/** The JSON-RPC error body of a refused request (no request id is known). */
function refusal(res: http.ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

/**
 * agentq's MCP server over HTTP for the attempts of one dispatcher (see the module comment).
 * Endpoint: `POST /mcp` with `Authorization: Bearer <token>`; an unknown token gets 401, other
 * methods 405 (stateless: no server-sent stream, no session to delete).
 */
export class McpHttpHost implements McpAttachment {
  private serving: Promise<Serving> | null = null;
  /** Open attempts by token. */
  private readonly attempts = new Map<string, McpAttempt>();
  private readonly log: (line: string) => void;
  /** The stop due once the host has lingered, while no attempt is open. */
  private lingering: NodeJS.Timeout | null = null;

  constructor(private readonly options: McpHttpHostOptions) {
    this.log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  }

  /**
   * The attempt's declaration: `{ type: 'http', url, headers: { Authorization }, alwaysLoad }`,
   * the host started if it was not running: listening at once, while the SDK, the tools and
   * the store connection load (the agent starts meanwhile; its requests wait for them, and get
   * 500 with the reason, logged, if loading failed).
   * @throws when there is no port to listen on
   */
  async open(attempt: McpAttempt): Promise<McpOpened> {
    // Counted before the host is awaited, so a close meanwhile does not stop the host under it.
    const token = randomBytes(32).toString('base64url');
    this.attempts.set(token, attempt);
    if (this.lingering) clearTimeout(this.lingering);
    this.lingering = null;
    const serving = (this.serving ??= this.start());
    let url: string;
    try {
      let server: http.Server;
      ({ url, server } = await serving);
      server.ref();
    } catch (err) {
      this.attempts.delete(token);
      if (this.serving === serving) this.serving = null;
      throw err;
    }
    return {
      spec: { type: 'http', url, headers: { Authorization: `Bearer ${token}` }, alwaysLoad: true },
      close: async () => {
        this.attempts.delete(token);
        const idle = () => this.attempts.size === 0 && this.serving === serving;
        if (!idle()) return;
        const s = await serving;
        const lingerMs = this.options.lingerMs ?? MCP_HOST_LINGER_MS;
        if (lingerMs > 0 && idle()) {
          s.server.unref();
          if (this.lingering) clearTimeout(this.lingering);
          this.lingering = setTimeout(() => {
            this.lingering = null;
            if (!idle()) return;
            this.serving = null;
            void stop(s).catch(() => {});
          }, lingerMs).unref();
          return;
        }
        if (!idle()) return;
        this.serving = null;
        await stop(s).catch(() => {});
      },
    };
  }

  /** Open attempts (tokens that are valid now). */
  get openAttempts(): number {
    return this.attempts.size;
  }

  /** What requests need: loaded here, not with the dispatcher, so only runs that give Claude Code the server pay for the SDK. */
  private async load(): Promise<Loaded> {
    const { paths, config } = this.options;
    const [{ StreamableHTTPServerTransport }, { createMcpServer, runningTaskOf }, { openStore }] = await Promise.all([
      import('@modelcontextprotocol/sdk/server/streamableHttp.js'),
      import('./server.ts'),
      import('../store/open-store.ts'),
    ]);
    // No checkpoint timer of its own: the dispatcher's connection checkpoints the same WAL.
    const store = await openStore(config.store, paths.root, { checkpointIntervalMs: 0 });
    return { StreamableHTTPServerTransport, createMcpServer, runningTaskOf, store };
  }

  private async start(): Promise<Serving> {
    const { paths, config } = this.options;
    const loaded = this.load();
    loaded.catch(() => {}); // reported by the requests that wait for it
    const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
      const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
      const attempt = token === undefined ? undefined : this.attempts.get(token);
      if (!attempt) return refusal(res, 401, 'unauthorized: not an open attempt of this dispatcher');
      if (req.method !== 'POST') return refusal(res, 405, 'method not allowed (stateless server: POST only)', { allow: 'POST' });
      const { StreamableHTTPServerTransport, createMcpServer, runningTaskOf, store } = await loaded;
      const env = { AGENTQ_TASK_ID: String(attempt.taskId), AGENTQ_ATTEMPT_ID: attempt.attemptId };
      const server = createMcpServer({ store, paths, config, runningTask: await runningTaskOf(store, env), log: this.log });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on('close', () => void server.close().catch(() => {}));
      await server.connect(transport);
      await transport.handleRequest(req, res);
    };
    const server = http.createServer((req, res) => {
      handle(req, res).catch((err: unknown) => {
        this.log(`agentq mcp (http): ${(err as Error)?.stack ?? String(err)}`);
        if (!res.headersSent) refusal(res, 500, (err as Error)?.message ?? String(err));
        else res.destroy();
      });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
    } catch (err) {
      await loaded.then((l) => l.store.close()).catch(() => {});
      throw err;
    }
    const { port } = server.address() as AddressInfo;
    return { server, url: `http://127.0.0.1:${port}/mcp`, loaded };
  }
}

/** Stops a host: no new connections, open ones cut (their agents have exited), the store closed. */
async function stop(s: Serving): Promise<void> {
  const closed = new Promise<void>((resolve) => s.server.close(() => resolve()));
  s.server.closeAllConnections();
  await closed;
  await (await s.loaded).store.close();
}
