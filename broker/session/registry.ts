// Owns the sessions of one broker and their life around connections: which connection is online
// for a client id, takeover, the persistent-session count (`limits.maxSessions`), and what
// happens when a connection ends: the will (now, after its delay, or at the end of the session)
// and the session's expiry. [MQTT-3.1.2-4, 3.1.2-5, 3.1.3-9, 3.1.4-3, 4.1]
import type { Logger } from 'pino';
import type { AuthenticatedClient } from '../auth/hook.ts';
import type { Authorization } from '../authorization.ts';
import { MAX_TIMER_MS } from '../clock.ts';
import type { BrokerMetrics } from '../metrics.ts';
import { RC } from '../protocol/reason-codes.ts';
import { newMessage } from '../router/message.ts';
import type { Message } from '../router/message.ts';
import type { Router } from '../router/router.ts';
import type { ClientConnection } from '../services.ts';
import { NEVER_EXPIRES, Session } from './session.ts';
import type { SessionEnv, WillMessage } from './session.ts';

export interface SessionRegistryDeps {
  env: SessionEnv;
  router: Router;
  /** Where a will is published: the broker's route (with replicas it reaches them all). */
  route: (msg: Message, publisher: AuthenticatedClient | undefined) => void;
  authorization: Authorization;
  metrics: BrokerMetrics;
  log: Logger;
}

export class SessionRegistry {
  readonly sessions = new Map<string, Session>();
  /** Sessions that outlive their connection (expiry > 0), counted against `limits.maxSessions`. */
  private readonly persistent = new Set<Session>();
  private readonly online = new Map<string, ClientConnection>();
  private readonly deps: SessionRegistryDeps;
  /**
   * With replicas (broker/replication-sessions.ts): a delayed will of `session` went out here, so
   * Redis must stop holding it (a replica adopting the session after a crash would send it again).
   */
  delayedWillSent: ((session: Session) => void) | undefined = undefined;
  /** With replicas: an offline session's expiry ended it here, so Redis lets go of it too. */
  sessionExpired: ((session: Session) => void) | undefined = undefined;

  constructor(deps: SessionRegistryDeps) {
    this.deps = deps;
  }

  get connectedCount(): number {
    return this.online.size;
  }

  get persistentSessionCount(): number {
    return this.persistent.size;
  }

  /** The connections that completed CONNECT and hold their client id. */
  onlineConnections(): Iterable<ClientConnection> {
    return this.online.values();
  }

  isConnected(clientId: string): boolean {
    return this.online.has(clientId);
  }

  hasPersistentSession(clientId: string): boolean {
    const s = this.sessions.get(clientId);
    return s !== undefined && this.persistent.has(s);
  }

  /** The one place a session's expiry changes, so the persistent-session count stays exact. */
  setSessionExpiry(session: Session, seconds: number): void {
    session.expirySeconds = seconds;
    if (seconds > 0 && this.sessions.get(session.clientId) === session) this.persistent.add(session);
    else this.persistent.delete(session);
  }

  /** Takes over an existing connection with the same client id and finds or makes the session. */
  openSession(conn: ClientConnection, cleanStart: boolean): { session: Session; present: boolean } {
    const clientId = conn.clientId;
    const old = this.online.get(clientId);
    if (old !== undefined && old !== conn) {
      old.close(RC.SESSION_TAKEN_OVER, 'session-taken-over'); // [MQTT-3.1.4-3]
    }
    let session = this.sessions.get(clientId);
    if (session !== undefined && cleanStart) {
      this.endSession(session, false);
      session = undefined;
    }
    const present = session !== undefined;
    if (session === undefined) {
      session = new Session(clientId, this.deps.env);
      this.sessions.set(clientId, session);
    }
    // Reconnecting in time cancels expiry and a delayed will. [MQTT-3.1.3-9]
    clearTimeout(session.expiryTimer);
    clearTimeout(session.willTimer);
    session.expiryTimer = undefined;
    session.willTimer = undefined;
    session.pendingWill = undefined;
    this.online.set(clientId, conn);
    conn.session = session;
    return { session, present };
  }

  /** The connection online for `clientId`, if any. */
  onlineConnection(clientId: string): ClientConnection | undefined {
    return this.online.get(clientId);
  }

  /**
   * A fresh offline session under `clientId`, replacing any held here: the state another replica
   * stored is restored into it (broker/replication.ts) before a connection opens it.
   */
  adopt(clientId: string): Session {
    this.forget(clientId);
    const session = new Session(clientId, this.deps.env);
    this.sessions.set(clientId, session);
    return session;
  }

  /**
   * Drops `clientId`'s session here without a will and without ending it anywhere else: another
   * replica took it over (broker/replication.ts). The connection, if any, is the caller's to close.
   */
  forget(clientId: string): Session | undefined {
    const session = this.sessions.get(clientId);
    this.online.delete(clientId);
    if (session === undefined) return undefined;
    session.mirror = undefined;
    session.detach();
    clearTimeout(session.expiryTimer);
    clearTimeout(session.willTimer);
    session.willTimer = undefined;
    session.pendingWill = undefined;
    session.will = undefined;
    this.deps.router.unsubscribeAll(session);
    session.clearMessages();
    this.persistent.delete(session);
    this.sessions.delete(clientId);
    return session;
  }

