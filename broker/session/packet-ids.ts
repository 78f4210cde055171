// A set of MQTT packet identifiers (1..65535) whose memory is bounded whatever a client does: a
// small Set while few ids are held (the usual case: one or two QoS 2 messages awaiting PUBREL),
// a fixed 8 KiB bitmap once many are (an MQTT 3.1.1 client may legally hold every id at once; a
// Set of 65,535 numbers costs ~1.3 MB).

/** Ids held in a Set before switching to the bitmap (a Set of 256 numbers is about the bitmap's size). */
const SMALL_MAX = 256;

export class PacketIdSet {
  private small: Set<number> | undefined = new Set();
  private bits: Uint8Array | undefined = undefined;
  private count = 0;

  get size(): number {
    return this.small?.size ?? this.count;
  }

  has(id: number): boolean {
    if (this.small !== undefined) return this.small.has(id);
    return (this.bits![id >> 3]! & (1 << (id & 7))) !== 0;
  }

  add(id: number): void {
    if (this.small !== undefined) {
      if (this.small.size < SMALL_MAX || this.small.has(id)) {
        this.small.add(id);
        return;
      }
      this.bits = new Uint8Array(65536 / 8);
      this.count = 0;
      for (const held of this.small) this.setBit(held);
      this.small = undefined;
    }
    this.setBit(id);
  }

  /** Removes an id; false when it was not held. */
  delete(id: number): boolean {
    if (this.small !== undefined) return this.small.delete(id);
    const bits = this.bits!;
    const mask = 1 << (id & 7);
    if ((bits[id >> 3]! & mask) === 0) return false;
    bits[id >> 3]! &= ~mask;
    if (--this.count === 0) {
      // Back to the cheap form once the burst is over.
      this.bits = undefined;
      this.small = new Set();
    }
    return true;
  }

  private setBit(id: number): void {
    const bits = this.bits!;
    const mask = 1 << (id & 7);
    if ((bits[id >> 3]! & mask) !== 0) return;
    bits[id >> 3]! |= mask;
    this.count++;
  }
}
