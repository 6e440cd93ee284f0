/**
 * `agentq serve`: a dispatcher (with its dispatch loop, as `agentq run`) and the HTTP API in
 * one process over one store, plus the callback deliverer, the live-event bridge, and the A2A
 * server (src/a2a/server/: agent card, JSON-RPC endpoint, push notification deliverer).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { a2aPushSource } from '../a2a/server/push.ts';
import { registerPushReceiver } from '../a2a/server/push-receiver.ts';
import { registerA2aRoutes } from '../a2a/server/routes.ts';
import { DelegationPushes } from '../agents/a2a/pushes.ts';
import { createRunners } from '../agents/registry.ts';
import type { AgentRunner } from '../agents/runner.ts';
import type { Config, ProjectPaths } from '../config/config.ts';
import { Dispatcher } from '../scheduler/dispatcher.ts';
import { DispatchLoop } from '../scheduler/loop.ts';
import type { DueA2aPush, Store } from '../store/store.ts';
import { buildApp } from './app.ts';
import { checkBind } from './auth.ts';
import { CallbackDeliverer, HttpDeliverer } from './callbacks.ts';
import { bridgeDispatcherEvents, EventHub } from './event-hub.ts';
import { createMetrics } from './metrics.ts';

/** The dashboard's build output in this checkout: `web/dist/`. */
export const DEFAULT_WEB_DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'web', 'dist');

export interface ServeOptions {
  paths: ProjectPaths;
  config: Config;
  store: Store;
  /** Address to listen on (`--host`, else config `serve.host`). */
  host: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** Resolved token (see `resolveToken`); null: none, then only a loopback host is allowed. */
  token: string | null;
  /** Agent runners; default `createRunners(config, paths, env)`. */
  runners?: Map<string, AgentRunner>;
  env?: Record<string, string | undefined>;
  /** Default {@link DEFAULT_WEB_DIST}; null: no dashboard. */
  webDist?: string | null;
  /** `: ping` interval of event streams, ms. Default 15,000. */
  pingMs?: number;
  /** How often pending callbacks and A2A push notifications are looked for, ms. Default 1000. */
  callbackPollMs?: number;
  logger?: FastifyServerOptions['logger'];
  /** Called with the dispatcher before it starts (e.g. to print its progress events). */
  onDispatcher?: (dispatcher: Dispatcher) => void;
}

/** A running `agentq serve`. */
export class AgentqServer {
  private closing: Promise<void> | null = null;

  private constructor(
    readonly dispatcher: Dispatcher,
    readonly app: FastifyInstance,
    readonly hub: EventHub,
    readonly callbacks: CallbackDeliverer,
    /** A2A push notifications (src/a2a/server/push.ts). */
    readonly pushes: HttpDeliverer<DueA2aPush>,
    private readonly loop: DispatchLoop,
    /** Settles when the dispatch loop ends; rejects when a tick fails. */
    readonly loopDone: Promise<void>,
    private readonly detach: () => void,
    /** `http://HOST:PORT` it listens on. */
    readonly url: string,
  ) {}

