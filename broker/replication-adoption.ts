// Owns what becomes of the sessions of a replica that crashed (SIGKILL, a lost node): every live
// replica watches the heartbeats (cluster/shared.ts) and, once a peer has been silent for longer
// than the liveness window, adopts what it owned; the compare-and-set on the owner
// (cluster/adoption.ts) gives each session to exactly one live replica. The adopter publishes the
// will of a client whose connection ended with the crash (its Will Delay Interval counted from the
// dead replica's last heartbeat) or of one whose delayed will was pending, keeps a persistent
// session as an offline session of its own (QoS 1/2 messages are queued for it; the bus is replayed
// from just before the crash, so what was published before the adoption is not missed: at QoS ≤ 1
// while the dead replica may still have delivered it, at any QoS once it surely had stopped) and ends a
// clean one. Only the winner of a session does any of this, so a will goes out once cluster-wide.
import type { Logger } from 'pino';
import type { Cluster } from './cluster/cluster.ts';
import type { Envelope } from './cluster/envelope.ts';
import { NEVER_EXPIRES } from './cluster/session-store.ts';
import type { StoredSession } from './cluster/session-store.ts';
import type { Message } from './router/message.ts';
import { REPLAY_MARGIN_MS } from './replication-sessions.ts';
import type { PendingClaim, ReplicatedSessions } from './replication-sessions.ts';
import { ClusterMirror, willMessage } from './session/mirror.ts';
import type { SessionRegistry } from './session/registry.ts';

export interface AdopterDeps {
  cluster: Cluster;
  sessions: ReplicatedSessions;
  registry: SessionRegistry;
  /** Publishes a will like a client's PUBLISH (to every replica). */
  route: (msg: Message) => void;
  log: Logger;
}

const identity = (e: Envelope): string => `${e.origin}\u0000${e.seq}`;

/** A gone replica that owns nothing any more is forgotten this long after its last heartbeat. */
const FORGET_AFTER_MS = 10 * 60_000;

/** What the sessions of a dead replica may have missed (see adoptAllOf). */
interface Missed {
  /** From just before its last heartbeat until it surely had stopped: QoS ≤ 1 only. */
  early: Envelope[];
  /** After that: any QoS. */
  late: Envelope[];
  /** Routed here since the adoption began (grows while it runs): any QoS. */
  buffered: Envelope[];
}

/** A will to publish: when, and how. */
interface DueWill {
  dueMs: number;
  publish: () => void;
}

export class Adopter {
  private readonly deps: AdopterDeps;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Since when the link is up without a break; undefined while down. */
  private upSince: number | undefined;
  /**
   * Sessions this replica won (the owner is this replica in Redis, so nobody else adopts them) but
   * could not install (Redis failed on the way): tried again every tick until installed or gone.
   */
  private readonly unfinished = new Map<string, (buffered: Envelope[]) => Promise<boolean>>();

  constructor(deps: AdopterDeps) {
    this.deps = deps;
  }

  /** Looks at the heartbeats every heartbeat interval. */
  start(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.tick(), this.deps.cluster.shared.timing.heartbeatMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  linkUp(): void {
    this.upSince ??= Date.now();
  }

  linkDown(): void {
    this.upSince = undefined;
  }

  /**
   * One look at the released sessions with a pending will and at the heartbeats: adopts those
   * sessions, and what the silent replicas still own.
   */
  async tick(): Promise<void> {
    const { shared } = this.deps.cluster;
    const { heartbeatMs, liveMs } = shared.timing;
    if (this.running || this.upSince === undefined) return;
    this.running = true;
    try {
      await this.retryUnfinished();
      await this.adoptReleasedWills();
      // Right after a start or an outage every peer's heartbeat may be old (Redis was gone for all
      // of them): a peer is judged only once this replica has been up for a whole window and a beat.
      if (Date.now() - this.upSince < liveMs + heartbeatMs) return;
      for (const [replica, last] of await shared.silent()) await this.adoptAllOf(replica, last);
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'adoption of a gone replica\'s sessions failed (retried)');
    } finally {
      this.running = false;
    }
  }

