// Owns retained messages in Redis: one hash (field = topic, value = envelope) plus a byte counter
// that bounds it like `limits.maxRetainedBytes` bounds the in-memory store. A change is one script
// that updates the hash AND appends the envelope to the bus stream: the order replicas see retained
// changes in is the order Redis stored them, so every replica's local copy converges to the hash
// (two replicas setting one topic at once cannot end up disagreeing). loadAll() (HSCAN) fills a
// replica that starts or comes back from a Redis outage.
import { decodeEnvelope, EnvelopeError, encodeEnvelope } from './envelope.ts';
import type { Envelope } from './envelope.ts';
import type { Bus } from './bus.ts';
import type { RedisLink } from './link.ts';
import { Script } from './script.ts';

// KEYS: hash, byte counter, bus stream. ARGV: topic, frame, 'set'|'del', max bytes, stream trim length (bus.trimLength).
// Over the budget a replacement still removes the old value (a subscriber must not get a stale value
// as if current) and the stream entry says k=0 so replicas drop theirs too.
const RETAIN = new Script(`
local old = redis.call('HSTRLEN', KEYS[1], ARGV[1])
local kept = 1
if ARGV[3] == 'set' then
  local total = tonumber(redis.call('GET', KEYS[2]) or '0') - old + #ARGV[2]
  if total <= tonumber(ARGV[4]) then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
    redis.call('SET', KEYS[2], total)
  else
    kept = 0
  end
end
if (ARGV[3] == 'del' or kept == 0) and old > 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('DECRBY', KEYS[2], old)
end
if kept == 1 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'm', ARGV[2])
else
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'm', ARGV[2], 'k', '0')
end
return kept
`);

// KEYS: hash, byte counter. ARGV: topic, the frame seen (removed only if still the same).
const DROP_EXPIRED = new Script(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('DECRBY', KEYS[2], #cur)
  return 1
end
return 0
`);

export class RedisRetained {
  readonly hashKey: string;
  readonly bytesKey: string;
  private readonly link: RedisLink;
  private readonly bus: Bus;
  private readonly maxBytes: number;

  constructor(link: RedisLink, bus: Bus, maxBytes: number) {
    this.link = link;
    this.bus = bus;
    this.maxBytes = maxBytes;
    this.hashKey = `${link.keyPrefix}retained`;
    this.bytesKey = `${link.keyPrefix}retained:bytes`;
  }

  /**
   * Stores (or, empty payload, deletes) and routes the message to every replica in one step; this
   * replaces bus.publish() for a retained message. Resolves false when the message is over the
   * byte budget (delivered, not kept). Rejects (LinkError) when Redis did not take it.
   */
  async publish(e: Envelope): Promise<boolean> {
    const mode = e.payload.length === 0 ? 'del' : 'set';
    // Messages this replica published before go into the stream before this one: a publisher's
    // order holds between its retained and its other messages.
    this.bus.flush();
    try {
      const kept = await RETAIN.run(this.link.command, [this.hashKey, this.bytesKey, this.bus.streamKey],
        [e.topic, encodeEnvelope(e), mode, this.maxBytes, this.bus.trimLength]);
      return kept === 1;
    } catch (err) {
      throw this.link.failed(err, 'retained publish');
    }
  }

  /** Every live retained message (expired ones are removed on the way), payloads copied. */
  async loadAll(now = Date.now()): Promise<Envelope[]> {
    const out: Envelope[] = [];
    let cursor = '0';
    try {
      do {
        const [next, flat] = await this.link.command.hscanBuffer(this.hashKey, cursor, 'COUNT', 500);
        cursor = next.toString();
        for (let i = 0; i + 1 < flat.length; i += 2) await this.keepIfLive(flat[i]!.toString(), flat[i + 1]!, now, out);
      } while (cursor !== '0');
    } catch (err) {
      throw this.link.failed(err, 'retained load');
    }
    return out;
  }

  /** Bytes of the envelopes held (the quantity the budget bounds). */
  async bytes(): Promise<number> {
    return Number(await this.link.command.get(this.bytesKey) ?? 0);
  }

  private async keepIfLive(topic: string, frame: Buffer, now: number, out: Envelope[]): Promise<void> {
    const e = decodeEnvelope(frame);
    if (e instanceof EnvelopeError || (e.expiresAt !== 0 && e.expiresAt <= now)) {
      // Not ours or expired: it must not be handed out, and nothing else will remove it.
      await DROP_EXPIRED.run(this.link.command, [this.hashKey, this.bytesKey], [topic, frame]);
      return;
    }
    out.push({ ...e, payload: Buffer.from(e.payload) });
  }
}
