// Owns where a session lives when replicas share state (`state.backend: redis`, docs/ha.md): the
// claim of a CONNECT (a new fencing epoch), the takeover from a previous owner elsewhere, the load
// and install of what it stored, the messages a moving session missed (replayed from the bus after
// a dead owner, read after a released one or after a live one's handover, buffered during the
// move), the write-through that follows (SessionMirror, session/mirror.ts) including the will of
// the connection, the end or offline state of a session at disconnect or expiry (told again after
// an outage when Redis could not be), letting a session go (with its handover) when another replica
// took it. broker/replication.ts holds one of these and writes its sessions back after an outage.
import type { Logger } from 'pino';
import type { Cluster } from './cluster/cluster.ts';
import type { RedisStateConfig } from './cluster/config.ts';
import type { Envelope } from './cluster/envelope.ts';
import { LinkError } from './cluster/link.ts';
import { unseenDuringResume } from './cluster/routed.ts';
import type { Claim, QueueLimits, SessionStore, StoredSession } from './cluster/session-store.ts';
import { refusal } from './handlers/connect-auth.ts';
import type { Refusal } from './handlers/connect-auth.ts';
import { RC } from './protocol/reason-codes.ts';
import type { Router } from './router/router.ts';
import type { ClientConnection } from './services.ts';
import { ClusterMirror, deliverMissed, outgoingOf, queuedOf, snapshotOf, storedWill } from './session/mirror.ts';
import type { MirrorHost } from './session/mirror.ts';
import type { SessionRegistry } from './session/registry.ts';
import type { Outgoing, Session, StoredSubscription, WillMessage } from './session/session.ts';

export interface ReplicatedSessionsDeps {
  cluster: Cluster;
  config: RedisStateConfig;
  queue: QueueLimits;
  router: Router;
  registry: SessionRegistry;
  log: Logger;
}

/** A claim made by a CONNECT in progress, and what to deliver once its session is open. */
export interface PendingClaim {
  epoch: number;
  persistent: boolean;
  /** The session existed before this claim (Redis may hold a will of an earlier connection). */
  present: boolean;
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
export const REPLAY_MARGIN_MS = 1_000;

export class ReplicatedSessions implements MirrorHost {
  private readonly deps: ReplicatedSessionsDeps;
  /** Claims made by CONNECTs in progress: the epoch and whether the session is persistent. */
  private readonly pending = new WeakMap<ClientConnection, PendingClaim>();
  /** Claims between their claim and their install: messages routed meanwhile are kept for them. */
  private readonly resuming = new Set<PendingClaim>();
  /**
   * Sessions let go because a write was fenced, by the claim's epoch: the new owner's takeover
   * request may come after that (its answer then is yes, the handover is done), for a takeover timeout.
   */
  private readonly letGo = new Map<string, number>();
  /** Sessions that ended here while Redis was unreachable: their end, told again by finishEnds(). */
  private readonly unended = new Map<string, () => Promise<void>>();

  constructor(deps: ReplicatedSessionsDeps) {
    this.deps = deps;
    deps.registry.delayedWillSent = (session) => this.willSent(session);
    deps.registry.sessionExpired = (session) => this.expired(session);
  }

  private get cluster(): Cluster {
    return this.deps.cluster;
  }

  /** A message routed here (own or another replica's): kept for every session being moved here. */
  buffer(e: Envelope): void {
    if (this.resuming.size === 0) return;
    for (const p of this.resuming) if (p.buffered.length < MAX_BUFFERED) p.buffered.push(e);
  }

  /** From now until `done()`, messages routed here are kept in `p.buffered`. */
  hold(p: PendingClaim): void {
    this.resuming.add(p);
  }

  done(p: PendingClaim): void {
    this.resuming.delete(p);
  }

