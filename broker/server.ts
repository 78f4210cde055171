// The broker of one tenant: owns sessions, the subscription trie, retained messages, the auth
// hook and the listeners. createBroker() → start/stop/addresses. Sockets enter via accept().
import type { Duplex } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { allowAllHook } from './auth/hook.ts';
import type { AclAction, AuthHook, AuthenticatedClient, VerifiedCertificate } from './auth/hook.ts';
import { startClock, stopClock } from './clock.ts';
import type { BrokerConfig } from './config.ts';
import { Connection } from './connection.ts';
import type { ListenerInfo } from './connection.ts';
import { startListener } from './listeners/index.ts';
import type { RunningListener } from './listeners/index.ts';
import { BrokerMetrics } from './metrics.ts';
import { RC } from './protocol/reason-codes.ts';
import { newMessage } from './router/message.ts';
import type { Message } from './router/message.ts';
import { RetainedStore } from './router/retained.ts';
import type { RetainedEntry } from './router/retained.ts';
import { SubscriptionTrie } from './router/trie.ts';
import type { SubscriptionOptions } from './router/trie.ts';
import { SubscriptionRecheck } from './session/reauthorize.ts';
import { Session } from './session/session.ts';
import type { SessionEnv, WillMessage } from './session/session.ts';
import { startAdmin } from './admin.ts';
import type { AdminServer } from './admin.ts';
import { SysPublisher } from './sys.ts';

const NEVER_EXPIRES = 0xffffffff;
/** Sequence of route() calls; never 0, the mark of a session no route has hit. */
let routeCounter = 0;
const MAX_TIMER_MS = 2_147_483_647;
const MAX_RETAINED = 1_000_000;
/**
 * Authorization calls one request (a SUBSCRIBE's filters, a session's stored subscriptions) keeps
 * in flight: with one async step per connection, this bounds what waits at an auth source to
 * 16 × connections, however many filters a packet carries.
 */
const AUTHORIZE_BATCH = 16;

export interface BrokerOptions {
  config: BrokerConfig;
  /** Defaults to allow-all (the embedded local config). */
  authHook?: AuthHook;
  logger?: Logger;
  /** Metrics registry shared with the auth chain (default: a new one). */
  registry?: Registry;
  /** Interval of $SYS statistics in ms (0 = off). */
  sysIntervalMs?: number;
}

/** One authorization question, for any client (a retained message's publisher may be offline). */
interface AuthorizationCheck {
  client: AuthenticatedClient;
  action: AclAction;
  topic: string;
  qos: 0 | 1 | 2;
  retain: boolean;
}

export interface ListenerAddress {
  name: string;
  protocol: string;
  host: string;
  port: number;
}

export class Broker {
  readonly config: BrokerConfig;
  readonly authHook: AuthHook;
  readonly log: Logger;
  readonly metrics: BrokerMetrics;
  /** The hook allows everything, so per-message authorization is skipped. */
  readonly authorizesEverything: boolean;
  readonly sessions = new Map<string, Session>();
  readonly retained: RetainedStore<AuthenticatedClient>;
  /** Bumped when an auth source reloads its data: rights confirmed before it are asked again. */
  private authGeneration = 0;
  /** Sessions that outlive their connection (expiry > 0), counted against `limits.maxSessions`. */
  private readonly persistent = new Set<Session>();
  private readonly online = new Map<string, Connection>();
  private readonly connections = new Set<Connection>();
  private readonly trie = new SubscriptionTrie<Session>();
  private readonly sessionEnv: SessionEnv;
  private listeners: RunningListener[] = [];
  private admin: AdminServer | undefined;
  private sys: SysPublisher | undefined;
  private routing: Message | undefined;
  private readonly visit: (s: Session, o: SubscriptionOptions, shared: boolean) => void;
  /** Plain subscriptions matched by the message being routed (a stack: route() may re-enter). */
  private readonly hitSessions: Session[] = [];
  private readonly hitOptions: SubscriptionOptions[] = [];
  /** Marks sessions hit by the current route(), to notice overlapping subscriptions. */
  private routeSeq = 0;
  private routeOverlap = false;
  private shuttingDown = false;
  readonly startedAt = Date.now();
  private readonly sysIntervalMs: number;

