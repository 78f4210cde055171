// Owns the broker's side of the cluster state layer (broker/cluster/, docs/ha.md) when
// `state.backend` is `redis`: routing through the bus (a PUBLISH accepted here reaches every
// replica; one from another replica is delivered here), retained messages in Redis order,
// shared-group picks and membership, readiness, recovery after an outage and the state-backend
// metrics; where sessions live (claim, takeover, resume, write-through) is replication-sessions.ts,
// what becomes of a crashed replica's sessions (adoption, wills) is replication-adoption.ts.
// The broker holds one or none: with `backend: memory` nothing here runs and the local paths are as before.
import type { Logger } from 'pino';
import { Counter, Gauge } from 'prom-client';
import type { AuthenticatedClient } from './auth/hook.ts';
import { Cluster } from './cluster/cluster.ts';
import { linkConfig } from './cluster/config.ts';
import type { RedisStateConfig } from './cluster/config.ts';
import type { Envelope, SharedPick } from './cluster/envelope.ts';
import { envelopeFromMessage } from './cluster/routed.ts';
import type { QueueLimits } from './cluster/session-store.ts';
import type { Refusal } from './handlers/connect-auth.ts';
import type { Backlog } from './session/backlog.ts';
import type { BrokerMetrics } from './metrics.ts';
import type { Message } from './router/message.ts';
import type { Router } from './router/router.ts';
import { Adopter } from './replication-adoption.ts';
import { ReplicatedSessions } from './replication-sessions.ts';
import type { ClientConnection } from './services.ts';
import type { SessionRegistry } from './session/registry.ts';
import { ClusterMirror, routedMessage, snapshotOf } from './session/mirror.ts';
import type { Session, StoredSubscription } from './session/session.ts';

/**
 * How long the link may be down before /readyz says 503: a blip (a Redis failover, a reconnect)
 * must not take every replica out of its Service at once, a real outage must. While unready the
 * replica keeps serving its connected clients; new clients go to replicas that can give them
 * persistent sessions, and if none can, a client is refused early rather than by CONNACK 0x88.
 */
export const READY_GRACE_MS = 5_000;

export interface ReplicationDeps {
  replicaId: string;
  config: RedisStateConfig;
  queue: QueueLimits;
  maxRetainedBytes: number;
  router: Router;
  registry: SessionRegistry;
  metrics: BrokerMetrics;
  log: Logger;
  /** The sessions' back-pressure on reading other replicas' messages (their SessionEnv's). */
  backlog?: Backlog;
}

export class Replication {
  readonly cluster: Cluster;
  readonly replicaId: string;
  private readonly deps: ReplicationDeps;
  private downSince: number | undefined = Date.now();
  /** Shared picks of the message being routed here; the gate reads them. */
  private picks: SharedPick[] | undefined = undefined;
  private picksAreOwn = false;
  private readonly sessions: ReplicatedSessions;
  /** Adopts the sessions of replicas that crashed (replication-adoption.ts). */
  private readonly adopter: Adopter;
  private readonly gate = (key: string): boolean => this.delivers(key);

  constructor(deps: ReplicationDeps) {
    this.deps = deps;
    this.replicaId = deps.replicaId;
    const log = deps.log;
    this.cluster = new Cluster({
      replicaId: deps.replicaId,
      link: linkConfig(deps.config),
      maxRetainedBytes: deps.maxRetainedBytes,
      streamMaxEntries: deps.config.streamMaxEntries,
      observer: {
        up: () => {
          this.downSince = undefined;
          this.adopter.linkUp();
          log.info('state backend up');
        },
        down: (reason) => {
          this.downSince ??= Date.now();
          this.adopter.linkDown();
          log.warn({ reason }, 'state backend down');
        },
        passwordChanged: () => log.info('state backend password file changed: the next (re)connect uses it'),
      },
    }, {
      message: (e) => this.remote(e),
      retained: (e, kept) => this.retainedChanged(e, kept),
      takeover: (clientId, epoch) => this.sessions.takeover(clientId, epoch),
      recovered: () => void this.recover(),
      gap: (origin, missed) => log.warn({ origin, missed }, 'messages from another replica missed'),
      room: () => deps.backlog?.room(),
    });
    this.sessions = new ReplicatedSessions({ cluster: this.cluster, config: deps.config, queue: deps.queue, router: deps.router, registry: deps.registry, log });
    this.adopter = new Adopter({
      cluster: this.cluster, sessions: this.sessions, registry: deps.registry, log,
      route: (msg) => void this.route(msg, undefined)?.catch(() => undefined),
    });
    this.registerMetrics(deps.metrics);
  }

