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
import { Script } from './script.ts';
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

const FENCE = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return redis.error_reply('FENCED session is owned by a newer epoch')
end
`;

// KEYS: base, inflight, qos2, queue, epoch counter, this replica's owned set.
// ARGV: replica, clean start (1/0), key prefix, client id, the connection's session expiry ('' =
// not known). The previous owner's `owned:` set is derived in the script (standalone or Sentinel
// Redis; not Redis Cluster). `conn` marks a client connected to the owner: should the owner crash,
// the adopter knows the connection ended then (its will is due). A delayed will's due time goes:
// the client is back in time. [MQTT-3.1.3-9]
const CLAIM = new Script(`
local epoch = redis.call('INCR', KEYS[5])
local prev = redis.call('HGET', KEYS[1], 'owner')
local present = redis.call('EXISTS', KEYS[1])
if ARGV[2] == '1' then
  redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  present = 0
end
if prev and prev ~= ARGV[1] then redis.call('SREM', ARGV[3] .. 'owned:' .. prev, ARGV[4]) end
redis.call('SADD', KEYS[6], ARGV[4])
local released = redis.call('HGET', KEYS[1], 'released')
if released then redis.call('HDEL', KEYS[1], 'released') end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', epoch, 'conn', 1)
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'expiry', ARGV[5]) end
redis.call('HDEL', KEYS[1], 'willAt')
for i = 1, 4 do redis.call('PERSIST', KEYS[i]) end
return {epoch, prev or '', present, released or ''}
`);

// KEYS: base, hash. ARGV: epoch, field, value ('' deletes).
const HASH_SET = new Script(`${FENCE}
if ARGV[3] == '' then redis.call('HDEL', KEYS[2], ARGV[2]) else redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
return 1
`);

// KEYS: base, set. ARGV: epoch, member, add (1) or remove (0). Returns whether it changed.
const SET_MEMBER = new Script(`${FENCE}
if ARGV[3] == '1' then return redis.call('SADD', KEYS[2], ARGV[2]) end
return redis.call('SREM', KEYS[2], ARGV[2])
`);

// KEYS: base, queue. ARGV: epoch, frame, max messages, max bytes, policy. Returns {stored 1/0, dropped from head}.
const ENQUEUE = new Script(`${FENCE}
local size = #ARGV[2]
local maxn, maxb = tonumber(ARGV[3]), tonumber(ARGV[4])
if maxn == 0 or size > maxb then return {0, 0} end
local bytes = tonumber(redis.call('HGET', KEYS[1], 'qbytes') or '0')
local n = redis.call('LLEN', KEYS[2])
local dropped = 0
while n >= maxn or bytes + size > maxb do
  if ARGV[5] == 'drop-newest' then return {0, dropped} end
  local head = redis.call('LPOP', KEYS[2])
  bytes = bytes - #head
  n = n - 1
  dropped = dropped + 1
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'qbytes', bytes + size)
return {1, dropped}
`);

// KEYS: base, queue, inflight. ARGV: epoch, packet id, record header. Head of the queue → in flight.
const QUEUE_TO_FLIGHT = new Script(`${FENCE}
local head = redis.call('LPOP', KEYS[2])
if not head then return 0 end
redis.call('HINCRBY', KEYS[1], 'qbytes', -#head)
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3] .. head)
return 1
`);

// KEYS: the four keys of a session. ARGV: epoch, ttl seconds (0 = never expires).
const OFFLINE = new Script(`${FENCE}
redis.call('HSET', KEYS[1], 'expiry', ARGV[2])
redis.call('HDEL', KEYS[1], 'conn')
for i = 1, 4 do
  if ARGV[2] == '0' then redis.call('PERSIST', KEYS[i]) else redis.call('EXPIRE', KEYS[i], ARGV[2]) end
end
return 1
`);

// KEYS: the four keys of a session. ARGV: epoch ('' = whoever owns it), key prefix, client id.
const DELETE = new Script(`
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return redis.error_reply('FENCED session is owned by a newer epoch')
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then redis.call('SREM', ARGV[2] .. 'owned:' .. owner, ARGV[3]) end
return redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
`);

// KEYS: base, this replica's owned set. ARGV: epoch, client id, bus position. A graceful stop lets
// go of a session it still owns: with no owner left, the next claim anywhere needs no takeover
// round, and reads the bus from where this replica stopped reading.
const RELEASE = new Script(`${FENCE}
redis.call('HDEL', KEYS[1], 'owner')
redis.call('HSET', KEYS[1], 'released', ARGV[3])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
`);

// KEYS: base, epoch counter, this replica's owned set. ARGV: replica, client id, the epoch it held.
// Takes a session back after an outage unless another replica owns it now. The counter restarts at
// 1 when Redis restarted empty: it is moved past the epoch held here first, so the new one is newer.
const RECLAIM = new Script(`
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return 0 end
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[3]) then redis.call('SET', KEYS[2], ARGV[3]) end
local epoch = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', epoch)
redis.call('SADD', KEYS[3], ARGV[2])
return epoch
`);

// KEYS: the four keys of a session. ARGV: epoch, then counted runs: state fields (name, value),
// in flight (packet id, record), incoming QoS 2 ids, queue frames. Replaces what Redis held.
const REWRITE = new Script(`${FENCE}
redis.call('UNLINK', KEYS[2], KEYS[3], KEYS[4])
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if f ~= 'owner' and f ~= 'epoch' then redis.call('HDEL', KEYS[1], f) end
end
local i = 2
local function run(step, write)
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do write(i); i = i + step end
end
run(2, function(j) redis.call('HSET', KEYS[1], ARGV[j], ARGV[j + 1]) end)
run(2, function(j) redis.call('HSET', KEYS[2], ARGV[j], ARGV[j + 1]) end)
run(1, function(j) redis.call('SADD', KEYS[3], ARGV[j]) end)
local bytes = 0
run(1, function(j) redis.call('RPUSH', KEYS[4], ARGV[j]); bytes = bytes + #ARGV[j] end)
redis.call('HSET', KEYS[1], 'qbytes', bytes)
return 1
`);

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
    await this.call(RELEASE, [base, this.ownedKey(this.replicaId)], [epoch, clientId, busPosition], 'session release');
  }

  /** Ends a session (expiry 0 at disconnect, expiry timer, clean start elsewhere). undefined epoch: unconditional. */
  async delete(clientId: string, epoch?: number): Promise<void> {
    await this.call(DELETE, this.keys(clientId), [epoch ?? '', this.link.keyPrefix, clientId], 'session delete');
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
    for (const [key, sub] of s.subscriptions) state.push(`${SUB}${key}`, encodeSubscriptionOptions(sub.options));
    const inflight = s.inflight.flatMap(([id, r]) => {
      const head = encodeInflightHeader(r);
      return [id, r.stage === 'pubrel' || r.message === undefined ? head : Buffer.concat([head, encodeEnvelope(r.message)])];
    });
    const args = [epoch, state.length / 2, ...state, inflight.length / 2, ...inflight, s.incomingQos2.length, ...s.incomingQos2, s.queue.length, ...s.queue.map(encodeEnvelope)];
    await this.call(REWRITE, this.keys(clientId), args, 'session rewrite');
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
