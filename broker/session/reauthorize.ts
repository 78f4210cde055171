// Re-authorization of subscriptions a session already holds: when a persistent session is resumed
// (handlers/connect.ts) and when an auth source reports that its data changed (server.ts requests it). A
// subscription the current ACL denies is removed together with the messages queued for it, so an
// ACL revoked while a client was away, or while it stayed connected, takes effect
// (docs/hostile-inputs.md #32, mosquitto CVE-2021-34434).
import type { Logger } from 'pino';
import type { ClientConnection } from '../services.ts';
import { topicMatches } from '../router/topics.ts';
import type { Session, StoredSubscription } from './session.ts';

/** The decision per stored subscription object (a re-subscribe makes a new object, so it is not judged by an old verdict). */
export type SubscriptionVerdicts = Map<StoredSubscription, boolean>;
type Held = [key: string, sub: StoredSubscription];

/** Subscriptions of the session `conn` is about to resume that have no verdict yet; [] when there is nothing to check. */
export function uncheckedSubscriptions(conn: ClientConnection, verdicts: SubscriptionVerdicts | undefined): Held[] {
  if (verdicts === undefined) return [];
  const session = conn.broker.sessions.get(conn.clientId);
  if (session === undefined) return [];
  return [...session.subscriptions].filter(([, sub]) => !verdicts.has(sub));
}

/** Asks the auth hook about each subscription, as a SUBSCRIBE of the same filter and QoS would. */
export async function authorizeStoredSubscriptions(conn: ClientConnection, held: Held[], verdicts: SubscriptionVerdicts): Promise<void> {
  const allowed = await conn.broker.authorizeMany(conn.client!, 'subscribe', held.map(([key, sub]) => ({ topic: key, qos: sub.options.qos })));
  held.forEach(([, sub], i) => verdicts.set(sub, allowed[i] === true));
}

/** Removes the denied subscriptions the session still holds, and the messages no remaining subscription matches. */
export function dropDeniedSubscriptions(conn: ClientConnection, session: Session, verdicts: SubscriptionVerdicts): void {
  const denied = [...session.subscriptions].filter(([, sub]) => verdicts.get(sub) === false).map(([key]) => key);
  if (denied.length === 0) return;
  for (const key of denied) conn.broker.unsubscribe(session, key);
  const remaining = [...session.subscriptions.values()];
  session.dropUnmatched((topic) => remaining.some((s) => topicMatches(s.filter, topic)));
  conn.broker.log.info({ clientId: conn.clientId, filters: denied }, 'subscriptions no longer authorized were removed');
}

/**
 * Checks the subscriptions of connected clients again (an auth source reloaded its data). One
 * client at a time: a reload must not turn into a burst of queries against the auth backend.
 * Offline sessions are checked when they are resumed.
 */
export async function recheckConnectedSubscriptions(connections: Iterable<ClientConnection>): Promise<void> {
  for (const conn of [...connections]) {
    const session = conn.session;
    if (conn.state !== 'connected' || conn.authorizeAll || session === undefined || session.subscriptions.size === 0) continue;
    const verdicts: SubscriptionVerdicts = new Map();
    await authorizeStoredSubscriptions(conn, [...session.subscriptions], verdicts);
    if (conn.isClosed() || session.link !== conn) continue;
    dropDeniedSubscriptions(conn, session, verdicts);
  }
}

/** Runs recheckConnectedSubscriptions on request; requests during a pass fold into one more pass, never a parallel one. */
export class SubscriptionRecheck {
  private running = false;
  private again = false;
  private readonly connections: () => Iterable<ClientConnection>;
  private readonly log: Logger;

  constructor(connections: () => Iterable<ClientConnection>, log: Logger) {
    this.connections = connections;
    this.log = log;
  }

  request(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.passes().catch((err: unknown) => this.log.error({ err }, 're-checking subscriptions failed')).finally(() => {
      this.running = false;
    });
  }

  private async passes(): Promise<void> {
    do {
      this.again = false;
      await recheckConnectedSubscriptions(this.connections());
    } while (this.again);
  }
}
