// Owns the broker's side of the cluster state layer (broker/cluster/, docs/ha.md) when
// `state.backend` is `redis`: routing through the bus (a PUBLISH accepted here reaches every
// replica; one from another replica is delivered here), retained messages in Redis order,
// shared-group picks and membership, the claim / takeover / resume of sessions, the write-through
// of persistent sessions (SessionMirror), readiness and the state-backend metrics. The broker holds
// one or none: with `backend: memory` nothing here runs and the local paths are as before.
import type { Logger } from 'pino';
import { Counter, Gauge } from 'prom-client';
import type { AuthenticatedClient } from './auth/hook.ts';
import { Cluster } from './cluster/cluster.ts';
import { linkConfig } from './cluster/config.ts';
import type { RedisStateConfig } from './cluster/config.ts';
import type { Envelope, SharedPick } from './cluster/envelope.ts';
import { LinkError } from './cluster/link.ts';
import { envelopeFromMessage, unseenDuringResume } from './cluster/routed.ts';
import type { Claim, QueueLimits, SessionStore, StoredSession } from './cluster/session-store.ts';
import { refusal } from './handlers/connect-auth.ts';
import type { Refusal } from './handlers/connect-auth.ts';
import type { BrokerMetrics } from './metrics.ts';
import { RC } from './protocol/reason-codes.ts';
import type { Message } from './router/message.ts';
import type { Router } from './router/router.ts';
import type { ClientConnection } from './services.ts';
import type { SessionRegistry } from './session/registry.ts';
import { ClusterMirror, deliverMissed, outgoingOf, queuedOf, routedMessage } from './session/mirror.ts';
import type { MirrorHost } from './session/mirror.ts';
import type { Outgoing, Session, StoredSubscription } from './session/session.ts';

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
}

/** A claim made by a CONNECT in progress, and what to deliver once its session is open. */
interface PendingClaim {
  epoch: number;
  persistent: boolean;
  /** Messages replayed from the bus for a session whose owner died (see replayFor): QoS ≤ 1 only. */
  replay: Envelope[];
  /**
   * Every message routed here between the claim and the install (the session was nowhere to be
   * delivered to): merged with what the previous owner stored, delivered at its QoS.
   */
  buffered: Envelope[];
}

/** Messages buffered per resume at most (a resume takes milliseconds, or the takeover timeout). */
const MAX_BUFFERED = 100_000;

/** How far before a dead owner's last heartbeat the replay starts (clock skew between replicas). */
const REPLAY_MARGIN_MS = 1_000;

