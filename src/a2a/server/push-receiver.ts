/**
 * `POST /a2a/push/:delegation` on `agentq serve`: the push notifications of the remote tasks
 * this queue delegated to (`agent: a2a`; src/agents/a2a/pushes.ts). Open like the agent card,
 * since a remote holds no token of this server, and authenticated instead by the delegation's
 * own token (`X-A2A-Notification-Token`, compared in constant time with the sha256 the ledger
 * keeps) before the body is read.
 *
 * The body (the remote task) is not used: a push only wakes the attempt tracking the
 * delegation, which reads the remote task itself (`tasks/get`) and records what it shows, so
 * the ledger keeps one writer and a push cannot record a state the remote does not report.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PUSH_ROUTE, PUSH_TOKEN_HEADER, pushTokenMatches, type DelegationPushes } from '../../agents/a2a/pushes.ts';
import { HttpError } from '../../server/errors.ts';
import type { Store } from '../../store/store.ts';

/** What the push route works with. */
export interface PushReceiverOptions {
  store: Store;
  /** The listeners woken by a push (the `a2a` runners of this process). */
  pushes: DelegationPushes;
}

/**
 * Adds the push route to `app` (before it listens). Answers: 204 when the token is the
 * delegation's (also for an ended delegation, or one no attempt of this process tracks: its
 * tracking polls); 401 `unauthorized` naming the header when the token is missing or wrong, or
 * the delegation (a positive integer id) does not exist or asked for no push. The body, any
 * content type, is drained unread.
 */
export async function registerPushReceiver(app: FastifyInstance, o: PushReceiverOptions): Promise<void> {
  /** The delegation a request's token opens. @throws HttpError 401 */
  const check = async (request: FastifyRequest): Promise<number> => {
    const raw = (request.params as { delegation?: string }).delegation ?? '';
    const token = request.headers[PUSH_TOKEN_HEADER];
    const refused = () => new HttpError('unauthorized', `${PUSH_TOKEN_HEADER}: ${token === undefined ? 'missing' : 'not the token of this delegation'}`, PUSH_TOKEN_HEADER);
    if (typeof token !== 'string' || token === '') throw refused();
    const id = /^[1-9][0-9]{0,14}$/.test(raw) ? Number(raw) : null;
    const d = id === null ? null : await o.store.getDelegation(id);
    if (!d || d.pushTokenSha256 === null || !pushTokenMatches(token, d.pushTokenSha256)) throw refused();
    return d.id;
  };

  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, payload, done) => {
      payload.on('error', (err) => done(err, undefined));
      payload.on('end', () => done(null, undefined));
      payload.resume();
    });
    scope.post(
      PUSH_ROUTE,
      {
        schema: {
          security: [],
          summary: "A2A push notification of a remote task this queue delegated to (the delegation's token in X-A2A-Notification-Token)",
          params: { type: 'object', properties: { delegation: { type: 'string', description: 'the delegation id (agentq delegations)' } } },
        },
        onRequest: async (request) => {
          (request as FastifyRequest & { delegationId?: number }).delegationId = await check(request);
        },
      },
      async (request, reply) => {
        o.pushes.notify((request as FastifyRequest & { delegationId?: number }).delegationId!);
        return reply.code(204).send();
      },
    );
  });
}
