// The broker of one tenant: puts together its parts (authorization.ts, router/router.ts,
// session/registry.ts), runs the listeners and the admin port, and owns the set of connections.
// createBroker() → start/stop/addresses. Sockets enter via accept(); what a connection and its
// handlers may ask of the broker is BrokerServices (services.ts), implemented here by delegation.
import type { Duplex } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { allowAllHook } from './auth/hook.ts';
import type { AclAction, AuthenticatedClient, AuthHook, AuthorizationRequest, VerifiedCertificate } from './auth/hook.ts';
import { Authorization } from './authorization.ts';
import { startClock, stopClock } from './clock.ts';
import type { BrokerConfig } from './config.ts';
import { Connection } from './connection.ts';
import { dispatchFrame } from './handlers/dispatch.ts';
import { startListener } from './listeners/index.ts';
import type { RunningListener } from './listeners/index.ts';
import { BrokerMetrics } from './metrics.ts';
import { RC } from './protocol/reason-codes.ts';
import type { Message } from './router/message.ts';
import type { RetainedStore } from './router/retained.ts';
import { Router } from './router/router.ts';
import type { SubscriptionOptions } from './router/trie.ts';
import type { BrokerServices, ClientConnection, ListenerInfo } from './services.ts';
import { SubscriptionRecheck } from './session/reauthorize.ts';
import { SessionRegistry } from './session/registry.ts';
import type { Session } from './session/session.ts';
import { startAdmin } from './admin.ts';
import type { AdminServer } from './admin.ts';
import { SysPublisher } from './sys.ts';
import { hostname } from 'node:os';
import { replicaId } from './cluster/config.ts';
import { Replication } from './replication.ts';
import { Backlog } from './session/backlog.ts';


export interface BrokerOptions {
  config: BrokerConfig;
  /** Defaults to allow-all (the embedded local config). */
  authHook?: AuthHook;
  logger?: Logger;
  /** Metrics registry shared with the auth chain (default: a new one). */
  registry?: Registry;
  /** Interval of $SYS statistics in ms (0 = off). */
  sysIntervalMs?: number;
  /** This replica's id (`state.backend: redis`): the pod name; default the host name. */
  replicaId?: string;
}

export interface ListenerAddress {
  name: string;
  protocol: string;
  host: string;
  port: number;
}

export class Broker implements BrokerServices {
  readonly config: BrokerConfig;
  readonly authHook: AuthHook;
  readonly log: Logger;
  readonly metrics: BrokerMetrics;
  /** The hook allows everything, so per-message authorization is skipped. */
  readonly authorizesEverything: boolean;
  readonly retained: RetainedStore<AuthenticatedClient>;
  private readonly authorization: Authorization;
  private readonly router: Router;
  private readonly registry: SessionRegistry;
  /** The cluster state layer's broker side (`state.backend: redis`), undefined with `memory`. */
  readonly replication: Replication | undefined;
  readonly backlog: Backlog;
  private readonly connections = new Set<ClientConnection>();
  private listeners: RunningListener[] = [];
  private admin: AdminServer | undefined;
  private sys: SysPublisher | undefined;
  private shuttingDown = false;
  readonly startedAt = Date.now();
  private readonly sysIntervalMs: number;

  constructor(options: BrokerOptions) {
    const config = this.config = options.config;
    this.authHook = options.authHook ?? allowAllHook;
    this.log = options.logger ?? pino({ level: config.logging.level, base: { broker: config.name } });
    this.sysIntervalMs = options.sysIntervalMs ?? 10_000;
    const limits = config.limits;
    this.metrics = new BrokerMetrics(options.registry, {
      connections: () => this.connections.size,
      sessions: () => this.sessions.size,
      subscriptions: () => this.router.subscriptionCount,
      retained: () => this.retained.size,
      retainedBytes: () => this.retained.bytes,
    });
    const metrics = this.metrics;
    const authorization = this.authorization = new Authorization(this.authHook, config, metrics, this.log);
    this.authorizesEverything = authorization.everything;
    this.router = new Router({
      maxRetainedBytes: limits.maxRetainedBytes,
      retainedRightTtlMs: config.authorization.cache.ttlSeconds * 1000,
      authorization,
      onRetainedNotStored: () => metrics.retainedNotStored++,
      onRetainedRevoked: () => metrics.drop('not-authorized'),
      ...(config.state.backend === 'redis' ? { onSharedMembership: (group: string, filter: string, delta: 1 | -1) => this.sharedMembership(group, filter, delta) } : {}),
    });
    this.retained = this.router.retained;
    const state = config.state;
    // A connected session whose queue fills holds its publishers (and other replicas' messages).
    const backlog = this.backlog = new Backlog();
    const env = {
      backlog,
      maxInflight: limits.maxInflight,
      maxQueued: limits.maxQueuedMessages,
      maxQueuedBytes: limits.maxQueuedBytes,
      queueOverflow: limits.queueOverflow,
      onDrop: (reason: Parameters<BrokerMetrics['drop']>[0]) => metrics.drop(reason),
      onDeliver: (msg: Message) => {
        metrics.messagesOut++;
        metrics.observeDelivery(msg.receivedAt);
      },
    };
    this.registry = new SessionRegistry({ env, router: this.router, route: (msg, publisher) => void this.route(msg, publisher)?.catch(() => undefined), authorization, metrics, log: this.log });
    this.replication = state.backend === 'redis' ? new Replication({
      replicaId: options.replicaId ?? replicaId(process.env, hostname()), config: state.redis,
      queue: { maxMessages: limits.maxQueuedMessages, maxBytes: limits.maxQueuedBytes, overflow: limits.queueOverflow },
      maxRetainedBytes: limits.maxRetainedBytes, router: this.router, registry: this.registry, metrics, log: this.log, backlog,
    }) : undefined;
    // An auth source reloaded its data: connected clients' subscriptions are checked again.
    const recheck = new SubscriptionRecheck(() => this.registry.onlineConnections(), this.log);
    this.authHook.onDataChanged?.(() => {
      authorization.generation++;
      recheck.request();
    });
  }