export class Replication implements MirrorHost {
  readonly cluster: Cluster;
  readonly replicaId: string;
  private readonly deps: ReplicationDeps;
  private downSince: number | undefined = Date.now();
  /** Claims made by CONNECTs in progress: the epoch and whether the session is persistent. */
  private readonly pending = new WeakMap<ClientConnection, PendingClaim>();
  /** Shared picks of the message being routed here; the gate reads them. */
  private picks: SharedPick[] | undefined = undefined;
  private picksAreOwn = false;
  /** Claims between their claim and their install: messages routed meanwhile are kept for them. */
  private readonly resuming = new Set<PendingClaim>();
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
          log.info('state backend up');
        },
        down: (reason) => {
          this.downSince ??= Date.now();
          log.warn({ reason }, 'state backend down');
        },
      },
    }, {
      message: (e) => this.remote(e),
      retained: (e, kept) => this.retainedChanged(e, kept),
      takeover: (clientId, epoch) => this.takeover(clientId, epoch),
      recovered: () => void this.recover(),
      gap: (origin, missed) => log.warn({ origin, missed }, 'messages from another replica missed'),
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
    if (up) await this.reloadRetained();
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
    if (this.up) {
      try {
        // Stop reading first: the position stored with each released session is then final.
        await cluster.bus.stop();
        const position = cluster.bus.position ?? ''; // nothing read: the next owner replays nothing
        const releases: Promise<void>[] = [];
        for (const s of this.deps.registry.sessions.values()) {
          const m = s.mirror;
          if (m instanceof ClusterMirror && m.persistent) releases.push(cluster.sessions.release(s.clientId, m.epoch, position).catch(() => undefined));
        }
        await Promise.all(releases);
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
    if (this.resuming.size > 0) this.buffer(e);
    this.withPicks(e.sharedPicks, true, () => router.route(msg, publisher, this.gate));
    return msg.retain ? retained.publish(e).then(() => undefined) : bus.publish(e);
  }

  private remote(e: Envelope): void {
    if (this.resuming.size > 0) this.buffer(e);
    const msg = routedMessage(e);
    this.withPicks(e.sharedPicks, false, () => this.deps.router.deliver(msg, this.gate));
  }

  private buffer(e: Envelope): void {
    for (const p of this.resuming) if (p.buffered.length < MAX_BUFFERED) p.buffered.push(e);
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
   * again, and every persistent session held here is claimed again (a new epoch) with its
   * subscriptions written back, so it can still be resumed elsewhere. Messages in flight or queued
   * for it before the outage are not written back (docs/ha.md).
   */
  private async recover(): Promise<void> {
    await this.reloadRetained();
    const { sessions } = this.cluster;
    let rewritten = 0;
    for (const s of [...this.deps.registry.sessions.values()]) {
      const m = s.mirror;
      if (!(m instanceof ClusterMirror) || !m.persistent) continue;
      try {
        const claim = await sessions.claim(s.clientId, false);
        m.epoch = claim.epoch;
        for (const [key, sub] of s.subscriptions) await sessions.setSubscription(s.clientId, m.epoch, key, sub);
        if (s.link === undefined) await sessions.goOffline(s.clientId, m.epoch, s.expirySeconds);
        rewritten++;
      } catch (err) {
        this.deps.log.warn({ clientId: s.clientId, err: (err as Error).message }, 'session rewrite after outage failed');
      }
    }
    this.deps.log.info({ sessions: rewritten }, 'state backend recovered');
  }

  /** At start and after an outage: Redis' retained messages replace the local copies of those topics. */
  private async reloadRetained(): Promise<void> {
    try {
      const all = await this.cluster.retained.loadAll();
      for (const e of all) this.retainedChanged(e, true);
      this.deps.log.info({ retained: all.length }, 'retained messages loaded from the state backend');
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'retained reload failed (retried after the next outage)');
    }
  }

  // ---- sessions ------------------------------------------------------------------------------------

  /**
   * CONNECT, after authentication: claims the session cluster-wide (a new fencing epoch), asks a
   * previous owner elsewhere to let go (its client gets 0x8E), and loads what it stored. While
   * Redis is unreachable a session that must outlive the connection (or resume) cannot be promised:
   * v5 0x88, 3.1.1 return code 3; a clean session is accepted on this replica alone.
   */
  async claim(conn: ClientConnection, cleanStart: boolean, expirySeconds: number): Promise<Refusal | undefined> {
    const wantsState = !cleanStart || expirySeconds > 0;
    const unavailable = (): Refusal | undefined => (wantsState ? refusal(RC.SERVER_UNAVAILABLE, 'state backend unavailable') : undefined);
    if (!this.up) return unavailable();
    const { sessions } = this.cluster;
    const clientId = conn.clientId;
    try {
      const claim = await sessions.claim(clientId, cleanStart);
      const pending: PendingClaim = { epoch: claim.epoch, persistent: expirySeconds > 0, replay: [], buffered: [] };
      this.pending.set(conn, pending);
      if (!cleanStart && claim.present) this.resuming.add(pending);
      return await this.resume(conn, pending, claim);
    } catch (err) {
      this.pending.delete(conn);
      this.deps.log.warn({ clientId, err: (err as Error).message }, 'session claim failed');
      return unavailable();
    }
  }

  /** Takeover from the previous owner, then the load, the replay and the install (see claim). */
  private async resume(conn: ClientConnection, pending: PendingClaim, claim: Claim): Promise<undefined> {
    const { sessions, bus } = this.cluster;
    const clientId = conn.clientId;
    try {
      let released = true;
      if (claim.previousOwner !== undefined) {
        released = await bus.requestTakeover(clientId, claim.epoch, this.deps.config.takeoverTimeoutMs);
        this.deps.log.info({ clientId, from: claim.previousOwner, released }, 'session taken over from another replica');
      }
      if (!this.resuming.has(pending)) return undefined; // clean start, or nothing stored
      // This replica owned it and still holds it: the local copy is what Redis holds.
      if (claim.previousOwner === undefined && this.deps.registry.sessions.has(clientId)) return undefined;
      const [stored, replay, unread] = await Promise.all([
        sessions.load(clientId),
        released || claim.previousOwner === undefined ? [] : this.replayFor(claim.previousOwner),
        claim.releasedAt === undefined ? [] : bus.after(claim.releasedAt),
      ]);
      if (stored === undefined) return undefined;
      this.deps.log.info({ clientId, queued: stored.queue.length, inflight: stored.inflight.size, unread: unread.length, releasedAt: claim.releasedAt, buffered: pending.buffered.length }, 'session resumed from the state backend');
      this.install(clientId, stored);
      // What the previous owner never read (graceful stop) is new to the session: any QoS, like
      // the messages buffered here since the claim.
      const unseen = unseenDuringResume([...replay, ...unread, ...pending.buffered], stored.queue, stored.inflight);
      const replayed = new Set(replay);
      pending.replay = unseen.filter((e) => replayed.has(e));
      pending.buffered = unseen.filter((e) => !replayed.has(e));
      return undefined;
    } finally {
      this.resuming.delete(pending);
    }
  }

  /**
   * The owner did not answer the takeover: it died (or is cut off) with messages it had read from
   * the bus but not yet stored for this session. The bus stream still holds them: everything from
   * just before its last heartbeat is replayed, de-duplicated against what it did store, and
   * delivered at QoS ≤ 1 only (at least once: some were delivered and acknowledged already, those
   * come again as duplicates; a QoS 2 copy is never replayed, it must not arrive twice).
   */
  private async replayFor(deadOwner: string): Promise<Envelope[]> {
    const { shared, bus } = this.cluster;
    const last = await shared.lastHeartbeat(deadOwner);
    if (last === undefined) return [];
    return bus.since(last - REPLAY_MARGIN_MS);
  }

  /** Rebuilds a session another replica stored: subscriptions, in flight, incoming QoS 2 ids, queue. */
  private install(clientId: string, stored: StoredSession): void {
    const { registry, router } = this.deps;
    const session = registry.adopt(clientId);
    for (const [key, sub] of stored.subscriptions) router.subscribe(session, key, sub.filter, sub.group, sub.options);
    const inflight: [number, Omit<Outgoing, 'messageId'>][] = [];
    for (const [id, r] of stored.inflight) inflight.push([id, outgoingOf(r)]);
    const queued = stored.queue.map((e) => queuedOf(e, session.subscriptions.values()));
    session.restore(inflight, stored.incomingQos2, queued);
    registry.setSessionExpiry(session, stored.expirySeconds);
  }

  /** The CONNECT opened `session`: from now on its state is written through under the claimed epoch. */
  opened(conn: ClientConnection, session: Session): void {
    const claim = this.pending.get(conn);
    this.pending.delete(conn);
    session.mirror = claim === undefined ? undefined : new ClusterMirror(this, session.clientId, claim.epoch, claim.persistent);
    if (claim === undefined) return;
    const replayed = deliverMissed(session, claim.replay, 1);
    const buffered = deliverMissed(session, claim.buffered, 2);
    if (claim.replay.length + claim.buffered.length > 0) {
      this.deps.log.info({ clientId: session.clientId, replayed, buffered }, 'messages the session missed while it moved delivered');
    }
  }

  /** A subscription was added or replaced (persistent sessions keep it in Redis). */
  subscribed(session: Session, key: string, sub: StoredSubscription | undefined): void {
    const m = session.mirror;
    if (!(m instanceof ClusterMirror) || !m.persistent) return;
    m.write(this.cluster.sessions.setSubscription(session.clientId, m.epoch, key, sub));
  }

  /** A connection ended: the session ends in Redis too, or goes offline there with its expiry as TTL. */
  ended(session: Session, stillHeld: boolean): void {
    const m = session.mirror;
    if (!(m instanceof ClusterMirror) || session.link !== undefined) return;
    const { sessions } = this.cluster;
    if (!stillHeld || session.expirySeconds === 0) {
      session.mirror = undefined;
      m.write(sessions.delete(session.clientId, m.epoch));
    } else {
      m.persistent = true;
      m.write(sessions.goOffline(session.clientId, m.epoch, session.expirySeconds));
    }
  }

  /** Another replica claimed `clientId`: its client here is disconnected (0x8E) and the session let go. */
  async takeover(clientId: string, epoch: number): Promise<boolean> {
    const { registry } = this.deps;
    const session = registry.sessions.get(clientId);
    if (session === undefined) return false;
    const m = session.mirror;
    if (m instanceof ClusterMirror && m.epoch > epoch) return false; // claimed here again since
    const conn = registry.onlineConnection(clientId);
    registry.forget(clientId);
    conn?.close(RC.SESSION_TAKEN_OVER, 'session-taken-over'); // [MQTT-3.1.4-3]
    // Writes of this session went out before this PING on the same connection: once it answers,
    // Redis holds them and the new owner may load.
    await this.cluster.link.command.ping().catch(() => undefined);
    return true;
  }

  /** A write-through failed: FENCED means another replica owns the session now. */
  writeFailed(clientId: string, epoch: number, err: unknown): void {
    if (err instanceof LinkError && err.code === 'FENCED') {
      // Another owner: let go. No owner at all: Redis lost the session (restarted empty), and
      // recover() claims it again; the client stays.
      const [base] = this.cluster.sessions.keys(clientId);
      this.cluster.link.command.hget(base, 'owner').then((owner) => {
        if (owner !== null && owner !== this.replicaId) void this.takeover(clientId, epoch + 1);
      }, () => undefined);
      return;
    }
    this.deps.log.debug({ clientId, err: (err as Error).message }, 'session write-through failed');
  }

  /** Messages are queued and dropped in Redis as locally. */
  get queueLimits(): QueueLimits {
    return this.deps.queue;
  }

  get sessionStore(): SessionStore {
    return this.cluster.sessions;
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
  }
}