  /**
   * CONNECT, after authentication: claims the session cluster-wide (a new fencing epoch), asks a
   * previous owner elsewhere to let go (its client gets 0x8E), and loads what it stored. While
   * Redis is unreachable a session that must outlive the connection (or resume) cannot be promised:
   * v5 0x88, 3.1.1 return code 3; a clean session is accepted on this replica alone.
   */
  async claim(conn: ClientConnection, cleanStart: boolean, expirySeconds: number, up: boolean): Promise<Refusal | undefined> {
    const wantsState = !cleanStart || expirySeconds > 0;
    const unavailable = (): Refusal | undefined => (wantsState ? refusal(RC.SERVER_UNAVAILABLE, 'state backend unavailable') : undefined);
    if (!up) return unavailable();
    const { sessions } = this.cluster;
    const clientId = conn.clientId;
    try {
      const claim = await sessions.claim(clientId, cleanStart, expirySeconds);
      const pending: PendingClaim = { epoch: claim.epoch, persistent: expirySeconds > 0, present: claim.present, replay: [], buffered: [] };
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
      // A live previous owner handed over where it had read the bus: what came after, it never saw.
      const unseenThere = stored.readTo === undefined ? [] : await bus.after(stored.readTo);
      this.install(clientId, stored);
      // What the previous owner never read (graceful stop, or a takeover) is new to the session:
      // any QoS, like the messages buffered here since the claim, except those a live previous
      // owner sent the client after the claim (its handover says up to where): QoS 2 stays exactly once.
      const sentBefore = (e: Envelope): boolean => e.seq <= (stored.sentUpTo.get(e.origin) ?? 0);
      this.missed(pending, stored, replay, [...unread, ...unseenThere, ...pending.buffered].filter((e) => !sentBefore(e)));
      return undefined;
    } finally {
      this.resuming.delete(pending);
    }
  }

  /**
   * Splits what a moving session may have missed into the replay (QoS ≤ 1) and the rest (any QoS),
   * without what the previous owner stored: opened() (or the caller) delivers them.
   */
  missed(pending: PendingClaim, stored: StoredSession, replay: Envelope[], fresh: Envelope[]): void {
    const unseen = unseenDuringResume([...replay, ...fresh], stored.queue, stored.inflight);
    const replayed = new Set(replay);
    pending.replay = unseen.filter((e) => replayed.has(e));
    pending.buffered = unseen.filter((e) => !replayed.has(e));
  }

  /**
   * The owner did not answer the takeover: it died (or is cut off) with messages it had read from
   * the bus but not yet stored for this session. The bus stream still holds them: everything from
   * just before its last heartbeat is replayed, de-duplicated against what it did store, and
   * delivered at QoS ≤ 1 only (at least once: some were delivered and acknowledged already, those
   * come again as duplicates; a QoS 2 copy is never replayed, it must not arrive twice).
   */
  async replayFor(deadOwner: string): Promise<Envelope[]> {
    const { shared, bus } = this.cluster;
    // A crashed owner restarted under the same id (a container restart) has beaten again since:
    // the beat that counts is its previous process's, the one that held the session.
    const [last, restarted] = await Promise.all([shared.lastHeartbeat(deadOwner), shared.restartedAt(deadOwner)]);
    const from = Math.min(last ?? Infinity, restarted ?? Infinity);
    if (from === Infinity) return [];
    return bus.since(from - REPLAY_MARGIN_MS);
  }

  /** Rebuilds a session another replica stored: subscriptions, in flight, incoming QoS 2 ids, queue. */
  install(clientId: string, stored: StoredSession): Session {
    const { registry, router } = this.deps;
    const session = registry.adopt(clientId);
    for (const [key, sub] of stored.subscriptions) router.subscribe(session, key, sub.filter, sub.group, sub.options);
    const inflight: [number, Omit<Outgoing, 'messageId'>][] = [];
    for (const [id, r] of stored.inflight) inflight.push([id, outgoingOf(r)]);
    const queued = stored.queue.map((e) => queuedOf(e, session.subscriptions.values()));
    session.restore(inflight, stored.incomingQos2, queued);
    registry.setSessionExpiry(session, stored.expirySeconds);
    return session;
  }

