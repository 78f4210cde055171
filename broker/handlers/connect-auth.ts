// Owns the CONNECT authentication decision, in one place: who the client is and what it may do
// without asking again. Two settings decide "anonymous", and they mean different things:
// - the listener's `allowAnonymous` (ListenerInfo.anonymousBypassesChain): a CONNECT with
//   neither user name nor password on that listener is admitted without asking the auth chain
//   (the embedded default config uses it on its local listener);
// - `authentication.allowAnonymous`: the auth chain (auth/chain.ts) admits a client that no
//   source of the chain claimed (every source ignored it).
// The result sets conn.client (the identity every later check uses) and conn.authorizeAll (skip
// per-message authorization), and maps a denial to its CONNACK reason code.
import type { AuthenticationResult, ConnectAttempt } from '../auth/hook.ts';
import { allowAllHook } from '../auth/hook.ts';
import type { Connection } from '../connection.ts';
import { RC } from '../protocol/reason-codes.ts';

/** A refused CONNECT: CONNACK with `code`, then close. */
export interface Refusal {
  refused: true;
  code: number;
  why: string;
}

export function refusal(code: number, why: string): Refusal {
  return { refused: true, code, why };
}

/** Authenticates the client of `conn`; undefined when admitted, a Refusal when not. */
export async function authenticateConnect(conn: Connection, attempt: ConnectAttempt): Promise<Refusal | undefined> {
  const broker = conn.broker;
  const anonymous = attempt.username === undefined && attempt.password === undefined;
  if (anonymous && conn.listener.anonymousBypassesChain) {
    conn.client = { attempt: withoutPassword(attempt), superuser: false, acl: undefined };
    conn.authorizeAll = broker.authorizesEverything;
    return undefined;
  }
  const result = await askChain(conn, attempt);
  if (conn.isClosed()) return undefined;
  broker.metrics.authDecisions.inc({ action: 'connect', result: result.outcome });
  if (result.outcome === 'deny') return refusal(denialCode(result.reason), `authentication denied by ${result.source ?? 'chain'}`);
  // An identity the source established (x509) replaces the CONNECT username for every later check.
  const identified = result.identity === undefined ? attempt : { ...attempt, username: result.identity };
  conn.client = { attempt: withoutPassword(identified), superuser: result.superuser, acl: result.acl };
  // A client-specific ACL must be evaluated unless the hook allows everything whatever the ACL.
  conn.authorizeAll = result.superuser || (broker.authorizesEverything && (result.acl === undefined || broker.authHook === allowAllHook));
  if (result.expiresAt !== undefined) conn.expireAt(result.expiresAt);
  return undefined;
}

/** The hook's answer; a hook that throws counts as an unavailable backend. */
async function askChain(conn: Connection, attempt: ConnectAttempt): Promise<AuthenticationResult> {
  try {
    return await conn.broker.authHook.authenticate(attempt);
  } catch (err) {
    conn.broker.log.error({ err, clientId: attempt.clientId }, 'authentication hook failed');
    return { outcome: 'deny', reason: 'unavailable', source: undefined };
  }
}

function denialCode(reason: Extract<AuthenticationResult, { outcome: 'deny' }>['reason']): number {
  if (reason === 'bad-credentials') return RC.BAD_USERNAME_OR_PASSWORD;
  return reason === 'unavailable' ? RC.SERVER_UNAVAILABLE : RC.NOT_AUTHORIZED;
}

function withoutPassword(a: ConnectAttempt): Omit<ConnectAttempt, 'password'> {
  return {
    clientId: a.clientId, username: a.username, peerHost: a.peerHost, listener: a.listener,
    protocolVersion: a.protocolVersion, certificate: a.certificate,
  };
}
