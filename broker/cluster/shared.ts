// Owns shared subscriptions across replicas: each message goes to ONE member of a `$share` group
// cluster-wide. Membership is a Redis hash per group (`shared:<group>/<filter>`, field = replica,
// value = how many of that replica's sessions are members), cached here and kept fresh by `shared`
// control messages on the bus plus a full reload after a reconnect. The ORIGIN replica picks the
// replica for every group the topic matches (weighted by members, round-robin) and writes the
// picks into the envelope: the picked replica alone delivers, to one of its local members. Replicas
// heartbeat into a sorted set; a replica silent for `liveMs` is not picked (its members' messages go
// to members elsewhere instead of to a dead pod), and its sessions are adopted by the live ones
// (silent(), broker/replication-adoption.ts).
import type { Bus, ControlEnvelope } from './bus.ts';
import { sharedKey } from './envelope.ts';
import type { Envelope, SharedPick } from './envelope.ts';
import type { RedisLink } from './link.ts';
import { Script } from './script.ts';
import { topicMatches } from '../router/topics.ts';

// KEYS: replicas. ARGV: replica, the heartbeat it was last seen with.
const FORGET = new Script(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`);

interface Group {
  filter: string;
  members: Map<string, number>;
  turn: number;
}

export interface SharedOptions {
  heartbeatMs?: number;
  /** A replica whose last heartbeat is older than this is not picked. */
  liveMs?: number;
}

export class SharedGroups {
  private readonly link: RedisLink;
  private readonly bus: Bus;
  private readonly me: string;
  private readonly groups = new Map<string, Group>();
  private live: Set<string> | undefined;
  private readonly heartbeatMs: number;
  private readonly liveMs: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly replicasKey: string;
  /** This replica's own member counts, the truth it writes back after Redis lost them. */
  private readonly local = new Map<string, number>();

  constructor(link: RedisLink, bus: Bus, options: SharedOptions = {}) {
    this.link = link;
    this.bus = bus;
    this.me = bus.replicaId;
    this.heartbeatMs = options.heartbeatMs ?? 2_000;
    this.liveMs = options.liveMs ?? 10_000;
    this.replicasKey = `${link.keyPrefix}replicas`;
  }

  private hashKey(key: string): string {
    return `${this.link.keyPrefix}shared:${key}`;
  }

  /** Loads every group, starts the heartbeat; call again after the link comes back up. */
  async start(): Promise<void> {
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.heartbeat().catch(() => undefined), this.heartbeatMs);
    this.timer.unref();
    await this.heartbeat();
    await this.reload();
    await this.dropStale();
  }

  /**
   * Redis may count members of this replica id that this process does not hold: a previous process
   * under the same id (a container restarted in its pod) crashed with them. Picks would send those
   * groups' messages here, where nobody receives them: they go.
   */
  private async dropStale(): Promise<void> {
    await this.dropMembersOf(this.me);
  }

  /**
   * `replica`'s member counts leave every group, in Redis and on every replica: a gone replica's
   * (broker/replication-adoption.ts, once it is forgotten), or this id's that this process does not
   * hold.
   */
  async dropMembersOf(replica: string): Promise<void> {
    for (const [key, g] of [...this.groups]) {
      if (!g.members.has(replica) || (replica === this.me && this.local.has(key))) continue;
      try {
        await this.link.command.hdel(this.hashKey(key), replica);
      } catch (err) {
        throw this.link.failed(err, 'shared stale members');
      }
      this.apply(key, g.filter, replica, 0);
      await this.bus.control({ type: 'shared', key, replica, members: 0 });
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** This replica's member count of `group/filter` changed by `delta` (a session joined or left). */
  async change(group: string, filter: string, delta: number): Promise<void> {
    const key = sharedKey(group, filter);
    let members: number;
    try {
      members = await this.link.command.hincrby(this.hashKey(key), this.me, delta);
      if (members <= 0) await this.link.command.hdel(this.hashKey(key), this.me);
    } catch (err) {
      throw this.link.failed(err, 'shared membership');
    }
    if (members > 0) this.local.set(key, members);
    else this.local.delete(key);
    this.apply(key, filter, this.me, Math.max(0, members));
    await this.bus.control({ type: 'shared', key, replica: this.me, members: Math.max(0, members) });
  }

  /** This replica stops: its members leave every group at once (not when its heartbeat goes stale). */
  async leaveAll(): Promise<void> {
    const keys = [...this.local.keys()];
    this.local.clear();
    try {
      for (const key of keys) await this.link.command.hdel(this.hashKey(key), this.me);
      await this.link.command.zrem(this.replicasKey, this.me);
    } catch (err) {
      throw this.link.failed(err, 'shared leave');
    }
    for (const key of keys) await this.bus.control({ type: 'shared', key, replica: this.me, members: 0 });
  }

  /**
   * After the link came back up: Redis may have restarted empty, so this replica writes its own
   * counts again (absolute, not increments) and reloads everyone else's.
   */
  async restore(): Promise<void> {
    try {
      for (const [key, n] of this.local) await this.link.command.hset(this.hashKey(key), this.me, n);
    } catch (err) {
      throw this.link.failed(err, 'shared restore');
    }
    await this.start();
    for (const [key, n] of this.local) await this.bus.control({ type: 'shared', key, replica: this.me, members: n });
  }

  /** Feed control messages from the bus here. */
  onControl(m: ControlEnvelope): void {
    if (m.type !== 'shared') return;
    // It just spoke: live, even if its first heartbeat is newer than this replica's last look at
    // the heartbeats (else a replica that just started gets no share for up to heartbeatMs).
    if (m.members > 0) this.live?.add(m.replica);
    const slash = m.key.indexOf('/');
    if (slash <= 0) return;
    this.apply(m.key, m.key.slice(slash + 1), m.replica, m.members);
  }

  /** The picks for a message about to be published, undefined when no group matches. */
  pick(topic: string): SharedPick[] | undefined {
    let picks: SharedPick[] | undefined;
    for (const [key, g] of this.groups) {
      if (!topicMatches(g.filter, topic)) continue;
      const replica = this.choose(g);
      if (replica !== undefined) (picks ??= []).push({ key, replica });
    }
    return picks;
  }

  /** Whether this replica delivers `e` to its members of `group/filter`. */
  delivers(e: Envelope, group: string, filter: string): boolean {
    const key = sharedKey(group, filter);
    return e.sharedPicks?.some((p) => p.key === key && p.replica === this.me) ?? false;
  }

  /** Members per replica of one group, as this replica knows it. */
  membersOf(group: string, filter: string): Map<string, number> {
    return new Map(this.groups.get(sharedKey(group, filter))?.members ?? []);
  }

  /**
   * A process starting under `this` replica id found a heartbeat of a previous one that did not
   * stop gracefully: its last beat is kept for a while (one minute), since this process's own beats
   * overwrite it. A replica resuming a session the crashed process owned replays the bus from there
   * (restartedAt), not from the new process's beat.
   */
  async markRestart(previous: number): Promise<void> {
    try {
      await this.link.command.set(`${this.replicasKey}:restarted:${this.me}`, String(previous), 'PX', 60_000);
    } catch (err) {
      throw this.link.failed(err, 'replica restart mark');
    }
  }

  /** The last heartbeat of `replica`'s previous process, when it crashed and restarted within a minute. */
  async restartedAt(replica: string): Promise<number | undefined> {
    let value: string | null;
    try {
      value = await this.link.command.get(`${this.replicasKey}:restarted:${replica}`);
    } catch (err) {
      throw this.link.failed(err, 'replica restart mark');
    }
    return value === null ? undefined : Number(value);
  }

  /** When `replica` last heartbeat (ms since the epoch), undefined when Redis has no record of it. */
  async lastHeartbeat(replica: string): Promise<number | undefined> {
    let score: string | null;
    try {
      score = await this.link.command.zscore(this.replicasKey, replica);
    } catch (err) {
      throw this.link.failed(err, 'replica heartbeat');
    }
    return score === null ? undefined : Number(score);
  }

  /** How often this replica heartbeats, and after how long without one a replica counts as gone. */
  get timing(): { heartbeatMs: number; liveMs: number } {
    return { heartbeatMs: this.heartbeatMs, liveMs: this.liveMs };
  }

  /** Replicas other than this one silent for longer than `liveMs`, with their last heartbeat (ms). */
  async silent(now = Date.now()): Promise<Map<string, number>> {
    let flat: string[];
    try {
      flat = await this.link.command.zrangebyscore(this.replicasKey, '-inf', `(${now - this.liveMs}`, 'WITHSCORES');
    } catch (err) {
      throw this.link.failed(err, 'silent replicas');
    }
    const out = new Map<string, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i] !== this.me) out.set(flat[i]!, Number(flat[i + 1]));
    return out;
  }

  /**
   * Drops a gone replica's heartbeat once nothing of it is left to adopt, unless it heartbeat again
   * meanwhile (a replica that comes back under the same name is not forgotten).
   */
  async forget(replica: string, lastHeartbeat: number): Promise<void> {
    try {
      await FORGET.run(this.link.command, [this.replicasKey], [replica, lastHeartbeat]);
    } catch (err) {
      throw this.link.failed(err, 'forget replica');
    }
  }

  /** Reads every group hash again (start, after a reconnect). */
  async reload(): Promise<void> {
    const prefix = this.hashKey('');
    const fresh = new Map<string, Group>();
    let cursor = '0';
    try {
      do {
        const [next, keys] = await this.link.command.scan(cursor, 'MATCH', `${globEscape(prefix)}*`, 'COUNT', 500);
        cursor = next;
        for (const k of keys) {
          const key = k.slice(prefix.length);
          const all = await this.link.command.hgetall(k);
          const members = new Map(Object.entries(all).map(([r, n]) => [r, Number(n)] as [string, number]).filter(([, n]) => n > 0));
          fresh.set(key, { filter: key.slice(key.indexOf('/') + 1), members, turn: this.groups.get(key)?.turn ?? 0 });
        }
      } while (cursor !== '0');
    } catch (err) {
      throw this.link.failed(err, 'shared reload');
    }
    this.groups.clear();
    for (const [k, g] of fresh) this.groups.set(k, g);
  }

  private async heartbeat(): Promise<void> {
    const now = Date.now();
    const live = await this.link.command.multi()
      .zadd(this.replicasKey, now, this.me)
      .zrangebyscore(this.replicasKey, now - this.liveMs, '+inf')
      .exec() as [Error | null, unknown][];
    this.live = new Set(live[1]![1] as string[]);
  }

  private apply(key: string, filter: string, replica: string, members: number): void {
    let g = this.groups.get(key);
    if (g === undefined) {
      if (members <= 0) return;
      g = { filter, members: new Map(), turn: 0 };
      this.groups.set(key, g);
    }
    if (members > 0) g.members.set(replica, members);
    else g.members.delete(replica);
    if (g.members.size === 0) this.groups.delete(key);
  }

  /** Weighted round-robin over live replicas: each member gets about the same share. */
  private choose(g: Group): string | undefined {
    let total = 0;
    for (const [r, n] of g.members) if (this.isLive(r)) total += n;
    if (total === 0) return undefined;
    let slot = g.turn++ % total;
    for (const [r, n] of g.members) {
      if (!this.isLive(r)) continue;
      if (slot < n) return r;
      slot -= n;
    }
    return undefined;
  }

  /** Whether `replica` heartbeated within `liveMs` (as of this replica's last heartbeat). */
  isLive(replica: string): boolean {
    return replica === this.me || this.live === undefined || this.live.has(replica);
  }
}

/** A literal for SCAN MATCH: glob characters escaped. */
export function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