  constructor(options: BrokerOptions) {
    this.config = options.config;
    this.authHook = options.authHook ?? allowAllHook;
    // With no authorization sources and noMatch allow, the chain can only answer allow for a client
    // that brought no ACL of its own, so the per-message call is skipped (see connect.ts).
    const authz = this.config.authorization;
    this.authorizesEverything = this.authHook === allowAllHook || (authz.chain.length === 0 && authz.noMatch === 'allow');
    this.log = options.logger ?? pino({ level: this.config.logging.level, base: { broker: this.config.name } });
    this.sysIntervalMs = options.sysIntervalMs ?? 10_000;
    const limits = this.config.limits;
    this.retained = new RetainedStore<AuthenticatedClient>(MAX_RETAINED, limits.maxRetainedBytes);
    this.metrics = new BrokerMetrics(options.registry, {
      connections: () => this.connections.size,
      sessions: () => this.sessions.size,
      subscriptions: () => this.trie.size,
      retained: () => this.retained.size,
      retainedBytes: () => this.retained.bytes,
    });
    const metrics = this.metrics;
    this.sessionEnv = {
      maxInflight: limits.maxInflight,
      maxQueued: limits.maxQueuedMessages,
      maxQueuedBytes: limits.maxQueuedBytes,
      queueOverflow: limits.queueOverflow,
      onDrop: (reason) => metrics.drop(reason),
      onDeliver: (msg) => {
        metrics.messagesOut++;
        metrics.observeDelivery(msg.receivedAt);
      },
    };
    this.visit = (session, options, shared) => {
      const msg = this.routing!;
      if (options.noLocal && session.clientId === msg.senderId) return; // [MQTT-3.8.3-3]
      if (shared) {
        session.deliver(msg, options, false);
        return;
      }
      if (session.routeMark === this.routeSeq) this.routeOverlap = true;
      session.routeMark = this.routeSeq;
      this.hitSessions.push(session);
      this.hitOptions.push(options);
    };
    // An auth source reloaded its data: connected clients' subscriptions are checked again.
    const recheck = new SubscriptionRecheck(() => this.online.values(), this.log);
    this.authHook.onDataChanged?.(() => {
      this.authGeneration++;
      recheck.request();
    });
  }

