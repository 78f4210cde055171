// Owns cross-replica routing. Messages go on one Redis stream per deployment (XADD from the
// command connection, so one replica's messages keep their order; XREAD BLOCK on the reader
// connection). A stream rather than pub/sub because a replica whose connection dropped for a moment
// resumes reading after the last entry it saw: nothing published meanwhile is lost, as long as the
// stream still holds it (`maxEntries`). Per-origin sequence numbers make any loss beyond that
// visible (gap counter) instead of silent. Control messages (takeover, released, shared-group
// membership) are small JSON on a pub/sub channel: they are requests with timeouts, not data.
//
// The messages one replica accepts in one turn of the event loop go out as ONE stream entry (one
// XADD, fields `m <frame> m <frame> …`): a command, a reply and a promise per batch instead of per
// message, on this replica, in Redis and on every reader. A batch is sent at the end of the turn
// (setImmediate), so it adds no wait of its own; every publish() of a batch settles when Redis
// holds the entry, never before.
import { decodeEnvelope, EnvelopeError, encodeEnvelope } from './envelope.ts';
import type { Envelope } from './envelope.ts';
import type { RedisLink } from './link.ts';

export type ControlMessage =
  /** `newOwner` claimed `clientId` with `epoch`: the current owner disconnects its client (0x8E) and saves. */
  | { type: 'takeover'; clientId: string; newOwner: string; epoch: number }
  /** The previous owner is done with `clientId`: state in Redis is final up to `epoch`. */
  | { type: 'released'; clientId: string; epoch: number; to: string }
  /** `replica` now holds `members` sessions in shared group `key` (0 = left). */
  | { type: 'shared'; key: string; replica: string; members: number };

export type ControlEnvelope = ControlMessage & { from: string };

export interface BusHandlers {
  /** A message another replica accepted, in that replica's order. */
  message(e: Envelope): void;
  /**
   * Every retained message (own ones too), in the order Redis stored them, so every replica's local
   * copy ends where Redis is. `kept` false: over the byte budget, the topic has no retained message.
   */
  retained?(e: Envelope, kept: boolean): void;
  control?(m: ControlEnvelope): void;
  /** Messages of `origin` this replica never saw (stream trimmed past them, or a failed publish). */
  gap?(origin: string, missed: number): void;
  /** A stream entry that is not an envelope (never ours: counted, skipped). */
  invalid?(err: EnvelopeError): void;
  /**
   * Back-pressure: undefined to read on, or a promise to wait for before reading or routing more
   * (the messages wait in the stream meanwhile). Asked before each read and between chunks.
   */
  room?(): Promise<void> | undefined;
}

export interface BusOptions {
  /** Entries the stream keeps for replicas that reconnect (XADD MAXLEN ~). */
  maxEntries?: number;
  /** How long one XREAD blocks (ms); bounds how late stop() is noticed. */
  blockMs?: number;
}

export type Unstamped = Omit<Envelope, 'origin' | 'seq'>;

/** Frames per stream entry at most: bounds what one XADD carries. */
const MAX_BATCH_FRAMES = 16;
/** Bytes per stream entry at most (a batch is sent early when a large message fills it). */
const MAX_BATCH_BYTES = 256 * 1024;
/** Entries per XREAD: a replica that fell behind catches up in few round trips. */
const READ_COUNT = 128;
/** Messages routed in one go before the reader lets the event loop run (see readOnce()). */
const ROUTE_CHUNK = 128;

/** Messages waiting for the next XADD, and the one promise every publish() among them returns. */
interface Batch {
  fields: Buffer[];
  frames: number;
  bytes: number;
  done: Promise<void>;
  settle: (err?: Error) => void;
}

const FIELD_M = Buffer.from('m');

export class Bus {
  readonly replicaId: string;
  readonly streamKey: string;
  readonly controlChannel: string;
  readonly maxEntries: number;
  /** Messages read from the stream, by kind, for metrics. */
  readonly counters = { published: 0, received: 0, gaps: 0, invalid: 0 };
  private readonly link: RedisLink;
  private readonly handlers: BusHandlers;
  private readonly blockMs: number;
  private seq = 0;
  private readonly lastSeq = new Map<string, number>();
  private running = false;
  /** The id of the last stream entry read, undefined before the first read. */
  private lastRead: string | undefined;
  private loop: Promise<void> | undefined;
  private batch: Batch | undefined;
  private flushScheduled = false;
  private readonly flushAtTurnEnd = (): void => {
    this.flushScheduled = false;
    this.flush();
  };
  /** Messages per stream entry, smoothed: the trim length counts messages, not entries. */
  private framesPerEntry = 1;
  private readonly releaseWaiters = new Map<string, (ok: boolean) => void>();
  private readonly onControlMessage = (channel: string, text: string): void => this.controlReceived(channel, text);

