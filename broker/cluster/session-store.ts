// Owns persistent sessions in Redis, so a client resumes on any replica: ownership with a fencing
// epoch, subscriptions, the will, outgoing QoS 1/2 in flight (written before the PUBLISH goes to the
// client, removed on PUBACK/PUBCOMP, the QoS 2 stage kept), incoming QoS 2 packet ids awaiting
// PUBREL (a PUBLISH re-sent after a move is not routed twice), and the offline queue (a list capped
// in messages and bytes, dropping like the in-memory queue). Every write is a script that first
// checks the owner's epoch: a replica that lost a session (takeover, partition) gets FENCED and
// cannot overwrite what the new owner does. Keys of an offline session carry its expiry as a TTL,
// so Redis removes a session even if every replica is gone. How each part is encoded as a Redis
// value is session-records.ts; this file is the keys, the scripts and the calls.
import { decodeEnvelope, EnvelopeError, encodeEnvelope } from './envelope.ts';
import type { Envelope } from './envelope.ts';
import { LinkError } from './link.ts';
import type { RedisLink } from './link.ts';
import type { Script } from './script.ts';
import { ADOPT_RELEASED, CLAIM, DELETE, ENQUEUE, EXPIRED, HANDOVER, HASH_SET, OFFLINE, QUEUE_TO_FLIGHT, RECLAIM, RELEASE, REWRITE, SET_MEMBER } from './session-scripts.ts';
import { decodeWill, encodeInflightHeader, encodeSubscriptionOptions, encodeWill, inflightMap, SUB, subscriptionsOf } from './session-records.ts';
import type { InflightRecord, StoredSubscriptionRecord, StoredWill } from './session-records.ts';

export type { InflightRecord, StoredSubscriptionRecord, StoredWill } from './session-records.ts';

export const NEVER_EXPIRES = 0xffffffff;

export interface StoredSession {
  owner: string;
  epoch: number;
  expirySeconds: number;
  /** The owner had the client connected (set by claim, cleared by goOffline). */
  connected: boolean;
  /** Time left before Redis removes the offline session (its TTL); undefined: none (online, or never expires). */
  ttlMs: number | undefined;
  will: StoredWill | undefined;
  /** When a delayed will is due (ms since the epoch): its client went away and has not come back. */
  willAt: number | undefined;
  /**
   * From a live owner's handover: per origin replica, the highest sequence it sent the client. A
   * message routed meanwhile at or below it reached the client already (or is in the queue).
   */
  sentUpTo: Map<string, number>;
  /** From a live owner's handover: the bus stream id it had read to; what came after, it never saw. */
  readTo: string | undefined;
  subscriptions: Map<string, StoredSubscriptionRecord>;
  inflight: Map<number, InflightRecord>;
  incomingQos2: number[];
  queue: Envelope[];
  queuedBytes: number;
}

export interface Claim {
  epoch: number;
  /** Replica that owned the session before, undefined when none did (or it was this one). */
  previousOwner: string | undefined;
  /** A session existed and was kept (not clean start). [MQTT-3.2.2-2] */
  present: boolean;
  /**
   * The bus stream id up to which the previous owner had read when it released the session at a
   * graceful stop (release()); what came after, the new owner reads from the stream.
   */
  releasedAt: string | undefined;
}

/** Everything a replica holds of one session, written back at once after Redis lost it (rewrite()). */
export interface SessionSnapshot {
  connected: boolean;
  expirySeconds: number;
  will: StoredWill | undefined;
  willAt: number | undefined;
  subscriptions: [string, StoredSubscriptionRecord][];
  inflight: [number, InflightRecord][];
  incomingQos2: number[];
  queue: Envelope[];
}

export interface QueueLimits {
  maxMessages: number;
  maxBytes: number;
  overflow: 'drop-oldest' | 'drop-newest';
}

export class SessionStore {
  readonly replicaId: string;
  private readonly link: RedisLink;
  private readonly epochKey: string;

  constructor(link: RedisLink, replicaId: string) {
    this.link = link;
    this.replicaId = replicaId;
    this.epochKey = `${link.keyPrefix}epoch`;
  }

