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
 *
 * What a client sends before it calls a tool (`initialize`, `notifications/initialized`,
 * `tools/list`, `ping`) is answered from plain data (src/mcp/quick-answers.ts, the SDK's
 * answers); the SDK and the tools load at the first request that needs them (a tool call), so
 * an attempt whose agent calls no tool costs the dispatcher no SDK load (≈250 ms of CPU, per
 * `run --once`) and no SDK server per request (≈3 ms of CPU each, while agents start).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Config, ProjectPaths } from '../config/config.ts';
import type { Store } from '../store/store.ts';
import type { McpAttachment, McpAttempt, McpOpened } from './attach.ts';
import { quickAnswer, runningTaskOf, type RunningTask } from './quick-answers.ts';

/** A running host: its HTTP server, endpoint, and the store connection its requests need, opening while the agent starts. */
interface Serving {
  server: http.Server;
  url: string;
  store: Promise<Store>;
}

/** The SDK's HTTP transport and the tools. */
interface Sdk {
  StreamableHTTPServerTransport: typeof import('@modelcontextprotocol/sdk/server/streamableHttp.js').StreamableHTTPServerTransport;
  createMcpServer: typeof import('./server.ts').createMcpServer;
}

/** Largest request body the host reads itself to answer quickly, bytes; larger ones (and chunked ones) go to the SDK as they are. */
const QUICK_BODY_MAX = 64 * 1024;

/** The body of `req` as text (it has a `content-length` ≤ {@link QUICK_BODY_MAX}). */
function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
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
function refusal(res: http.ServerResponse, status: number, message: string, headers: Record<string, string> = {}, code = -32000): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
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
   * the host started if it was not running: listening at once, while the store connection
   * opens (the agent starts meanwhile; its requests wait for it, and get 500 with the reason,
   * logged, if it failed).
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

  /** The SDK's transport and the tools: loaded here, at the first request that needs them, so only agents that call a tool make the dispatcher pay for them. */
  private static async loadSdk(): Promise<Sdk> {
    const [{ StreamableHTTPServerTransport }, { createMcpServer }] = await Promise.all([
      import('@modelcontextprotocol/sdk/server/streamableHttp.js'),
      import('./server.ts'),
    ]);
    return { StreamableHTTPServerTransport, createMcpServer };
  }

  private async start(): Promise<Serving> {
    const { paths, config } = this.options;
    // No checkpoint timer of its own: the dispatcher's connection checkpoints the same WAL.
    const store = import('../store/open-store.ts').then(({ openStore }) => openStore(config.store, paths.root, { checkpointIntervalMs: 0 }));
    store.catch(() => {}); // reported by the requests that wait for it
    let sdk: Promise<Sdk> | null = null;
    const loadSdk = () => (sdk ??= McpHttpHost.loadSdk());
    /** The running task of each open attempt, looked up once. */
    const running = new WeakMap<McpAttempt, Promise<RunningTask | null>>();
    const runningTask = (attempt: McpAttempt): Promise<RunningTask | null> => {
      let r = running.get(attempt);
      if (!r) {
        r = store.then((s) => runningTaskOf(s, { AGENTQ_TASK_ID: String(attempt.taskId), AGENTQ_ATTEMPT_ID: attempt.attemptId }));
        running.set(attempt, r);
      }
      return r;
    };
    const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
      const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
      const attempt = token === undefined ? undefined : this.attempts.get(token);
      if (!attempt) return refusal(res, 401, 'unauthorized: not an open attempt of this dispatcher');
      if (req.method !== 'POST') return refusal(res, 405, 'method not allowed (stateless server: POST only)', { allow: 'POST' });
      let parsedBody: unknown;
      const length = Number(req.headers['content-length']);
      if (req.headers['content-length'] !== undefined && length <= QUICK_BODY_MAX) {
        try {
          parsedBody = JSON.parse(await readBody(req));
        } catch {
          // The SDK's answer to a body that is no JSON (it has been read: the SDK cannot read it again).
          return refusal(res, 400, 'Parse error: Invalid JSON', {}, -32700);
        }
        const quick = await quickAnswer(parsedBody, req.headers, { runningTask: () => runningTask(attempt), config });
        if (quick?.status === 202) return void res.writeHead(202).end();
        if (quick) return void res.writeHead(200, { 'content-type': 'application/json' }).end(quick.body);
      }
      const [{ StreamableHTTPServerTransport, createMcpServer }, s] = await Promise.all([loadSdk(), store]);
      const server = createMcpServer({ store: s, paths, config, runningTask: await runningTask(attempt), log: this.log });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on('close', () => void server.close().catch(() => {}));
      await server.connect(transport);
      await transport.handleRequest(req, res, parsedBody);
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
      await store.then((s) => s.close()).catch(() => {});
      throw err;
    }
    const { port } = server.address() as AddressInfo;
    return { server, url: `http://127.0.0.1:${port}/mcp`, store };
  }
}

/** Stops a host: no new connections, open ones cut (their agents have exited), the store closed. */
async function stop(s: Serving): Promise<void> {
  const closed = new Promise<void>((resolve) => s.server.close(() => resolve()));
  s.server.closeAllConnections();
  await closed;
  await (await s.store).close();
}