  get connectedCount(): number {
    return this.online.size;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  get subscriptionCount(): number {
    return this.trie.size;
  }

  get persistentSessionCount(): number {
    return this.persistent.size;
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

  get ready(): boolean {
    return !this.shuttingDown && this.listeners.length > 0;
  }

  isConnected(clientId: string): boolean {
    return this.online.has(clientId);
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  async start(): Promise<void> {
    startClock();
    try {
      for (const l of this.config.listeners) {
        this.listeners.push(await startListener(this, l));
      }
      this.admin = await startAdmin(this, this.config.admin.host, this.config.admin.port);
    } catch (err) {
      await this.closeListeners();
      stopClock();
      throw err;
    }
    if (this.sysIntervalMs > 0) this.sys = new SysPublisher(this, this.sysIntervalMs);
    this.log.info({ listeners: this.addresses(), admin: this.admin.port }, 'broker started');
  }

  /** Publishes the $SYS statistics now (tests; the timer does it every interval). */
  publishSysNow(): void {
    new SysPublisher(this, 0).stop();
  }

  addresses(): ListenerAddress[] {
    return this.listeners.map((l) => ({ name: l.name, protocol: l.protocol, host: l.host, port: l.port }));
  }

  get adminPort(): number | undefined {
    return this.admin?.port;
  }

  /**
   * Graceful stop: no new connections, v5 clients get DISCONNECT 0x8B, buffered writes get
   * `graceMs` to flush, then whatever is left is cut.
   */
  async stop(graceMs = this.config.shutdown.gracePeriodSeconds * 1000): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.sys?.stop();
    const closing = this.closeListeners();
    const sockets = [...this.connections].map((c) => c.socket);
    for (const c of [...this.connections]) c.close(RC.SERVER_SHUTTING_DOWN, 'server-shutdown');
    const deadline = Date.now() + graceMs;
    while (sockets.some((s) => !s.destroyed) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const s of sockets) s.destroy();
    await closing;
    for (const s of this.sessions.values()) {
      clearTimeout(s.expiryTimer);
      clearTimeout(s.willTimer);
    }
    await this.admin?.close();
    await this.authHook.close();
    stopClock();
    this.log.info('broker stopped');
  }

  private async closeListeners(): Promise<void> {
    const ls = this.listeners;
    this.listeners = [];
    await Promise.all(ls.map((l) => l.close()));
  }

  // ---- connections -------------------------------------------------------------------------------

  /** A new socket from a listener. Over the connection limit (plus CONNECT-in-progress slack) it is cut at once. */
  accept(socket: Duplex, listener: ListenerInfo, peerHost: string, certificate: VerifiedCertificate | undefined): void {
    if (this.shuttingDown || this.connections.size >= this.config.limits.maxConnections + 64) {
      this.metrics.disconnects.inc({ reason: 'max-connections' });
      socket.destroy();
      return;
    }
    this.metrics.connectionsTotal.inc({ listener: listener.name });
    this.connections.add(new Connection(this, socket, listener, peerHost, certificate));
  }

  /** Takes over an existing connection with the same client id and finds or makes the session. */
  openSession(conn: Connection, cleanStart: boolean): { session: Session; present: boolean } {
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
      session = new Session(clientId, this.sessionEnv);
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

  connectionClosed(conn: Connection, wasConnected: boolean, reason: string): void {
    this.connections.delete(conn);
    const colon = reason.indexOf(':');
    this.metrics.disconnects.inc({ reason: colon === -1 ? reason : reason.slice(0, colon) });
    const session = conn.session;
    if (!wasConnected || session === undefined) return;
    if (this.online.get(conn.clientId) === conn) this.online.delete(conn.clientId);
    if (session.link !== conn) return;
    session.detach();
    const will = session.will;
    session.will = undefined;
    const client = conn.client;
    if (will !== undefined && !conn.cleanDisconnect && client !== undefined) {
      // [MQTT-3.1.3-9] the will goes out at the earlier of its delay and the end of the session
      if (will.delaySeconds === 0 || session.expirySeconds === 0) {
        this.publishWill(will, client, conn.clientId, conn.authorizeAll);
      } else {
        const delay = Math.min(will.delaySeconds, session.expirySeconds) * 1000;
        session.willTimer = setTimeout(() => {
          session.willTimer = undefined;
          this.publishWill(will, client, conn.clientId, conn.authorizeAll);
        }, Math.min(delay, MAX_TIMER_MS));
        session.pendingWill = () => this.publishWill(will, client, conn.clientId, conn.authorizeAll);
      }
    }
    if (session.expirySeconds === 0) {
      this.endSession(session, true);
    } else if (session.expirySeconds !== NEVER_EXPIRES) {
      session.expiryTimer = setTimeout(() => this.endSession(session, true), Math.min(session.expirySeconds * 1000, MAX_TIMER_MS));
    }
  }

  private publishWill(will: WillMessage, client: AuthenticatedClient, clientId: string, authorizeAll: boolean): void {
    const msg = newMessage(
      will.topic, will.payload, will.qos, will.retain, will.properties,
      will.expirySeconds === 0 ? 0 : Date.now() + will.expirySeconds * 1000, clientId, performance.now(),
    );
    if (authorizeAll) {
      this.route(msg, undefined);
      return;
    }
    // A will is a publish like any other: it needs permission (aedes #214, docs/hostile-inputs.md #25).
    void this.authHook.authorize(client, { action: 'publish', topic: will.topic, qos: will.qos, retain: will.retain })
      .catch(() => false)
      .then((ok) => {
        if (ok) this.route(msg, client);
        else this.metrics.drop('not-authorized');
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
    for (const sub of session.subscriptions.values()) this.trie.remove(sub.filter, sub.group, session);
    session.subscriptions.clear();
    session.clearMessages();
    this.persistent.delete(session);
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
  }

  // ---- routing -----------------------------------------------------------------------------------

  /** Adds or replaces a subscription; returns true when it existed before. */
  subscribe(session: Session, key: string, filter: string, group: string | undefined, options: SubscriptionOptions): boolean {
    const existed = session.subscriptions.has(key);
    session.subscriptions.set(key, { filter, group, options });
    this.trie.add(filter, group, session, options);
    return existed;
  }

  unsubscribe(session: Session, key: string): boolean {
    const sub = session.subscriptions.get(key);
    if (sub === undefined) return false;
    session.subscriptions.delete(key);
    this.trie.remove(sub.filter, sub.group, session);
    return true;
  }

  /**
   * Delivers a message to every matching subscription and keeps it if retained. `publisher` is
   * whose right to publish a kept message is checked again later (undefined: the broker itself,
   * or a client every right is granted to).
   */
  route(msg: Message, publisher: AuthenticatedClient | undefined): void {
    // Over the retained budget the message is still delivered live, just not kept.
    if (msg.retain && !this.retained.store(msg, { publisher, checkedAt: Date.now(), generation: this.authGeneration })) {
      this.metrics.retainedNotStored++;
    }
    const outer = this.routing;
    const outerSeq = this.routeSeq;
    const outerOverlap = this.routeOverlap;
    const start = this.hitSessions.length;
    this.routing = msg;
    this.routeSeq = ++routeCounter;
    this.routeOverlap = false;
    try {
      this.trie.match(msg.topic, this.visit);
      if (this.routeOverlap) this.deliverOverlapping(msg, start);
      else for (let i = start; i < this.hitSessions.length; i++) this.hitSessions[i]!.deliver(msg, this.hitOptions[i]!, false);
    } finally {
      this.hitSessions.length = start;
      this.hitOptions.length = start;
      this.routing = outer;
      this.routeSeq = outerSeq;
      this.routeOverlap = outerOverlap;
    }
  }

  /**
   * A session with several matching subscriptions of which at least one has a Subscription
   * Identifier gets one copy: the highest QoS, retained if any asks for retain-as-published, and
   * every identifier (what MQTT 5 clients and interop suites expect; MQTT-3.3.4-3 allows both).
   * Without identifiers each subscription gets its copy, as before.
   */
  private deliverOverlapping(msg: Message, start: number): void {
    const bySession = new Map<Session, SubscriptionOptions[]>();
    for (let i = start; i < this.hitSessions.length; i++) {
      const s = this.hitSessions[i]!;
      const list = bySession.get(s);
      if (list === undefined) bySession.set(s, [this.hitOptions[i]!]);
      else list.push(this.hitOptions[i]!);
    }
    for (const [session, list] of bySession) {
      const ids = list.flatMap((o) => (o.identifier === undefined ? [] : [o.identifier])).sort((a, b) => a - b);
      if (list.length === 1 || ids.length === 0) {
        for (const o of list) session.deliver(msg, o, false);
        continue;
      }
      const merged: SubscriptionOptions = {
        qos: list.reduce<0 | 1 | 2>((q, o) => (o.qos > q ? o.qos : q), 0),
        noLocal: false,
        retainAsPublished: list.some((o) => o.retainAsPublished),
        retainHandling: 0,
        identifier: undefined,
      };
      session.deliver(msg, merged, false, ids);
    }
  }

  /**
   * The decision when the hook knows it without I/O (superuser, cached), else undefined. Lets a
   * cached PUBLISH skip a promise and an event-loop turn per message.
   */
  authorizeKnown(conn: Connection, action: AclAction, topic: string, qos: 0 | 1 | 2, retain: boolean): boolean | undefined {
    const hook = this.authHook;
    if (hook.authorizeSync === undefined) return undefined;
    let ok: boolean | undefined;
    try {
      ok = hook.authorizeSync(conn.client!, { action, topic, qos, retain });
    } catch {
      return undefined; // the async path decides and logs
    }
    if (ok !== undefined) this.metrics.authDecisions.inc({ action, result: ok ? 'allow' : 'deny' });
    return ok;
  }

  /** authorize() for many topics of one client, AUTHORIZE_BATCH at a time; verdicts in order. */
  authorizeMany(conn: Connection, action: AclAction, requests: readonly { topic: string; qos: 0 | 1 | 2 }[]): Promise<boolean[]> {
    const client = conn.client!;
    return this.authorizeEach(requests.map((r) => ({ client, action, topic: r.topic, qos: r.qos, retain: false })));
  }

  private async authorizeEach(requests: readonly AuthorizationCheck[]): Promise<boolean[]> {
    const verdicts = new Array<boolean>(requests.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < requests.length) {
        const i = next++;
        const r = requests[i]!;
        verdicts[i] = this.authorizeClientSync(r) ?? await this.authorizeClient(r);
      }
    };
    await Promise.all(Array.from({ length: Math.min(AUTHORIZE_BATCH, requests.length) }, worker));
    return verdicts;
  }

  authorize(conn: Connection, action: AclAction, topic: string, qos: 0 | 1 | 2, retain: boolean): Promise<boolean> {
    return this.authorizeClient({ client: conn.client!, action, topic, qos, retain });
  }

  private authorizeClientSync(r: AuthorizationCheck): boolean | undefined {
    let ok: boolean | undefined;
    try {
      ok = this.authHook.authorizeSync?.(r.client, { action: r.action, topic: r.topic, qos: r.qos, retain: r.retain });
    } catch {
      return undefined; // the async path decides and logs
    }
    if (ok !== undefined) this.metrics.authDecisions.inc({ action: r.action, result: ok ? 'allow' : 'deny' });
    return ok;
  }

  private async authorizeClient(r: AuthorizationCheck): Promise<boolean> {
    let ok: boolean;
    try {
      ok = await this.authHook.authorize(r.client, { action: r.action, topic: r.topic, qos: r.qos, retain: r.retain });
    } catch (err) {
      this.log.error({ err, clientId: r.client.attempt.clientId }, 'authorization hook failed');
      ok = false;
    }
    this.metrics.authDecisions.inc({ action: r.action, result: ok ? 'allow' : 'deny' });
    return ok;
  }

  /**
   * Retained messages matching `filter` whose publisher may still publish them: a right confirmed
   * before an auth source last reloaded, or longer ago than the decision cache TTL, is asked
   * again (so a source without change notifications is covered too); a message whose publisher
   * lost the right is removed from the store, not delivered. Fresh copies, in store order.
   */
  retainedFor(filter: string, now: number): Message[] | Promise<Message[]> {
    const entries = this.retained.matchEntries(filter, now);
    const ttlMs = this.config.authorization.cache.ttlSeconds * 1000;
    const generation = this.authGeneration;
    const stale = entries.filter((e) => e.publisher !== undefined && (e.generation !== generation || now - e.checkedAt >= ttlMs));
    const copies = (): Message[] => entries.filter((e) => !denied.has(e)).map((e) => ({ ...e.message, encoded: undefined }));
    const denied = new Set<RetainedEntry<AuthenticatedClient>>();
    if (stale.length === 0) return copies();
    const checks = stale.map((e): AuthorizationCheck => ({ client: e.publisher!, action: 'publish', topic: e.message.topic, qos: e.message.qos, retain: true }));
    return this.authorizeEach(checks).then((verdicts) => {
      stale.forEach((e, i) => {
        if (verdicts[i]) {
          e.checkedAt = now;
          e.generation = generation;
        } else {
          denied.add(e);
          this.retained.remove(e);
          this.metrics.drop('not-authorized');
        }
      });
      return copies();
    });
  }
}

export function createBroker(options: BrokerOptions): Broker {
  return new Broker(options);
}