  /**
   * At start, before the listeners: a previous process under this replica id that crashed (a
   * container restarted in its pod heartbeats again under the same id before anyone sees it
   * silent) left sessions owned by this id that nobody here holds. Nobody else would adopt them:
   * their wills would never go out and, online in Redis, they would never expire. They are adopted
   * here like a dead peer's.
   */
  async adoptPrevious(): Promise<void> {
    const { cluster, log } = this.deps;
    const last = cluster.previousHeartbeat;
    if (last === undefined) return;
    try {
      await this.adoptAllOf(cluster.replicaId, last);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'adoption of a previous process\'s sessions failed');
    }
  }

  /**
   * Sessions a replica released at a graceful stop with a delayed will pending (nobody owns them:
   * nobody would send it): each is adopted by one live replica, which sends the will at its due
   * time unless the client is back first. What was published after the releaser stopped reading
   * the bus, nobody sent the session: queued at any QoS.
   */
  private async adoptReleasedWills(): Promise<void> {
    const { cluster, sessions, log } = this.deps;
    const ids = await cluster.sessions.releasedWills();
    if (ids.length === 0) return;
    const batch: PendingClaim = { epoch: 0, persistent: true, present: true, replay: [], buffered: [] };
    sessions.hold(batch);
    try {
      for (const clientId of ids) {
        const won = await cluster.sessions.adoptReleased(clientId);
        if (won === undefined) continue;
        await this.install(clientId, batch.buffered, async (buffered) => {
          const late = won.releasedAt === undefined ? [] : await cluster.bus.after(won.releasedAt);
          return await this.adopt(clientId, won.epoch, 'released', 0, { early: [], late, buffered });
        });
      }
    } finally {
      sessions.done(batch);
    }
    log.info({ released: ids.length }, 'released sessions with a pending will looked at');
  }

  private async adoptAllOf(dead: string, lastHeartbeat: number): Promise<void> {
    const { cluster, sessions, log } = this.deps;
    const owned = await cluster.adoption.ownedBy(dead);
    if (owned.length === 0) {
      if (Date.now() - lastHeartbeat > FORGET_AFTER_MS) {
        // Its shared-group counts would stay in Redis for ever (it is not picked, being silent).
        await cluster.shared.dropMembersOf(dead);
        await cluster.shared.forget(dead, lastHeartbeat);
      }
      return;
    }
    // Everything routed here from now on is kept for the sessions being adopted; the replay covers
    // what came before, back to just before the crash (both de-duplicated by origin and sequence).
    // Up to a heartbeat interval (and the margin) after its last heartbeat the dead replica may have
    // delivered a message and died before storing that: replayed at QoS ≤ 1 only (a QoS 2 copy must
    // not arrive twice). After that it was dead: nothing it could have sent, replayed at any QoS.
    const batch: PendingClaim = { epoch: 0, persistent: true, present: true, replay: [], buffered: [] };
    sessions.hold(batch);
    try {
      const missed = await this.missedOf(lastHeartbeat);
      let adopted = 0;
      for (const clientId of owned) {
        const epoch = await cluster.adoption.adopt(clientId, dead);
        if (epoch === undefined) continue;
        let retry = false;
        if (await this.install(clientId, batch.buffered, async (buffered) => {
          const m = retry ? await this.missedOf(lastHeartbeat) : missed; // a retry reads the bus again
          retry = true;
          return await this.adopt(clientId, epoch, dead, lastHeartbeat, { ...m, buffered });
        })) adopted++;
      }
      log.info({ replica: dead, lastHeartbeat, owned: owned.length, adopted }, 'sessions of a gone replica adopted');
    } finally {
      sessions.done(batch);
    }
  }

  /** What the sessions of a replica dead since `lastHeartbeat` may have missed (see adoptAllOf). */
  private async missedOf(lastHeartbeat: number): Promise<Omit<Missed, 'buffered'>> {
    const { cluster } = this.deps;
    const deadBy = lastHeartbeat + cluster.shared.timing.heartbeatMs + REPLAY_MARGIN_MS;
    const [replay, late] = await Promise.all([cluster.bus.since(lastHeartbeat - REPLAY_MARGIN_MS), cluster.bus.since(deadBy)]);
    const lateIds = new Set(late.map(identity));
    return { early: replay.filter((e) => !lateIds.has(identity(e))), late };
  }

  /**
   * Runs `adopt` for a session this replica won; when it fails (Redis), the session is kept in
   * `unfinished` and tried again next tick: nobody else would adopt it any more.
   */
  private async install(clientId: string, buffered: Envelope[], adopt: (buffered: Envelope[]) => Promise<boolean>): Promise<boolean> {
    try {
      const ok = await adopt(buffered);
      this.unfinished.delete(clientId);
      return ok;
    } catch (err) {
      this.unfinished.set(clientId, adopt);
      this.deps.log.warn({ clientId, err: (err as Error).message }, 'adopting a session failed (tried again)');
      return false;
    }
  }

  /** The sessions won earlier whose install failed, each with what was routed here meanwhile. */
  private async retryUnfinished(): Promise<void> {
    if (this.unfinished.size === 0) return;
    const { sessions } = this.deps;
    const batch: PendingClaim = { epoch: 0, persistent: true, present: true, replay: [], buffered: [] };
    sessions.hold(batch);
    try {
      for (const [clientId, adopt] of [...this.unfinished]) await this.install(clientId, batch.buffered, adopt);
    } finally {
      sessions.done(batch);
    }
  }

  /**
   * Installs one session taken with `epoch` from `dead` (a replica, or 'released'); false when it
   * ended or was claimed since.
   */
  private async adopt(clientId: string, epoch: number, dead: string, lastHeartbeat: number, missedThere: Missed): Promise<boolean> {
    const { cluster, sessions, registry } = this.deps;
    const store = cluster.sessions;
    const stored = await store.load(clientId);
    if (stored === undefined || stored.epoch !== epoch) return false; // ended, or claimed since
    const now = Date.now();
    const will = this.dueWill(clientId, epoch, stored, lastHeartbeat);
    // A connected client's session expiry started when its connection ended, with the crash.
    const neverEnds = stored.expirySeconds >= NEVER_EXPIRES || (!stored.connected && stored.ttlMs === undefined);
    const expiryMs = neverEnds ? undefined : stored.connected ? lastHeartbeat + stored.expirySeconds * 1000 - now : stored.ttlMs!;
    if (stored.expirySeconds === 0 || (expiryMs !== undefined && expiryMs <= 0)) {
      // The session ended with its connection: the will goes out now [MQTT-3.1.3-9], the session goes.
      will?.publish();
      await store.delete(clientId, epoch);
      this.deps.log.info({ clientId, from: dead, will: will !== undefined }, 'session of a gone replica ended');
      return true;
    }
    if (stored.connected) await store.goOffline(clientId, epoch, expiryMs === undefined ? NEVER_EXPIRES : Math.ceil(expiryMs / 1000));
    const session = sessions.install(clientId, stored);
    const mirror = session.mirror = new ClusterMirror(sessions, clientId, epoch, true);
    mirror.will = will === undefined ? undefined : stored.will;
    mirror.willAt = will?.dueMs;
    const missed: PendingClaim = { epoch, persistent: true, present: true, replay: [], buffered: [] };
    // `buffered` is read now, not before the awaits above: it grew meanwhile.
    sessions.missed(missed, stored, missedThere.early, [...missedThere.late, ...missedThere.buffered]);
    sessions.deliverMissed(session, missed);
    registry.adoptedOffline(session, expiryMs, will?.publish, (will?.dueMs ?? now) - now);
    this.deps.log.info({ clientId, from: dead, queued: session.queuedCount, willInMs: will === undefined ? undefined : will.dueMs - now }, 'session of a gone replica adopted');
    return true;
  }

  /**
   * The will still to publish: a client connected to the dead replica lost its connection with the
   * crash (at its last heartbeat, as near as is known); an offline one may have had a delayed will
   * pending. Published by the adopter only, then removed from Redis.
   */
  private dueWill(clientId: string, epoch: number, stored: StoredSession, lastHeartbeat: number): DueWill | undefined {
    const w = stored.will;
    if (w === undefined) return undefined;
    let dueMs: number;
    if (stored.connected) dueMs = lastHeartbeat + Math.min(w.delaySeconds, stored.expirySeconds) * 1000;
    else if (stored.willAt !== undefined) dueMs = stored.willAt;
    else return undefined; // sent, or not to be sent (DISCONNECT 0x00)
    const { route, log, cluster } = this.deps;
    return {
      dueMs,
      publish: () => {
        route(willMessage(w));
        log.info({ clientId, topic: w.message.topic }, 'will of a client of a gone replica published');
        cluster.sessions.setWill(clientId, epoch, undefined).catch(() => undefined); // the session may be gone already
      },
    };
  }
}