  get up(): boolean {
    return this.cluster.link.state === 'up';
  }

  /** Ready unless the link has been down for longer than READY_GRACE_MS. */
  get ready(): boolean {
    return this.downSince === undefined || Date.now() - this.downSince < READY_GRACE_MS;
  }

  /** Before the listeners: false = Redis not reachable in time, the replica runs degraded. */
  async start(): Promise<boolean> {
    const up = await this.cluster.start(5_000);
    this.adopter.start();
    if (up) await this.reloadRetained();
    if (up) await this.adopter.adoptPrevious();
    else this.deps.log.warn('state backend not reachable: starting degraded');
    return up;
  }

  /**
   * After the listeners closed and the connections ended (their sessions went offline): what was
   * written is flushed, owned sessions are released so another replica resumes them without a
   * takeover round, this replica leaves its shared groups.
   */
  async stop(): Promise<void> {
    const { cluster } = this;
    this.adopter.stop();
    if (this.up) {
      try {
        // Stop reading first: the position stored with each released session is then final.
        await cluster.bus.stop();
        await this.sessions.releaseAll(cluster.bus.position ?? ''); // nothing read: the next owner replays nothing
        await cluster.shared.leaveAll();
      } catch (err) {
        this.deps.log.warn({ err: (err as Error).message }, 'state backend: release at stop failed');
      }
    }
    await cluster.stop();
  }

  // ---- routing -------------------------------------------------------------------------------------

  /**
   * Routes a message accepted here: locally at once, then to the other replicas. Resolves when the
   * bus (or the retained store) took it: a QoS 1/2 publisher is answered then, not before. Rejects
   * when Redis refused it. `$` topics are this replica's own ($SYS) and stay local.
   */
  route(msg: Message, publisher: AuthenticatedClient | undefined): Promise<void> | undefined {
    const { router } = this.deps;
    if (msg.topic.charCodeAt(0) === 0x24) {
      router.route(msg, publisher);
      return undefined;
    }
    const { bus, shared, retained } = this.cluster;
    const e = bus.stamp(envelopeFromMessage(msg, shared.pick(msg.topic)));
    msg.origin = e.origin;
    msg.seq = e.seq;
    this.sessions.buffer(e);
    this.withPicks(e.sharedPicks, true, () => router.route(msg, publisher, this.gate));
    return msg.retain ? retained.publish(e).then(() => undefined) : bus.publish(e);
  }

  private remote(e: Envelope): void {
    this.sessions.buffer(e);
    const msg = routedMessage(e);
    this.withPicks(e.sharedPicks, false, () => this.deps.router.deliver(msg, this.gate));
  }

  private withPicks(picks: SharedPick[] | undefined, own: boolean, run: () => void): void {
    const outer = this.picks;
    const outerOwn = this.picksAreOwn;
    this.picks = picks;
    this.picksAreOwn = own;
    try {
      run();
    } finally {
      this.picks = outer;
      this.picksAreOwn = outerOwn;
    }
  }

  /**
   * Whether this replica delivers to its members of shared group `key`: when the origin picked it.
   * A group the origin knew nothing of (no pick) is delivered by the origin only, so a message is
   * never delivered to a group twice.
   */
  private delivers(key: string): boolean {
    const pick = this.picks?.find((p) => p.key === key);
    if (pick === undefined) return this.picksAreOwn;
    return pick.replica === this.replicaId;
  }

  /** A retained change in Redis order (own ones too): the local copy follows. */
  private retainedChanged(e: Envelope, kept: boolean): void {
    const store = this.deps.router.retained;
    const held = store.matchEntries(e.topic, Date.now())[0];
    if (held !== undefined && held.message.origin === e.origin && held.message.seq === e.seq) return; // ours, already here
    const msg = routedMessage(e);
    if (!kept) msg.payload = Buffer.alloc(0); // an empty payload removes the topic's message
    store.store(msg);
  }

  /**
   * The link is back after an outage: Redis may have restarted empty. Retained messages are read
   * again, sessions that ended here meanwhile end in Redis, and every session held here is claimed
   * again and written back whole.
   */
  private async recover(): Promise<void> {
    await this.reloadRetained();
    await this.sessions.finishEnds();
    await this.writeBack();
  }

