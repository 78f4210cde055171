// Owns the broker's side of authorization: asking the auth hook (without I/O when it already
// knows), counting decisions, bounding how many questions one request keeps in flight, and the
// auth generation that tells which confirmed rights are older than the last reload of an auth source.
import type { Logger } from 'pino';
import { allowAllHook } from './auth/hook.ts';
import type { AclAction, AuthenticatedClient, AuthHook, AuthorizationRequest } from './auth/hook.ts';
import type { BrokerConfig } from './config.ts';
import type { BrokerMetrics } from './metrics.ts';

/**
 * Authorization calls one request (a SUBSCRIBE's filters, a session's stored subscriptions) keeps
 * in flight: with one async step per connection, this bounds what waits at an auth source to
 * 16 × connections, however many filters a packet carries.
 */
const AUTHORIZE_BATCH = 16;

/** One authorization question, for any client (a retained message's publisher may be offline). */
export interface AuthorizationCheck extends AuthorizationRequest {
  client: AuthenticatedClient;
}

/**
 * Whether per-message authorization can be skipped for every client: the hook allows everything,
 * or there are no authorization sources and noMatch is allow (then the chain can only answer allow
 * for a client that brought no ACL of its own; handlers/connect-auth.ts decides per client).
 */
export function authorizesEverything(hook: AuthHook, config: BrokerConfig): boolean {
  const authz = config.authorization;
  return hook === allowAllHook || (authz.chain.length === 0 && authz.noMatch === 'allow');
}

export class Authorization {
  readonly hook: AuthHook;
  readonly everything: boolean;
  private readonly metrics: BrokerMetrics;
  private readonly log: Logger;
  /** Bumped when an auth source reloads its data: rights confirmed before it are asked again. */
  generation = 0;

  constructor(hook: AuthHook, config: BrokerConfig, metrics: BrokerMetrics, log: Logger) {
    this.hook = hook;
    this.everything = authorizesEverything(hook, config);
    this.metrics = metrics;
    this.log = log;
  }

  /**
   * The decision when the hook knows it without I/O (superuser, cached), else undefined. Lets a
   * cached PUBLISH skip a promise and an event-loop turn per message.
   */
  known(client: AuthenticatedClient, request: AuthorizationRequest): boolean | undefined {
    const hook = this.hook;
    if (hook.authorizeSync === undefined) return undefined;
    let ok: boolean | undefined;
    try {
      ok = hook.authorizeSync(client, request);
    } catch {
      return undefined; // the async path decides and logs
    }
    if (ok !== undefined) this.metrics.authDecisions.inc({ action: request.action, result: ok ? 'allow' : 'deny' });
    return ok;
  }

  /** Asks the hook; a hook that fails denies (and is logged). */
  async ask(client: AuthenticatedClient, request: AuthorizationRequest): Promise<boolean> {
    let ok: boolean;
    try {
      ok = await this.hook.authorize(client, request);
    } catch (err) {
      this.log.error({ err, clientId: client.attempt.clientId }, 'authorization hook failed');
      ok = false;
    }
    this.metrics.authDecisions.inc({ action: request.action, result: ok ? 'allow' : 'deny' });
    return ok;
  }

  /** ask() for many topics of one client, AUTHORIZE_BATCH at a time; verdicts in order. */
  many(client: AuthenticatedClient, action: AclAction, requests: readonly { topic: string; qos: 0 | 1 | 2 }[]): Promise<boolean[]> {
    return this.each(requests.map((r) => ({ client, action, topic: r.topic, qos: r.qos, retain: false })));
  }

  /** Each check, known ones without I/O, AUTHORIZE_BATCH in flight at a time; verdicts in order. */
  async each(checks: readonly AuthorizationCheck[]): Promise<boolean[]> {
    const verdicts = new Array<boolean>(checks.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < checks.length) {
        const i = next++;
        const { client, action, topic, qos, retain } = checks[i]!;
        const request = { action, topic, qos, retain };
        verdicts[i] = this.known(client, request) ?? await this.ask(client, request);
      }
    };
    await Promise.all(Array.from({ length: Math.min(AUTHORIZE_BATCH, checks.length) }, worker));
    return verdicts;
  }
}