  /**
   * The four keys of one session: state (owner, epoch, expiry, will, queued bytes, and the
   * subscriptions as `sub:<key>` fields: one small hash instead of two keys saves ~200 bytes per
   * session), in flight, incoming QoS 2 ids, queue. The last three exist only while non-empty.
   */
  keys(clientId: string): [string, string, string, string] {
    const base = `${this.link.keyPrefix}s:${clientId}`;
    return [base, `${base}:inflight`, `${base}:qos2`, `${base}:queue`];
  }

  /** The set of client ids whose sessions `replica` owns (adoption.ts reads it for a dead replica). */
  ownedKey(replica: string): string {
    return `${this.link.keyPrefix}owned:${replica}`;
  }

  /**
   * Sessions released at a graceful stop with a delayed will pending, scored by its due time: a
   * live replica adopts each to send the will (replication-adoption.ts).
   */
  get releasedWillsKey(): string {
    return `${this.link.keyPrefix}released-wills`;
  }

  /** The global fencing counter. */
  get epochCounterKey(): string {
    return this.epochKey;
  }

  /**
   * Takes ownership with a new epoch (clean start: everything of the old session goes) for a
   * client that connects here with session expiry `expirySeconds` (kept for an adopter).
   */
  async claim(clientId: string, cleanStart: boolean, expirySeconds?: number): Promise<Claim> {
    const keys = [...this.keys(clientId), this.epochKey, this.ownedKey(this.replicaId)];
    const args = [this.replicaId, cleanStart ? 1 : 0, this.link.keyPrefix, clientId, expirySeconds ?? ''];
    const [epoch, prev, present, released] = await this.call(CLAIM, keys, args, 'session claim') as [number, string, number, string];
    return {
      epoch, previousOwner: prev === '' || prev === this.replicaId ? undefined : prev, present: present === 1,
      releasedAt: released === '' || present !== 1 ? undefined : released,
    };
  }

  /** Everything a resume needs, or undefined when there is no session. Payloads are copies. */
  async load(clientId: string): Promise<StoredSession | undefined> {
    const [base, inflight, qos2, queue] = this.keys(clientId);
    let replies: [Error | null, unknown][];
    try {
      replies = await this.link.command.multi()
        .hgetall(base).hgetallBuffer(inflight).smembers(qos2).lrangeBuffer(queue, 0, -1).hgetBuffer(base, 'will').pttl(base)
        .hdel(base, 'moving') // loaded: a late handover of the old owner must not land now
        .exec() as [Error | null, unknown][];
    } catch (err) {
      throw this.link.failed(err, 'session load');
    }
    const state = replies[0]![1] as Record<string, string>;
    if (state.epoch === undefined) return undefined;
    const will = replies[4]![1] as Buffer | null;
    const ttl = replies[5]![1] as number;
    return {
      owner: state.owner ?? '',
      epoch: Number(state.epoch),
      expirySeconds: Number(state.expiry ?? 0),
      connected: state.conn === '1',
      ttlMs: ttl >= 0 ? ttl : undefined,
      will: will === null ? undefined : decodeWill(will),
      willAt: state.willAt === undefined ? undefined : Number(state.willAt),
      sentUpTo: new Map(Object.entries(JSON.parse(state.sent ?? '{}') as Record<string, number>)),
      readTo: state.readTo,
      subscriptions: subscriptionsOf(state),
      inflight: inflightMap(replies[1]![1] as Record<string, Buffer>),
      incomingQos2: (replies[2]![1] as string[]).map(Number).sort((a, b) => a - b),
      queue: (replies[3]![1] as Buffer[]).flatMap((f) => {
        const e = decodeEnvelope(f);
        return e instanceof EnvelopeError ? [] : [{ ...e, payload: Buffer.from(e.payload) }];
      }),
      queuedBytes: Number(state.qbytes ?? 0),
    };
  }

  /** `key` is the filter as subscribed (`$share/<group>/<filter>` for a shared one); undefined removes. */
  async setSubscription(clientId: string, epoch: number, key: string, sub: StoredSubscriptionRecord | undefined): Promise<void> {
    const [base] = this.keys(clientId);
    await this.call(HASH_SET, [base, base], [epoch, `${SUB}${key}`, sub === undefined ? '' : encodeSubscriptionOptions(sub.options)], 'subscription write');
  }

  async setWill(clientId: string, epoch: number, will: StoredWill | undefined): Promise<void> {
    const [base] = this.keys(clientId);
    await this.call(HASH_SET, [base, base], [epoch, 'will', will === undefined ? '' : encodeWill(will)], 'will write');
  }