  /**
   * After an outage Redis may have restarted empty: every session held here is claimed again (a
   * new epoch; one another replica took meanwhile is let go) and written back whole, replacing what
   * Redis holds: subscriptions, offline queue, outgoing in flight, incoming QoS 2 ids, the will
   * (docs/ha.md). Writes of the old epoch fail until then; what they carried is in the snapshot.
   */
  private async writeBack(): Promise<void> {
    const { sessions } = this.cluster;
    let rewritten = 0;
    let lost = 0;
    for (const s of [...this.deps.registry.sessions.values()]) {
      const m = s.mirror;
      if (!(m instanceof ClusterMirror)) continue;
      try {
        const epoch = await sessions.reclaim(s.clientId, m.epoch);
        if (epoch === undefined) {
          lost++;
          await this.sessions.takeover(s.clientId, m.epoch);
          continue;
        }
        m.epoch = epoch;
        await sessions.rewrite(s.clientId, epoch, snapshotOf(s, m));
        if (s.link === undefined) await sessions.goOffline(s.clientId, epoch, s.expirySeconds);
        rewritten++;
      } catch (err) {
        this.deps.log.warn({ clientId: s.clientId, err: (err as Error).message }, 'session rewrite after outage failed');
      }
    }
    this.deps.log.info({ sessions: rewritten, takenElsewhere: lost }, 'state backend recovered');
  }

  /**
   * At start and after an outage: the local retained messages become Redis' set. A local one Redis
   * does not hold goes (one kept here while Redis refused it, or one a Redis that restarted empty
   * lost everywhere): replicas must not answer a new subscriber differently. One stored here while
   * the load ran is a newer entry and stays; `$` topics are this replica's own and are not matched.
   */
  private async reloadRetained(): Promise<void> {
    const store = this.deps.router.retained;
    try {
      const before = store.matchEntries('#', Date.now());
      const all = await this.cluster.retained.loadAll();
      for (const e of all) this.retainedChanged(e, true);
      const inRedis = new Set(all.map((e) => e.topic));
      const gone = before.filter((entry) => !inRedis.has(entry.message.topic) && store.matchEntries(entry.message.topic, Date.now())[0] === entry);
      for (const entry of gone) store.remove(entry);
      this.deps.log.info({ retained: all.length, droppedLocal: gone.length }, 'retained messages loaded from the state backend');
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'retained reload failed (retried after the next outage)');
    }
  }

  // ---- sessions (replication-sessions.ts) -----------------------------------------------------------

  /** CONNECT, after authentication: the cluster-wide claim (see ReplicatedSessions.claim). */
  claim(conn: ClientConnection, cleanStart: boolean, expirySeconds: number): Promise<Refusal | undefined> {
    return this.sessions.claim(conn, cleanStart, expirySeconds, this.up);
  }

  opened(conn: ClientConnection, session: Session): void {
    this.sessions.opened(conn, session);
  }

  subscribed(session: Session, key: string, sub: StoredSubscription | undefined): void {
    this.sessions.subscribed(session, key, sub);
  }

  ended(session: Session, stillHeld: boolean): void {
    this.sessions.ended(session, stillHeld);
  }

  private registerMetrics(metrics: BrokerMetrics): void {
    const registers = [metrics.registry];
    const counters = this.cluster.link.counters;
    const up = new Gauge({ name: 'enclave_state_backend_up', help: 'State backend (Redis) reachable: 1 up, 0 down (degraded)', registers, collect: () => {
      up.set(this.up ? 1 : 0);
    } });
    const counter = (name: string, help: string, read: () => number): void => {
      const c = new Counter({ name, help, registers, collect() {
        c.reset();
        c.inc(read());
      } });
    };
    counter('enclave_state_backend_failures_total', 'State backend commands that failed (Redis down, timeout, script error)', () => counters.failures);
    counter('enclave_state_backend_reconnects_total', 'Reconnect attempts to the state backend', () => counters.reconnects);
    counter('enclave_state_backend_outages_total', 'Times the state backend link went down', () => counters.downs);
    counter('enclave_state_backend_gaps_total', 'Messages from other replicas never seen (stream trimmed past them)', () => this.cluster.bus.counters.gaps);
    const backlog = this.deps.backlog;
    if (backlog !== undefined) {
      counter('enclave_state_backend_read_held_seconds_total', 'Time reading other replicas\' messages waited for a connected session\'s queue to drain', () => backlog.heldMs / 1000);
      counter('enclave_state_backend_slow_consumers_total', 'Sessions that held reading for the longest hold and were let go (they drop at their queue limit)', () => backlog.slowConsumers);
    }
  }
}