  /** The CONNECT opened `session`: from now on its state is written through under the claimed epoch. */
  opened(conn: ClientConnection, session: Session): void {
    const claim = this.pending.get(conn);
    this.pending.delete(conn);
    if (claim === undefined) {
      session.mirror = undefined;
      return;
    }
    const previous = session.mirror;
    const mirror = session.mirror = new ClusterMirror(this, session.clientId, claim.epoch, claim.persistent);
    mirror.staleWill = claim.present;
    // Back on this replica: what the earlier connection was sent still counts for a later handover.
    if (previous instanceof ClusterMirror) for (const [origin, seq] of previous.sentUpTo) mirror.sentUpTo.set(origin, seq);
    this.deliverMissed(session, claim);
  }

  /**
   * The CONNECT's will goes to Redis once the client may publish it (a will is a publish like any
   * other; an adopter has no client to ask, so it is asked now), replacing an earlier connection's.
   */
  keepWill(mirror: ClusterMirror, will: WillMessage | undefined, conn: ClientConnection): void {
    const { sessions } = this.cluster;
    const { clientId, epoch } = mirror;
    if (will === undefined) {
      if (mirror.staleWill) mirror.write(sessions.setWill(clientId, epoch, undefined));
      mirror.staleWill = false;
      return;
    }
    void this.deps.registry.willAllowed(will, conn.client, conn.authorizeAll).then((ok) => {
      if (conn.session?.mirror !== mirror || conn.isClosed()) return; // it ended meanwhile: ended() decided
      mirror.will = ok ? storedWill(will, clientId) : undefined;
      if (mirror.will !== undefined) mirror.write(sessions.setWill(clientId, epoch, mirror.will));
      else if (mirror.staleWill) mirror.write(sessions.setWill(clientId, epoch, undefined));
      mirror.staleWill = false;
    });
  }

  /** A delayed will went out here: Redis lets go of it. */
  private willSent(session: Session): void {
    const m = session.mirror;
    if (!(m instanceof ClusterMirror) || m.will === undefined) return;
    m.will = undefined;
    m.willAt = undefined;
    m.write(this.cluster.sessions.setWill(session.clientId, m.epoch, undefined));
  }

  /** Delivers what the session missed while it moved (see missed()). */
  deliverMissed(session: Session, claim: PendingClaim): void {
    const replayed = deliverMissed(session, claim.replay, 1);
    const buffered = deliverMissed(session, claim.buffered, 2);
    if (claim.replay.length + claim.buffered.length > 0) {
      this.deps.log.info({ clientId: session.clientId, replayed, buffered }, 'messages the session missed while it moved delivered');
    }
  }

  /** An offline session held here expired: Redis lets go of it (and of its owned-set member). */
  private expired(session: Session): void {
    const m = session.mirror;
    if (!(m instanceof ClusterMirror)) return;
    session.mirror = undefined;
    this.endInRedis(session.clientId, m, () => this.cluster.sessions.expired(session.clientId, m.epoch));
  }

  /** The session ended here: Redis lets go of it now, or after the outage that keeps it from it. */
  private endInRedis(clientId: string, m: ClusterMirror, end: () => Promise<void>): void {
    this.unended.delete(clientId);
    m.write(end().catch((err: unknown) => {
      if (!isFenced(err)) this.unended.set(clientId, end);
      throw err;
    }));
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
      this.endInRedis(session.clientId, m, () => sessions.delete(session.clientId, m.epoch));
    } else {
      m.persistent = true;
      m.write(sessions.goOffline(session.clientId, m.epoch, session.expirySeconds));
      this.willAfterDisconnect(session, m);
    }
  }

  /**
   * The registry sent the will at once, or will not send it (DISCONNECT 0x00), or delayed it: a
   * delayed will stays in Redis with its due time, for an adopter should this replica crash first.
   */
  private willAfterDisconnect(session: Session, m: ClusterMirror): void {
    const { sessions } = this.cluster;
    if (m.will === undefined) return;
    if (session.willTimer !== undefined) {
      m.willAt = Date.now() + Math.min(m.will.delaySeconds, session.expirySeconds) * 1000;
      m.write(sessions.setWillDue(session.clientId, m.epoch, m.willAt));
      return;
    }
    m.will = undefined;
    m.write(sessions.setWill(session.clientId, m.epoch, undefined));
  }