  /** A connection that completed CONNECT ended: detach its session, send or schedule its will, start expiry. */
  connectionEnded(conn: ClientConnection): void {
    const session = conn.session;
    if (session === undefined) return;
    if (this.online.get(conn.clientId) === conn) this.online.delete(conn.clientId);
    if (session.link !== conn) return;
    session.detach();
    this.scheduleWill(conn, session);
    if (session.expirySeconds === 0) {
      this.endSession(session, true);
    } else if (session.expirySeconds !== NEVER_EXPIRES) {
      session.expiryTimer = setTimeout(() => this.expire(session), Math.min(session.expirySeconds * 1000, MAX_TIMER_MS));
    }
  }

  /** The session's expiry ran out while it was offline. */
  private expire(session: Session): void {
    this.endSession(session, true);
    this.sessionExpired?.(session);
  }

  /** [MQTT-3.1.3-9] the will goes out at the earlier of its delay and the end of the session. */
  private scheduleWill(conn: ClientConnection, session: Session): void {
    const will = session.will;
    session.will = undefined;
    const client = conn.client;
    if (will === undefined || conn.cleanDisconnect || client === undefined) return;
    const publish = (): void => this.publishWill(will, client, conn.clientId, conn.authorizeAll);
    if (will.delaySeconds === 0 || session.expirySeconds === 0) {
      publish();
      return;
    }
    const delayed = (): void => {
      publish();
      this.delayedWillSent?.(session);
    };
    this.delayWill(session, delayed, Math.min(will.delaySeconds, session.expirySeconds) * 1000);
  }

  /** `publish` runs after `delayMs`, or when the session ends first, unless a connection takes it. */
  private delayWill(session: Session, publish: () => void, delayMs: number): void {
    session.willTimer = setTimeout(() => {
      session.willTimer = undefined;
      publish();
    }, Math.min(delayMs, MAX_TIMER_MS));
    session.pendingWill = publish;
  }

  /**
   * A session adopted from a replica that crashed (broker/replication-adoption.ts), offline here:
   * it ends after `expiryMs` (undefined: never), and its will (if any) goes out after `willInMs`
   * or at that end, whichever comes first, unless its client connects again before.
   */
  adoptedOffline(session: Session, expiryMs: number | undefined, will: (() => void) | undefined, willInMs: number): void {
    if (expiryMs !== undefined) {
      session.expiryTimer = setTimeout(() => this.expire(session), Math.min(Math.max(0, expiryMs), MAX_TIMER_MS));
    }
    if (will !== undefined) this.delayWill(session, will, Math.max(0, willInMs));
  }

  /** Whether the client may publish its will (with replicas, asked at CONNECT: broker/replication-sessions.ts). */
  async willAllowed(will: WillMessage, client: AuthenticatedClient | undefined, authorizeAll: boolean): Promise<boolean> {
    if (authorizeAll) return true;
    if (client === undefined) return false;
    return this.deps.authorization.hook.authorize(client, { action: 'publish', topic: will.topic, qos: will.qos, retain: will.retain }).catch(() => false);
  }

  private publishWill(will: WillMessage, client: AuthenticatedClient, clientId: string, authorizeAll: boolean): void {
    const { route, authorization, metrics } = this.deps;
    const msg = newMessage(will, will.properties, will.expirySeconds === 0 ? 0 : Date.now() + will.expirySeconds * 1000, clientId, performance.now());
    if (authorizeAll) {
      route(msg, undefined);
      return;
    }
    // A will is a publish like any other: it needs permission (aedes #214, docs/hostile-inputs.md #25).
    void authorization.hook.authorize(client, { action: 'publish', topic: will.topic, qos: will.qos, retain: will.retain })
      .catch(() => false)
      .then((ok) => {
        if (ok) route(msg, client);
        else metrics.drop('not-authorized');
      });
  }

  /** Ends a session: its subscriptions go, a will still pending goes out. */
  private endSession(session: Session, sendPendingWill: boolean): void {
    clearTimeout(session.expiryTimer);
    if (session.willTimer !== undefined) {
      clearTimeout(session.willTimer);
      session.willTimer = undefined;
      if (sendPendingWill) session.pendingWill?.();
    }
    session.pendingWill = undefined;
    this.deps.router.unsubscribeAll(session);
    session.clearMessages();
    this.persistent.delete(session);
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
  }

  /** The broker stops: no timer of a session may fire after it. */
  stopTimers(): void {
    for (const s of this.sessions.values()) {
      clearTimeout(s.expiryTimer);
      clearTimeout(s.willTimer);
    }
  }
}