  constructor(link: RedisLink, replicaId: string, handlers: BusHandlers, options: BusOptions = {}) {
    this.link = link;
    this.replicaId = replicaId;
    this.handlers = handlers;
    this.streamKey = `${link.keyPrefix}bus`;
    this.controlChannel = `${link.keyPrefix}ctl`;
    this.maxEntries = options.maxEntries ?? 50_000;
    this.blockMs = options.blockMs ?? 1_000;
  }

  /** Starts reading at the stream's current end and listening for control messages. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.link.subscriber.on('message', this.onControlMessage);
    this.loop = this.readLoop();
  }

  async stop(): Promise<void> {
    this.flush();
    this.running = false;
    this.link.subscriber.off('message', this.onControlMessage);
    await this.loop;
  }

  /** Gives a message its origin and next sequence number. */
  stamp(m: Unstamped): Envelope {
    const e = m as Envelope;
    e.origin = this.replicaId;
    e.seq = ++this.seq;
    return e;
  }

  /**
   * Publishes to every other replica: resolves once Redis holds it, rejects (LinkError) when Redis
   * did not take it. The promise is shared by the messages of one batch; a rejection nobody
   * awaits (QoS 0) is not an unhandled rejection.
   */
  publish(e: Envelope): Promise<void> {
    let frame: Buffer;
    try {
      frame = encodeEnvelope(e);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const b = this.batch ??= newBatch();
    b.fields.push(FIELD_M, frame);
    b.frames++;
    b.bytes += frame.length;
    if (b.frames >= MAX_BATCH_FRAMES || b.bytes >= MAX_BATCH_BYTES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushAtTurnEnd);
    }
    return b.done;
  }

  /**
   * Sends the pending batch now. A write that must reach the stream after the messages published
   * before it (retained-store.ts) calls this first: both go out on the command connection, in order.
   */
  flush(): void {
    const b = this.batch;
    if (b === undefined) return;
    this.batch = undefined;
    this.framesPerEntry += (b.frames - this.framesPerEntry) / 16;
    this.link.command.xadd(this.streamKey, 'MAXLEN', '~', this.trimLength, '*', ...b.fields).then(() => {
      this.counters.published += b.frames;
      b.settle();
    }, (err: unknown) => b.settle(this.link.failed(err, 'bus publish')));
    this.link.flushCommands(); // the turn is over for this batch: no reason to wait for the next
  }

  /**
   * The stream length (entries) XADD trims to: `maxEntries` messages at the current number of
   * messages per entry, so Redis holds about as many messages (and bytes) as configured however
   * the traffic batches.
   */
  get trimLength(): number {
    return Math.max(1, Math.ceil(this.maxEntries / this.framesPerEntry));
  }

  /**
   * Messages the stream still holds that were added at or after `fromMs` (the entry ids are Redis
   * times), own ones included, in stream order: what a replica replays for a session whose owner
   * died before it could store them (broker/replication.ts). Retained-only entries are included.
   */
  async since(fromMs: number, limit = this.maxEntries, start = `${Math.max(0, Math.floor(fromMs))}-0`): Promise<Envelope[]> {
    let reply: StreamEntry[];
    try {
      reply = await this.link.command.xrangeBuffer(this.streamKey, start, '+', 'COUNT', limit);
    } catch (err) {
      throw this.link.failed(err, 'bus replay');
    }
    const out: Envelope[] = [];
    for (const [, fields] of reply) {
      for (let i = 1; i < fields.length; i += 2) {
        if (!isFrameField(fields[i - 1]!)) continue;
        const e = decodeEnvelope(fields[i]!);
        if (!(e instanceof EnvelopeError)) out.push({ ...e, payload: Buffer.from(e.payload) });
      }
    }
    return out;
  }

  /** Where this replica's reading stands (a stream id): a graceful stop stores it with a released session. */
  get position(): string | undefined {
    return this.lastRead;
  }

  /** Entries after stream id `afterId` (exclusive), like since(). */
  async after(afterId: string, limit = this.maxEntries): Promise<Envelope[]> {
    return this.since(0, limit, `(${afterId}`);
  }

  async control(m: ControlMessage): Promise<void> {
    this.flush(); // a peer acting on this message finds what was published before it in the stream
    try {
      await this.link.command.publish(this.controlChannel, JSON.stringify({ ...m, from: this.replicaId }));
    } catch (err) {
      throw this.link.failed(err, 'bus control');
    }
  }

