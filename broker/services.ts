// Owns the narrow interface between the server and what runs for one client: what a connection
// and its packet handlers may touch of the broker (server.ts implements it), and what the server
// touches of a connection. Both sides import only this file, so connection.ts, handlers/ and
// server.ts do not import each other in a circle.
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { AclAction, AuthenticatedClient, AuthHook, AuthorizationRequest, VerifiedCertificate } from './auth/hook.ts';
import type { BrokerConfig } from './config.ts';
import type { BrokerMetrics } from './metrics.ts';
import type { Message } from './router/message.ts';
import type { SubscriptionOptions } from './router/trie.ts';
import type { Session, SessionLink } from './session/session.ts';
import type { Backlog } from './session/backlog.ts';

/** What the server knows of the listener a connection came in on. */
export interface ListenerInfo {
  name: string;
  /**
   * A CONNECT with neither user name nor password is admitted without asking the auth chain
   * (the listener's `allowAnonymous`; the embedded default config sets it). Not to be confused
   * with `authentication.allowAnonymous`, which admits a client no source of the chain claimed.
   */
  anonymousBypassesChain: boolean;
}

export type ConnectionState = 'new' | 'connecting' | 'connected' | 'closed';

/** A live client connection as the server sees it: the session's link, and who it is. */
export interface ClientConnection extends SessionLink {
  readonly broker: BrokerServices;
  readonly socket: Duplex;
  readonly clientId: string;
  session: Session | undefined;
  readonly client: AuthenticatedClient | undefined;
  /** Every right is granted (superuser, or nothing to ask): per-publish authorization is skipped. */
  readonly authorizeAll: boolean;
  /** The client sent DISCONNECT 0x00: its will must not be sent. [MQTT-3.1.2-10] */
  readonly cleanDisconnect: boolean;
  readonly state: ConnectionState;
  close(reasonCode: number, reason: string, reasonString?: string): void;
  isClosed(): boolean;
}

/** Where a socket came from. */
export interface Peer {
  listener: ListenerInfo;
  /** Remote IP address (no port). */
  host: string;
  /** Present only when the TLS handshake verified a client certificate. */
  certificate: VerifiedCertificate | undefined;
}

/** Runs the handler of one whole frame; a promise while an async step (authentication, authorization) runs. */
export type FrameDispatch<C> = (conn: C, frame: Buffer) => Promise<void> | undefined;

/** What a connection and its packet handlers may ask of the broker. */
export interface BrokerServices {
  readonly config: BrokerConfig;
  readonly log: Logger;
  readonly metrics: BrokerMetrics;
  /** Sessions whose queue is over half full: a publisher that adds to one waits (session/backlog.ts). */
  readonly backlog: Backlog;
  readonly authHook: AuthHook;
  /** The hook allows everything, so per-message authorization is skipped. */
  readonly authorizesEverything: boolean;
  readonly sessions: ReadonlyMap<string, Session>;
  readonly connectedCount: number;
  readonly persistentSessionCount: number;
  isConnected(clientId: string): boolean;
  hasPersistentSession(clientId: string): boolean;
  /**
   * With replicas (`state.backend: redis`): claims the session cluster-wide, takes it over from
   * another replica and loads what it stored, or refuses (state backend unavailable). undefined
   * with one replica: nothing to wait for.
   */
  claimSession(conn: ClientConnection, cleanStart: boolean, expirySeconds: number): Promise<{ refused: true; code: number; why: string } | undefined> | undefined;
  /** Takes over an existing connection with the same client id and finds or makes the session. */
  openSession(conn: ClientConnection, cleanStart: boolean): { session: Session; present: boolean };
  /** The one place a session's expiry changes, so the persistent-session count stays exact. */
  setSessionExpiry(session: Session, seconds: number): void;
  /** Adds or replaces a subscription; true when it existed before. */
  subscribe(session: Session, key: string, filter: string, group: string | undefined, options: SubscriptionOptions): boolean;
  unsubscribe(session: Session, key: string): boolean;
  /**
   * Delivers a message to every matching subscription and keeps it if retained. With replicas a
   * promise: resolved when the other replicas will get it (Redis took it), rejected when not.
   */
  route(msg: Message, publisher: AuthenticatedClient | undefined): Promise<void> | undefined;
  /** The decision when the hook knows it without I/O (superuser, cached), else undefined. */
  authorizeKnown(client: AuthenticatedClient, request: AuthorizationRequest): boolean | undefined;
  authorize(client: AuthenticatedClient, request: AuthorizationRequest): Promise<boolean>;
  /** authorize() for many topics of one client, a bounded number at a time; verdicts in order. */
  authorizeMany(client: AuthenticatedClient, action: AclAction, requests: readonly { topic: string; qos: 0 | 1 | 2 }[]): Promise<boolean[]>;
  /** Retained messages matching `filter` whose publisher may still publish them. */
  retainedFor(filter: string, now: number): Message[] | Promise<Message[]>;
  /** A connection ended: its session is detached, its will scheduled, its expiry started. */
  connectionClosed(conn: ClientConnection, wasConnected: boolean, reason: string): void;
}