  /**
   * A graceful stop, after the connections ended: every persistent session held here is released
   * with the bus position this replica read to, so the next owner needs no takeover round.
   */
  async releaseAll(position: string): Promise<void> {
    const { sessions } = this.cluster;
    const releases: Promise<void>[] = [];
    for (const s of this.deps.registry.sessions.values()) {
      const m = s.mirror;
      if (m instanceof ClusterMirror && m.persistent) releases.push(sessions.release(s.clientId, m.epoch, position).catch(() => undefined));
    }
    await Promise.all(releases);
  }

  /**
   * After an outage: the ends Redis could not be told of are told now (a clean session's keys have
   * no TTL and its owner lives on: Redis, back with its data, would keep them for ever).
   */
  async finishEnds(): Promise<void> {
    for (const [clientId, end] of [...this.unended]) {
      this.unended.delete(clientId);
      await end().catch((err: unknown) => {
        if (!isFenced(err)) this.unended.set(clientId, end); // down again: the next recovery retries
      });
    }
  }

  /** Another replica claimed `clientId`: its client here is disconnected (0x8E) and the session let go. */
  async takeover(clientId: string, epoch: number): Promise<boolean> {
    const { registry } = this.deps;
    const session = registry.sessions.get(clientId);
    if (session === undefined) return this.letGo.get(clientId) === epoch;
    const m = session.mirror;
    if (m instanceof ClusterMirror && m.epoch > epoch) return false; // claimed here again since
    // What this replica holds now: its writes since the claim were fenced.
    const last = m instanceof ClusterMirror && m.persistent ? snapshotOf(session, m) : undefined;
    const conn = registry.onlineConnection(clientId);
    registry.forget(clientId);
    conn?.close(RC.SESSION_TAKEN_OVER, 'session-taken-over'); // [MQTT-3.1.4-3]
    if (last !== undefined && m instanceof ClusterMirror) {
      await this.cluster.sessions.handOver(clientId, epoch, last, m.sentUpTo, this.cluster.bus.position).catch((err: unknown) => {
        this.deps.log.warn({ clientId, err: (err as Error).message }, 'session handover failed');
      });
    }
    // Writes of this session went out before this PING on the same connection: once it answers,
    // Redis holds them and the new owner may load.
    await this.cluster.link.command.ping().catch(() => undefined);
    return true;
  }

  /** A write-through failed: FENCED means another replica owns the session now. */
  writeFailed(clientId: string, epoch: number, err: unknown): void {
    if (isFenced(err)) {
      // Another owner: let go. No owner at all: Redis lost the session (restarted empty), and
      // the recovery claims it again; the client stays.
      // Letting go here answers the new owner's takeover request too (it may still be on its way:
      // once the session is gone here, the request finds nothing and would go unanswered).
      const [base] = this.cluster.sessions.keys(clientId);
      this.cluster.link.command.hmget(base, 'owner', 'epoch').then(async ([owner, claimed]) => {
        if (owner === null || owner === undefined || owner === this.cluster.replicaId) return;
        const newEpoch = Number(claimed ?? epoch + 1);
        if (!await this.takeover(clientId, newEpoch)) return;
        this.letGo.set(clientId, newEpoch);
        setTimeout(() => {
          if (this.letGo.get(clientId) === newEpoch) this.letGo.delete(clientId);
        }, this.deps.config.takeoverTimeoutMs).unref();
        await this.cluster.bus.control({ type: 'released', clientId, epoch: newEpoch, to: owner });
      }).catch(() => undefined);
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
}

function isFenced(err: unknown): boolean {
  return err instanceof LinkError && err.code === 'FENCED';
}