  /** The connection ended with its will delayed: it is due at `dueMs` (undefined: none is pending). */
  async setWillDue(clientId: string, epoch: number, dueMs: number | undefined): Promise<void> {
    const [base] = this.keys(clientId);
    await this.call(HASH_SET, [base, base], [epoch, 'willAt', dueMs === undefined ? '' : Math.round(dueMs)], 'will due write');
  }

  /** Write-through before the PUBLISH (or PUBREL) is written to the client. */
  async setInflight(clientId: string, epoch: number, packetId: number, record: InflightRecord): Promise<void> {
    const [base, inflight] = this.keys(clientId);
    const head = encodeInflightHeader(record);
    const value = record.stage === 'pubrel' || record.message === undefined ? head : Buffer.concat([head, encodeEnvelope(record.message)]);
    await this.call(HASH_SET, [base, inflight], [epoch, packetId, value], 'in-flight write');
  }

  /** PUBACK, PUBCOMP, or a refused PUBREC: the message is done. */
  async deleteInflight(clientId: string, epoch: number, packetId: number): Promise<void> {
    const [base, inflight] = this.keys(clientId);
    await this.call(HASH_SET, [base, inflight], [epoch, packetId, ''], 'in-flight delete');
  }

  /** Incoming QoS 2: PUBREC sent (add), PUBREL received (remove). Resolves whether it changed. */
  async setIncomingQos2(clientId: string, epoch: number, packetId: number, awaitingPubrel: boolean): Promise<boolean> {
    const [base, , qos2] = this.keys(clientId);
    return await this.call(SET_MEMBER, [base, qos2], [epoch, packetId, awaitingPubrel ? 1 : 0], 'incoming QoS 2 write') === 1;
  }

  /** Appends to the offline queue within the limits; `dropped` messages left the head (drop-oldest). */
  async enqueue(clientId: string, epoch: number, message: Envelope, limits: QueueLimits): Promise<{ stored: boolean; dropped: number }> {
    const [base, , , queue] = this.keys(clientId);
    const [stored, dropped] = await this.call(ENQUEUE, [base, queue],
      [epoch, encodeEnvelope(message), limits.maxMessages, limits.maxBytes, limits.overflow], 'enqueue') as [number, number];
    return { stored: stored === 1, dropped };
  }

  /** Moves the head of the queue in flight under `packetId`; false when the queue is empty. */
  async queueToInflight(clientId: string, epoch: number, packetId: number, record: Omit<InflightRecord, 'message'>): Promise<boolean> {
    const [base, inflight, , queue] = this.keys(clientId);
    return await this.call(QUEUE_TO_FLIGHT, [base, queue, inflight], [epoch, packetId, encodeInflightHeader(record)], 'dequeue') === 1;
  }

  /** The connection ended and the session stays: its keys expire after `expirySeconds`. */
  async goOffline(clientId: string, epoch: number, expirySeconds: number): Promise<void> {
    const ttl = expirySeconds >= NEVER_EXPIRES ? 0 : Math.max(1, expirySeconds);
    await this.call(OFFLINE, this.keys(clientId), [epoch, ttl], 'session offline');
  }

  /** This replica stops: the session stays in Redis with no owner, so the next claim takes it at once. */
  async release(clientId: string, epoch: number, busPosition: string): Promise<void> {
    const [base] = this.keys(clientId);
    await this.call(RELEASE, [base, this.ownedKey(this.replicaId), this.releasedWillsKey], [epoch, clientId, busPosition], 'session release');
  }

  /** Ends a session (expiry 0 at disconnect, expiry timer, clean start elsewhere). undefined epoch: unconditional. */
  async delete(clientId: string, epoch?: number): Promise<void> {
    await this.call(DELETE, this.keys(clientId), [epoch ?? '', this.link.keyPrefix, clientId], 'session delete');
  }

  /**
   * The owner's expiry timer ended an offline session: its keys and its member of this replica's
   * `owned:` set go (Redis may have expired the keys already: the member stays otherwise).
   */
  async expired(clientId: string, epoch: number): Promise<void> {
    await this.call(EXPIRED, [...this.keys(clientId), this.ownedKey(this.replicaId), this.releasedWillsKey], [epoch, clientId], 'session expiry');
  }

