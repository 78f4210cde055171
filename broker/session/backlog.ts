// Owns the broker's back-pressure: the set of connected sessions whose queue is above its
// high-water mark. While one is, two kinds of sender wait:
// - a client whose PUBLISH was queued for such a session: its connection stops reading
//   (handlers/publish.ts), so TCP pushes back on it;
// - with replicas, the bus reader (cluster/bus.ts), before it reads or routes more of other
//   replicas' messages: they wait in the Redis stream, which keeps them (`streamMaxEntries`).
// A burst, such as a publisher resending its whole backlog after an outage (MQTT.js sends it all
// at once), then waits at its source instead of overflowing a subscriber's queue. Without a wait
// the broker takes whatever comes, and a subscriber drops what its queue cannot hold.
//
// A session that holds reading for MAX_HOLD_MS is a slow consumer, not a burst: it stops counting
// until its queue is back under the low-water mark, and drops at its limit as before (counted
// queue-full). One slow client thus delays the replica's other sessions once, by at most that long.
// Offline sessions never hold: nothing drains their queue until the client is back.

/** A session's queue limits (SessionEnv's): over half of either is behind, under a quarter of both is not. */
export interface QueueBounds {
  maxQueued: number;
  maxQueuedBytes: number;
}

/** Longest a sender (a publisher, the bus reader) waits for one set of backlogged sessions (ms). */
export const MAX_HOLD_MS = 2_000;

export class Backlog {
  /** Sessions let go as slow consumers, for metrics. */
  slowConsumers = 0;
  /** Messages queued for a session while it held (a publisher that sent one waits: see pressed()). */
  presses = 0;
  /**
   * The session of the client whose PUBLISH is being routed (handlers/publish.ts): a message it
   * gets itself does not make it wait. It would wait for itself: its PUBACKs come on the socket
   * that waits, so its queue could not drain.
   */
  publisher: object | undefined = undefined;
  /** Time reading was held by holds that ended (ms). */
  private heldBefore = 0;
  private readonly maxHoldMs: number;
  /** Connected sessions over their high-water mark and not back under the low-water mark yet. */
  private readonly behind = new WeakSet<object>();
  /** Those of them that hold senders: not let go yet. */
  private readonly over = new Set<object>();
  /** Let go after a hold: ignored until they drain (a WeakSet: a session that ends is not kept). */
  private readonly exempt = new WeakSet<object>();
  private waiting: { done: Promise<void>; resolve: () => void; since: number; timer: NodeJS.Timeout } | undefined;

  constructor(maxHoldMs = MAX_HOLD_MS) {
    this.maxHoldMs = maxHoldMs;
  }

  /** A message was queued for connected `session`, whose queue now holds `count` messages of `bytes`. */
  queued(session: object, count: number, bytes: number, bounds: QueueBounds): void {
    if (!this.behind.has(session)) {
      if (count * 2 < bounds.maxQueued && bytes * 2 < bounds.maxQueuedBytes) return;
      this.behind.add(session);
      if (!this.exempt.has(session)) this.over.add(session);
    }
    if (session !== this.publisher && this.over.has(session)) this.presses++;
  }

  /** `session`'s queue shrank to `count` messages of `bytes`. */
  drained(session: object, count: number, bytes: number, bounds: QueueBounds): void {
    if (count * 4 <= bounds.maxQueued && bytes * 4 <= bounds.maxQueuedBytes && this.behind.has(session)) this.below(session);
  }

  /** `session`'s client left: an offline session holds nothing. */
  left(session: object): void {
    if (this.behind.has(session)) this.below(session);
  }

  private below(session: object): void {
    this.behind.delete(session);
    this.exempt.delete(session);
    this.over.delete(session);
    if (this.over.size === 0) this.release();
  }

  /** Undefined: read on. Otherwise resolves when no session holds reading, or after MAX_HOLD_MS. */
  room(): Promise<void> | undefined {
    if (this.over.size === 0) return undefined;
    if (this.waiting !== undefined) return this.waiting.done;
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    const timer = setTimeout(() => {
      for (const s of this.over) this.exempt.add(s);
      this.slowConsumers += this.over.size;
      this.over.clear();
      this.release();
    }, this.maxHoldMs);
    this.waiting = { done, resolve, since: performance.now(), timer };
    return done;
  }

  /** Time reading was held (ms), the hold going on included, for metrics. */
  get heldMs(): number {
    return this.heldBefore + (this.waiting === undefined ? 0 : performance.now() - this.waiting.since);
  }

  private release(): void {
    const waiting = this.waiting;
    if (waiting === undefined) return;
    this.waiting = undefined;
    clearTimeout(waiting.timer);
    this.heldBefore += performance.now() - waiting.since;
    waiting.resolve();
  }
}
