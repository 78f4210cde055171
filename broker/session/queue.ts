// A FIFO of a session's messages waiting for room (receive maximum, a congested socket, the
// client offline), as a ring buffer that clears each slot it gives up and shrinks when it empties,
// so what it keeps alive is exactly what it holds: its length and its bytes are the bounds the
// session enforces (limits.maxQueuedMessages, limits.maxQueuedBytes). Pure: no clock, no I/O.

const MIN_CAPACITY = 8;

export class MessageQueue<T> {
  private ring: (T | undefined)[] = [];
  private head = 0;
  private count = 0;
  private held = 0;
  private readonly sizeOf: (item: T) => number;

  /** `sizeOf` must give the same answer for an item every time it is asked. */
  constructor(sizeOf: (item: T) => number) {
    this.sizeOf = sizeOf;
  }

  get length(): number {
    return this.count;
  }

  /** Sum of sizeOf over the items held. */
  get bytes(): number {
    return this.held;
  }

  push(item: T): void {
    if (this.count === this.ring.length) this.resize(Math.max(MIN_CAPACITY, this.ring.length * 2));
    this.ring[(this.head + this.count) % this.ring.length] = item;
    this.count++;
    this.held += this.sizeOf(item);
  }

  peek(): T | undefined {
    return this.count === 0 ? undefined : this.ring[this.head];
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.ring[this.head]!;
    this.ring[this.head] = undefined; // the slot must not keep the message alive
    this.head = (this.head + 1) % this.ring.length;
    this.count--;
    this.held -= this.sizeOf(item);
    if (this.count === 0) {
      this.ring = [];
      this.head = 0;
    } else if (this.ring.length > MIN_CAPACITY * 4 && this.count * 4 <= this.ring.length) {
      this.resize(this.ring.length / 2);
    }
    return item;
  }

  /** Keeps the items `keep` accepts, in order; returns the ones it removed. */
  retain(keep: (item: T) => boolean): T[] {
    const kept: T[] = [];
    const removed: T[] = [];
    for (const item of this) (keep(item) ? kept : removed).push(item);
    this.clear();
    for (const item of kept) this.push(item);
    return removed;
  }

  clear(): void {
    this.ring = [];
    this.head = 0;
    this.count = 0;
    this.held = 0;
  }

  *[Symbol.iterator](): Iterator<T> {
    for (let i = 0; i < this.count; i++) yield this.ring[(this.head + i) % this.ring.length]!;
  }

  private resize(capacity: number): void {
    const next: (T | undefined)[] = new Array<T | undefined>(capacity);
    for (let i = 0; i < this.count; i++) next[i] = this.ring[(this.head + i) % this.ring.length];
    this.ring = next;
    this.head = 0;
  }
}
