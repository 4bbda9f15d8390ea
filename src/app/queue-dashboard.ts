import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter as BullBoardFastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { DeliveryQueue } from '../telematics/delivery-queue.js';
import { OperatorTokenVerifier } from '../common/auth/operator-token.js';
import { bearerToken } from '../common/auth/operator-auth.guard.js';
import { PROBLEM_CONTENT_TYPE, ProblemException } from '../common/errors/problem.js';

export const QUEUE_DASHBOARD_PATH = '/queues';
const COOKIE = 'dks_operator';
/** Scope needed to look at the queues: they reveal which cars have pending commands. */
const DASHBOARD_SCOPE = 'keys:read';

function cookieToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === COOKIE) return value.join('=');
  }
  return undefined;
}

/**
 * The BullMQ dashboard, read-only, behind an operator token. A browser opens
 * `/queues?token=<operator token>` once; the token is then kept in an HttpOnly cookie scoped to
 * the dashboard path.
 */
export async function mountQueueDashboard(
  fastify: FastifyInstance,
  queues: DeliveryQueue[],
  verifier: OperatorTokenVerifier,
): Promise<void> {
  const serverAdapter = new BullBoardFastifyAdapter();
  serverAdapter.setBasePath(QUEUE_DASHBOARD_PATH);
  createBullBoard({
    queues: queues.map((queue) => new BullMQAdapter(queue, { readOnlyMode: true })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Digital key deliveries' } },
  });
  await fastify.register(
    async (scope) => {
      scope.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
        const query = request.query as { token?: string } | undefined;
        const token = query?.token ?? bearerToken(request.headers.authorization) ?? cookieToken(request.headers.cookie);
        const fail = (problem: ProblemException) =>
          reply
            .status(problem.getStatus())
            .header('content-type', PROBLEM_CONTENT_TYPE)
            .send(problem.toDocument(request.url));
        if (!token)
          return fail(new ProblemException('unauthorized', `open ${QUEUE_DASHBOARD_PATH}?token=<operator token>`));
        try {
          const identity = await verifier.verify(token);
          if (!identity.scopes.includes(DASHBOARD_SCOPE)) {
            return fail(new ProblemException('forbidden', `the token lacks the scope ${DASHBOARD_SCOPE}`));
          }
        } catch {
          return fail(new ProblemException('unauthorized', 'the token is not valid'));
        }
        if (query?.token) {
          void reply.header(
            'set-cookie',
            `${COOKIE}=${token}; Path=${QUEUE_DASHBOARD_PATH}; HttpOnly; SameSite=Strict; Max-Age=3600`,
          );
        }
      });
      await scope.register(serverAdapter.registerPlugin());
    },
    { prefix: QUEUE_DASHBOARD_PATH },
  );
}
