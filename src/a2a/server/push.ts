/**
 * A2A push notifications, durable: configs live in the store (`A2aPushStore`), and the
 * callback deliverer (`HttpDeliverer`, src/server/callbacks.ts) POSTs the A2A task (JSON, as
 * `tasks/get` gives it, without history) to each config's URL once per version of its task
 * (`state:claims`: every state change, every new attempt), with the callbacks' retries
 * (`serve.callback_backoff`, `callback_tries`, `callback_timeout`). Pushes resume after a
 * restart, and tasks changed by another dispatcher on the store are pushed too.
 */
import type { PushNotificationConfig } from '@a2a-js/sdk';
import type { PushNotificationSender, PushNotificationStore } from '@a2a-js/sdk/server';
import { z } from 'zod';
import type { DeliverySource } from '../../server/callbacks.ts';
import { HTTP_URL } from '../../server/task-body.ts';
import type { A2aPushConfig, DueA2aPush, Store } from '../../store/store.ts';
import { invalidParams } from './errors.ts';
import { taskIdOf, toA2aTask } from './task-view.ts';

/** Most push configs one task may have. */
export const MAX_PUSH_CONFIGS = 10;

const text = (max: number) =>
  z
    .string({ error: (iss) => `${JSON.stringify(iss.input) ?? 'undefined'} is not a string` })
    .min(1, { error: 'empty' })
    .max(max, { error: `longer than ${max} characters` });

/** A `PushNotificationConfig` as a client sends it (other fields are ignored). */
const PUSH_CONFIG = z.looseObject({
  url: HTTP_URL,
  id: text(255).optional(),
  token: text(4096).optional(),
  authentication: z
    .looseObject({
      schemes: z.array(text(100), { error: 'not a list of scheme names' }).min(1, { error: 'empty' }).max(10, { error: 'more than 10 schemes' }),
      credentials: text(4096).optional(),
    })
    .optional(),
});

/** A push config as a request gives it: `id` null when the client gave none (it is then the task id). */
export type PushRequest = Omit<A2aPushConfig, 'taskId' | 'id'> & { id: string | null };

/**
 * Validates a push config; `field` is where it sits in the request (`pushNotificationConfig`,
 * `configuration.pushNotificationConfig`).
 * @throws A2AError -32602 naming the field (`….url: "ftp://x" is not an http or https URL`)
 */
export function pushRequestFrom(raw: unknown, field: string): PushRequest {
  const parsed = PUSH_CONFIG.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue?.path.length ? `${field}.${issue.path.join('.')}` : field;
    const missing = issue?.code === 'invalid_type' && (issue as { input?: unknown }).input === undefined;
    const why = missing ? 'required' : issue?.code === 'invalid_type' && issue.path.length === 0 ? 'not an object with a url' : (issue?.message ?? 'invalid');
    throw invalidParams(at, why);
  }
  const c = parsed.data;
  return {
    id: c.id ?? null,
    url: c.url,
    token: c.token ?? null,
    authentication: c.authentication ? { schemes: c.authentication.schemes, credentials: c.authentication.credentials ?? null } : null,
  };
}

/** The config a request asks for on task `taskId` (its id defaults to the task id as text). */
export function pushConfigFor(request: PushRequest, taskId: number): A2aPushConfig {
  return { ...request, taskId, id: request.id ?? String(taskId) };
}

/** The SDK's view of a stored config. */
function sdkConfig(c: A2aPushConfig): PushNotificationConfig {
  return {
    id: c.id,
    url: c.url,
    ...(c.token === null ? {} : { token: c.token }),
    ...(c.authentication === null ? {} : { authentication: { schemes: c.authentication.schemes, ...(c.authentication.credentials === null ? {} : { credentials: c.authentication.credentials }) } }),
  };
}

/**
 * Saves a validated config, at most {@link MAX_PUSH_CONFIGS} per task (replacing one by id
 * always works).
 * @throws A2AError -32602 naming `field` when the task has as many configs already
 */
export async function savePushConfig(store: Store, config: A2aPushConfig, now: number, field: string): Promise<void> {
  const existing = await store.listA2aPushConfigs(config.taskId);
  if (existing.length >= MAX_PUSH_CONFIGS && !existing.some((e) => e.id === config.id)) {
    throw invalidParams(field, `task ${config.taskId} already has ${existing.length} push notification configs (at most ${MAX_PUSH_CONFIGS}); delete one first`);
  }
  await store.saveA2aPushConfig(config, now);
}

/** The SDK's `PushNotificationStore` over the agentq store. `onSaved` is called after a save (to push the task as it is now). */
export class AgentqPushStore implements PushNotificationStore {
  constructor(
    private readonly store: Store,
    private readonly onSaved: () => void,
    private readonly now: () => number = Date.now,
  ) {}

  async save(taskId: string, config: PushNotificationConfig): Promise<void> {
    const id = taskIdOf(taskId);
    if (id === null) throw invalidParams('taskId', `${JSON.stringify(taskId)} names no task`);
    await savePushConfig(this.store, pushConfigFor(pushRequestFrom(config, 'pushNotificationConfig'), id), this.now(), 'pushNotificationConfig');
    this.onSaved();
  }

  async load(taskId: string): Promise<PushNotificationConfig[]> {
    const id = taskIdOf(taskId);
    return id === null ? [] : (await this.store.listA2aPushConfigs(id)).map(sdkConfig);
  }

  async delete(taskId: string, configId?: string): Promise<void> {
    const id = taskIdOf(taskId);
    if (id !== null) await this.store.deleteA2aPushConfig(id, configId ?? taskId);
  }
}

/**
 * The SDK's `PushNotificationSender`: sends nothing. The durable deliverer does, looking at
 * the store when the dispatcher reports a change (src/server/serve.ts) and on its poll; the
 * SDK's calls (one per streamed event, progress lines included) would only add looks.
 */
export const NO_SENDER: PushNotificationSender = { send: async () => {} };

/** The headers of a push: `X-A2A-Notification-Token`, and `Authorization: Bearer` when the config has Bearer credentials. */
function pushHeaders(c: A2aPushConfig): Record<string, string> {
  const headers: Record<string, string> = { 'x-agentq-task-id': String(c.taskId) };
  if (c.token !== null) headers['x-a2a-notification-token'] = c.token;
  const auth = c.authentication;
  if (auth?.credentials && auth.schemes.some((s) => s.toLowerCase() === 'bearer')) headers.authorization = `Bearer ${auth.credentials}`;
  return headers;
}

/** The due push notifications of the store, as a source of the callback deliverer. */
export function a2aPushSource(store: Store): DeliverySource<DueA2aPush> {
  return {
    claimDue: (now, leaseMs, limit) => store.claimDueA2aPushes(now, leaseMs, limit),
    attempts: ({ push }) => push.attempts,
    prepare: ({ push, task }) => ({ url: push.url, headers: pushHeaders(push), body: JSON.stringify(toA2aTask(task)) }),
    record: async ({ push, version }, t) => {
      await store.recordA2aPushTry(push.taskId, push.id, version, t);
    },
  };
}