  /**
   * Asks the current owner of `clientId` to let go; true when it answered `released` for this
   * epoch within `timeoutMs`, false otherwise (crashed or partitioned owner: the epoch fences it).
   */
  async requestTakeover(clientId: string, epoch: number, timeoutMs: number): Promise<boolean> {
    const key = `${clientId}\u0000${epoch}`;
    const answered = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.releaseWaiters.delete(key);
        resolve(false);
      }, timeoutMs);
      this.releaseWaiters.set(key, (ok) => {
        clearTimeout(timer);
        resolve(ok);
      });
    });
    try {
      await this.control({ type: 'takeover', clientId, newOwner: this.replicaId, epoch });
    } catch {
      this.releaseWaiters.get(key)?.(false);
      this.releaseWaiters.delete(key);
    }
    return answered;
  }

  private controlReceived(channel: string, text: string): void {
    if (channel !== this.controlChannel) return;
    let m: ControlEnvelope;
    try {
      m = JSON.parse(text) as ControlEnvelope;
    } catch {
      this.counters.invalid++;
      return;
    }
    if (m.from === this.replicaId) return;
    if (m.type === 'released' && m.to === this.replicaId) {
      const key = `${m.clientId}\u0000${m.epoch}`;
      this.releaseWaiters.get(key)?.(true);
      this.releaseWaiters.delete(key);
    }
    this.handlers.control?.(m);
  }

  private async readLoop(): Promise<void> {
    let last: string | undefined;
    let subscribed = false;
    while (this.running) {
      try {
        if (this.link.state === 'down') await this.link.whenUp(this.blockMs);
        if (!subscribed) {
          await this.link.subscriber.subscribe(this.controlChannel);
          subscribed = true;
        }
        last ??= await this.tailId();
        const wait = this.handlers.room?.();
        if (wait !== undefined) await wait;
        last = this.lastRead = await this.readOnce(last);
      } catch {
        // Down or failing: whenUp() or the next attempt waits; reading resumes after `last`.
        if (this.running) await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** The id of the newest entry, where a starting replica begins ('0-0' for an empty stream). */
  private async tailId(): Promise<string> {
    const tail = await this.link.command.xrevrange(this.streamKey, '+', '-', 'COUNT', 1);
    return tail[0]?.[0] ?? '0-0';
  }

  private async readOnce(after: string): Promise<string> {
    const reply = await this.link.reader.callBuffer(
      'XREAD', 'COUNT', READ_COUNT, 'BLOCK', this.blockMs, 'STREAMS', this.streamKey, after,
    ) as unknown[] | null;
    if (reply === null || !this.running) return after;
    const entries = streamEntries(reply);
    let routed = 0;
    for (const [, fields] of entries) {
      // fields: m <frame> [m <frame> …] | m <frame> k 0: k 0 marks a retained message Redis did
      // not keep (retained-store.ts)
      const kept = !(fields.length === 4 && isKeptField(fields[2]!) && fields[3]!.length === 1 && fields[3]![0] === 0x30);
      for (let i = 1; i < fields.length; i += 2) if (isFrameField(fields[i - 1]!)) this.dispatch(fields[i]!, kept);
      // A client's PUBACKs wait behind what is routed in one go. Routing 1,024 at once stalled
      // the in-flight windows of persistent subscribers and overflowed their queues (bench:ha
      // cross-qos1, 2 replicas: 6,381 of 30,000 dropped as queue-full); 128 at a time, none.
      routed += fields.length >> 1;
      // Back-pressure is asked after every entry (16 messages at most), so a session's queue
      // overshoots its high-water mark by no more than that.
      const wait = this.handlers.room?.();
      if (wait !== undefined) {
        routed = 0;
        await wait;
      } else if (routed >= ROUTE_CHUNK) {
        routed = 0;
        await new Promise((r) => setImmediate(r));
      }
    }
    return entries.length === 0 ? after : entries[entries.length - 1]![0].toString();
  }

  private dispatch(frame: Buffer, kept: boolean): void {
    const e = decodeEnvelope(frame);
    if (e instanceof EnvelopeError) {
      this.counters.invalid++;
      this.handlers.invalid?.(e);
      return;
    }
    if (e.retain) this.handlers.retained?.(e, kept);
    if (e.origin === this.replicaId) return;
    const before = this.lastSeq.get(e.origin);
    if (before !== undefined && e.seq > before + 1) {
      this.counters.gaps += e.seq - before - 1;
      this.handlers.gap?.(e.origin, e.seq - before - 1);
    }
    // A lower number than before: the origin restarted under the same name (its sequence restarts).
    this.lastSeq.set(e.origin, e.seq);
    this.counters.received++;
    this.handlers.message(e);
  }
}

type StreamEntry = [Buffer, Buffer[]];

/** Whether a stream entry's field name is `m` (a frame follows), not `k` (retained-store.ts). */
const isFrameField = (name: Buffer): boolean => name.length === 1 && name[0] === 0x6d;
const isKeptField = (name: Buffer): boolean => name.length === 1 && name[0] === 0x6b;

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  done.catch(() => undefined); // awaited by QoS 1/2 publishers only
  return { fields: [], frames: 0, bytes: 0, done, settle: (err) => (err === undefined ? resolve() : reject(err)) };
}

/**
 * The entries of an XREAD reply for one stream. RESP2 answers [[key, entries]]; RESP3 a map, which
 * ioredis' legacy mapping flattens to [key, entries].
 */
function streamEntries(reply: unknown[]): StreamEntry[] {
  if (Buffer.isBuffer(reply[0])) return (reply[1] ?? []) as StreamEntry[];
  return (reply as [Buffer, StreamEntry[]][]).flatMap(([, entries]) => entries);
}