  /** Up to `count` client ids of released sessions with a pending will, the earliest due first. */
  async releasedWills(count = 100): Promise<string[]> {
    try {
      return await this.link.command.zrange(this.releasedWillsKey, '0', String(count - 1));
    } catch (err) {
      throw this.link.failed(err, 'released wills');
    }
  }

  /**
   * Takes a released session whose will is pending, for this replica to send it: the new epoch and
   * where its releaser had read the bus, or undefined when another replica (or its client) has it.
   */
  async adoptReleased(clientId: string): Promise<{ epoch: number; releasedAt: string | undefined } | undefined> {
    const keys = [this.keys(clientId)[0], this.epochKey, this.ownedKey(this.replicaId), this.releasedWillsKey];
    const [epoch, released] = await this.call(ADOPT_RELEASED, keys, [clientId, this.replicaId], 'adopt released session') as [number, string];
    return epoch === 0 ? undefined : { epoch, releasedAt: released === '' ? undefined : released };
  }

  /**
   * After an outage: a new epoch for a session this replica holds (at `heldEpoch`), unless another
   * replica owns it now (undefined: let it go). Redis may have lost the session: rewrite() follows.
   */
  async reclaim(clientId: string, heldEpoch: number): Promise<number | undefined> {
    const keys = [this.keys(clientId)[0], this.epochKey, this.ownedKey(this.replicaId)];
    const epoch = await this.call(RECLAIM, keys, [this.replicaId, clientId, heldEpoch], 'session reclaim') as number;
    return epoch === 0 ? undefined : epoch;
  }

  /** Replaces everything Redis holds of a session (but owner and epoch) with what this replica holds. */
  async rewrite(clientId: string, epoch: number, s: SessionSnapshot): Promise<void> {
    const state: (string | number | Buffer)[] = ['expiry', s.expirySeconds];
    if (s.connected) state.push('conn', 1);
    if (s.will !== undefined) state.push('will', encodeWill(s.will));
    if (s.willAt !== undefined) state.push('willAt', Math.round(s.willAt));
    await this.call(REWRITE, this.keys(clientId), [epoch, ...stateRuns(s, state)], 'session rewrite');
  }

  /**
   * A takeover from this replica: what it held of the session when it let go (subscriptions and
   * message state), what it sent and up to where it had read the bus, for the new owner (claimed with `epoch`) that waits for it.
   * False when that owner stopped waiting.
   */
  async handOver(clientId: string, epoch: number, s: SessionSnapshot, sentUpTo: ReadonlyMap<string, number>, readTo: string | undefined): Promise<boolean> {
    const sent = JSON.stringify(Object.fromEntries(sentUpTo));
    return await this.call(HANDOVER, this.keys(clientId), [epoch, sent, readTo ?? '', ...stateRuns(s, [])], 'session handover') === 1;
  }

  /** MEMORY USAGE of every key of one session (bytes Redis holds for it). */
  async memoryUsage(clientId: string): Promise<number> {
    let total = 0;
    for (const key of this.keys(clientId)) total += Number(await this.link.command.memory('USAGE', key, 'SAMPLES', 0) ?? 0);
    return total;
  }

  private async call(script: Script, keys: string[], args: (string | number | Buffer)[], what: string): Promise<unknown> {
    try {
      return await script.run(this.link.command, keys, args);
    } catch (err) {
      if (String((err as Error).message).startsWith('FENCED')) throw new LinkError('FENCED', `${what}: the session was taken over by a newer owner`, { cause: err });
      throw this.link.failed(err, what);
    }
  }
}

/** The counted runs of the session scripts' replaceState: state fields (and subscriptions), in flight, incoming QoS 2, queue. */
function stateRuns(s: SessionSnapshot, state: (string | number | Buffer)[]): (string | number | Buffer)[] {
  const fields = [...state];
  for (const [key, sub] of s.subscriptions) fields.push(`${SUB}${key}`, encodeSubscriptionOptions(sub.options));
  const inflight = s.inflight.flatMap(([id, r]) => {
    const head = encodeInflightHeader(r);
    return [id, r.stage === 'pubrel' || r.message === undefined ? head : Buffer.concat([head, encodeEnvelope(r.message)])];
  });
  return [fields.length / 2, ...fields, inflight.length / 2, ...inflight, s.incomingQos2.length, ...s.incomingQos2, s.queue.length, ...s.queue.map(encodeEnvelope)];
}