  get sessions(): ReadonlyMap<string, Session> {
    return this.registry.sessions;
  }

  get connectedCount(): number {
    return this.registry.connectedCount;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  get subscriptionCount(): number {
    return this.router.subscriptionCount;
  }

  get persistentSessionCount(): number {
    return this.registry.persistentSessionCount;
  }

  hasPersistentSession(clientId: string): boolean {
    return this.registry.hasPersistentSession(clientId);
  }

  setSessionExpiry(session: Session, seconds: number): void {
    this.registry.setSessionExpiry(session, seconds);
  }

  get ready(): boolean {
    return this.notReadyReason === undefined;
  }

  /** Why /readyz answers 503, undefined when ready. */
  get notReadyReason(): string | undefined {
    if (this.shuttingDown || this.listeners.length === 0) return 'not ready';
    if (this.replication !== undefined && !this.replication.ready) return 'state backend unavailable';
    return undefined;
  }

  isConnected(clientId: string): boolean {
    return this.registry.isConnected(clientId);
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  async start(): Promise<void> {
    startClock();
    // Before the listeners: a replica that takes clients must already route to the others.
    // Redis not reachable in time is not fatal: the replica starts degraded and recovers alone.
    await this.replication?.start();
    try {
      for (const l of this.config.listeners) {
        this.listeners.push(await startListener(this, l));
      }
      this.admin = await startAdmin(this, this.config.admin.host, this.config.admin.port);
    } catch (err) {
      await this.closeListeners();
      await this.replication?.stop();
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

  get replicaId(): string | undefined {
    return this.replication?.replicaId;
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
    this.registry.stopTimers();
    // After the connections: their sessions went offline in Redis; now they are released.
    await this.replication?.stop();
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
    this.connections.add(new Connection(this, dispatchFrame, socket, { listener, host: peerHost, certificate }));
  }

  openSession(conn: ClientConnection, cleanStart: boolean): { session: Session; present: boolean } {
    const opened = this.registry.openSession(conn, cleanStart);
    this.replication?.opened(conn, opened.session);
    return opened;
  }

  claimSession(conn: ClientConnection, cleanStart: boolean, expirySeconds: number): Promise<{ refused: true; code: number; why: string } | undefined> | undefined {
    return this.replication?.claim(conn, cleanStart, expirySeconds);
  }

  connectionClosed(conn: ClientConnection, wasConnected: boolean, reason: string): void {
    this.connections.delete(conn);
    const colon = reason.indexOf(':');
    this.metrics.disconnects.inc({ reason: colon === -1 ? reason : reason.slice(0, colon) });
    if (!wasConnected) return;
    this.registry.connectionEnded(conn);
    const session = conn.session;
    if (this.replication !== undefined && session !== undefined) this.replication.ended(session, this.sessions.get(session.clientId) === session);
  }

  // ---- routing and authorization (router/router.ts, authorization.ts) ------------------------------

  subscribe(session: Session, key: string, filter: string, group: string | undefined, options: SubscriptionOptions): boolean {
    const existed = this.router.subscribe(session, key, filter, group, options);
    if (session.mirror !== undefined) this.replication?.subscribed(session, key, { filter, group, options });
    return existed;
  }

  unsubscribe(session: Session, key: string): boolean {
    const existed = this.router.unsubscribe(session, key);
    if (existed && session.mirror !== undefined) this.replication?.subscribed(session, key, undefined);
    return existed;
  }

  /**
   * Delivers a message to every matching subscription and keeps it if retained. With replicas it
   * also goes to the others: the promise resolves when Redis took it (QoS 1/2 are answered then).
   */
  route(msg: Message, publisher: AuthenticatedClient | undefined): Promise<void> | undefined {
    if (this.replication !== undefined) return this.replication.route(msg, publisher);
    this.router.route(msg, publisher);
    return undefined;
  }

  /** A session here joined or left a shared group: the cluster-wide member counts follow. */
  private sharedMembership(group: string, filter: string, delta: 1 | -1): void {
    this.replication?.cluster.shared.change(group, filter, delta).catch((err: unknown) => {
      this.log.debug({ group, filter, err: (err as Error).message }, 'shared membership write failed');
    });
  }

  retainedFor(filter: string, now: number): Message[] | Promise<Message[]> {
    return this.router.retainedFor(filter, now);
  }

  authorizeKnown(client: AuthenticatedClient, request: AuthorizationRequest): boolean | undefined {
    return this.authorization.known(client, request);
  }

  authorize(client: AuthenticatedClient, request: AuthorizationRequest): Promise<boolean> {
    return this.authorization.ask(client, request);
  }

  authorizeMany(client: AuthenticatedClient, action: AclAction, requests: readonly { topic: string; qos: 0 | 1 | 2 }[]): Promise<boolean[]> {
    return this.authorization.many(client, action, requests);
  }
}

export function createBroker(options: BrokerOptions): Broker {
  return new Broker(options);
}