  /**
   * Starts the dispatcher (recovering dead dispatchers' tasks), its loop, the callback and
   * A2A push deliverers (pending deliveries resume) and the HTTP server (API, A2A, dashboard).
   * @throws UsageError for a host beyond loopback without a token (nothing started)
   */
  static async start(o: ServeOptions): Promise<AgentqServer> {
    checkBind(o.host, o.token);
    for (const d of [o.paths.done, o.paths.failed, o.paths.logs]) fs.mkdirSync(d, { recursive: true });
    const env = o.env ?? process.env;
    // Push notifications of the tasks this queue delegates, once the server listens (see below).
    const delegationPushes = new DelegationPushes();
    const runners = o.runners ?? createRunners(o.config, o.paths, env, { delegationPushes });
    const dispatcher = new Dispatcher({ paths: o.paths, store: o.store, config: o.config, runners, env });
    const events = dispatcher.events;
    o.onDispatcher?.(dispatcher);
    // An 'error' event without a listener would throw; the dispatcher survives these.
    let log: FastifyInstance['log'] | null = null;
    const onError = (err: Error) => log?.error({ err }, 'dispatcher error');
    events.on('error', onError);
    const hub = new EventHub();
    const unbridge = bridgeDispatcherEvents(events, hub, o.store);
    const metrics = createMetrics(o.store, events);
    const callbacks = new CallbackDeliverer({
      store: o.store,
      backoffMs: o.config.serve.callback_backoff,
      maxTries: o.config.serve.callback_tries,
      timeoutMs: o.config.serve.callback_timeout,
      ...(o.callbackPollMs === undefined ? {} : { pollMs: o.callbackPollMs }),
    });
    const kick = () => callbacks.kick();
    events.on('task.finished', kick);
    const pushes = new HttpDeliverer(a2aPushSource(o.store), {
      backoffMs: o.config.serve.callback_backoff,
      maxTries: o.config.serve.callback_tries,
      timeoutMs: o.config.serve.callback_timeout,
      ...(o.callbackPollMs === undefined ? {} : { pollMs: o.callbackPollMs }),
    });
    const kickPushes = () => pushes.kick();
    const changes = ['task.created', 'task.started', 'task.requeued', 'task.recovered', 'task.blocked', 'task.waiting', 'task.finished'] as const;
    for (const name of changes) events.on(name, kickPushes);
    const detach = () => {
      for (const name of changes) events.off(name, kickPushes);
      events.off('task.finished', kick);
      events.off('error', onError);
      unbridge();
      metrics.detach();
    };
    const wake = () => void dispatcher.pump().catch((err: unknown) => events.emit('error', err as Error));
    const app = await buildApp({
      store: o.store,
      config: o.config,
      paths: o.paths,
      token: o.token,
      events,
      hub,
      metrics,
      wake,
      webDist: o.webDist === undefined ? DEFAULT_WEB_DIST : o.webDist,
      ...(o.pingMs === undefined ? {} : { pingMs: o.pingMs }),
      ...(o.logger === undefined ? {} : { logger: o.logger }),
    });
    await registerA2aRoutes(app, { store: o.store, config: o.config, paths: o.paths, events, token: o.token, wake, kickPushes, ...(o.pingMs === undefined ? {} : { pingMs: o.pingMs }) });
    await registerPushReceiver(app, { store: o.store, pushes: delegationPushes });
    log = app.log;
    await dispatcher.start();
    const loop = new DispatchLoop(dispatcher, o.paths, o.config);
    const loopDone = loop.run();
    loopDone.catch(() => {}); // observed by the owner through `loopDone`
    try {
      await app.listen({ host: o.host, port: o.port });
    } catch (err) {
      loop.stop();
      await loopDone.catch(() => {});
      await dispatcher.stop();
      detach();
      throw err;
    }
    callbacks.start();
    pushes.start();
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : o.port;
    const host = o.host.includes(':') ? `[${o.host}]` : o.host;
    // Remotes push to serve.public_url, else to the address listened on (not a wildcard one).
    delegationPushes.setBase(o.config.serve.public_url ?? (isWildcardHost(o.host) ? null : `http://${host}:${port}`));
    return new AgentqServer(dispatcher, app, hub, callbacks, pushes, loop, loopDone, detach, `http://${host}:${port}`);
  }

  /**
   * Stops: no new requests (open event and log streams end), no new claims; `stop` (the
   * default, as on SIGINT) stops running agents and requeues their tasks without using an
   * attempt, `drain` waits for them to end. Callback and push requests in flight are left due. The
   * store stays open (its owner closes it). Idempotent.
   */
  close(mode: 'stop' | 'drain' = 'stop'): Promise<void> {
    this.closing ??= (async () => {
      await this.app.close();
      this.loop.stop();
      await this.loopDone.catch(() => {});
      await (mode === 'drain' ? this.dispatcher.drain() : this.dispatcher.stop());
      await this.callbacks.stop();
      await this.pushes.stop();
      this.detach();
    })();
    return this.closing;
  }
}

/** Whether `host` is a wildcard address (0.0.0.0, ::): no address a remote could be given. */
function isWildcardHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === '0.0.0.0' || h === '::' || h === '0:0:0:0:0:0:0:0';
}
