// Cuts an MQTT byte stream into whole control packets, enforcing the maximum packet size from the
// fixed header BEFORE any body is buffered (mqtt-packet's parser would buffer until the declared
// Remaining Length arrives: docs/hostile-inputs.md #1–#3). Pure: no sockets, no timers.

export type FrameError = 'malformed-length' | 'packet-too-large' | 'reserved-type';

export interface FrameSink {
  /** One complete packet (fixed header included). The buffer may be a view into a socket chunk. */
  frame(packet: Buffer): void;
  error(reason: FrameError, declaredSize: number): void;
}

/** Result of reading a Remaining Length varint at `offset`: -1 = need more bytes, -2 = malformed. */
export function readRemainingLength(buf: Buffer, offset: number): { length: number; bytes: number } | -1 | -2 {
  let value = 0;
  let multiplier = 1;
  for (let i = 0; i < 4; i++) {
    const pos = offset + i;
    if (pos >= buf.length) return -1;
    const byte = buf[pos]!;
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return { length: value, bytes: i + 1 };
    multiplier *= 128;
  }
  return -2; // a fifth continuation byte [MQTT-1.5.5-1 / 2.2.3]
}

/** First capacity of a frame's assembly buffer; it doubles as bytes arrive, up to the frame's size. */
const ASSEMBLY_MIN = 4096;

/**
 * Reassembly is linear in the bytes received, however small the TCP segments: a frame that spans
 * chunks is copied once into an assembly buffer that grows by doubling (never to more than twice
 * what arrived, so a header declaring 1 MiB with no body behind it costs 4 KiB, not 1 MiB).
 */
export class FrameSplitter {
  /** Bytes of a fixed header not yet complete (at most 4: type + 3 of the 4 length bytes). */
  private head: Buffer | null = null;
  /** The frame being assembled: `filled` bytes of `total`. */
  private assembly: Buffer | null = null;
  private filled = 0;
  private total = 0;
  private readonly sink: FrameSink;
  /** Largest whole packet accepted (fixed header + remaining length). */
  maxPacketSize: number;
  private failed = false;

  constructor(maxPacketSize: number, sink: FrameSink) {
    this.maxPacketSize = maxPacketSize;
    this.sink = sink;
  }

  /** Bytes held waiting for the rest of a packet (bounded by maxPacketSize). */
  get buffered(): number {
    return this.assembly !== null ? this.filled : this.head === null ? 0 : this.head.length;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    let buf = chunk;
    if (this.assembly !== null) {
      const take = Math.min(buf.length, this.total - this.filled);
      this.append(buf, take);
      if (this.filled < this.total) return;
      const whole = this.assembly.length === this.total ? this.assembly : this.assembly.subarray(0, this.total);
      this.assembly = null;
      this.sink.frame(whole);
      if (this.failed) return;
      buf = buf.subarray(take);
    } else if (this.head !== null) {
      buf = Buffer.concat([this.head, buf]); // the head is at most 4 bytes
      this.head = null;
    }
    let offset = 0;
    while (offset < buf.length) {
      const type = buf[offset]! >> 4;
      if (type === 0) {
        // Reserved type 0 is never valid; type 15 is AUTH in v5 and judged by the parser. [MQTT-2.1.2]
        this.fail('reserved-type', 0);
        return;
      }
      const rl = readRemainingLength(buf, offset + 1);
      if (rl === -2) {
        this.fail('malformed-length', 0);
        return;
      }
      if (rl === -1) {
        this.head = Buffer.from(buf.subarray(offset));
        return;
      }
      const total = 1 + rl.bytes + rl.length;
      if (total > this.maxPacketSize) {
        this.fail('packet-too-large', total);
        return;
      }
      if (offset + total > buf.length) {
        // Copied, so a large socket chunk is not kept alive by a small tail.
        this.total = total;
        this.filled = 0;
        this.assembly = Buffer.allocUnsafe(Math.min(total, Math.max(ASSEMBLY_MIN, 2 * (buf.length - offset))));
        this.append(buf.subarray(offset), buf.length - offset);
        return;
      }
      this.sink.frame(buf.subarray(offset, offset + total));
      if (this.failed) return;
      offset += total;
    }
  }

  /** Copies the first `n` bytes of `from` into the assembly buffer, growing it by doubling. */
  private append(from: Buffer, n: number): void {
    let assembly = this.assembly!;
    const need = this.filled + n;
    if (need > assembly.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.total, Math.max(need, 2 * assembly.length)));
      assembly.copy(grown, 0, 0, this.filled);
      assembly = this.assembly = grown;
    }
    from.copy(assembly, this.filled, 0, n);
    this.filled = need;
  }

  private fail(reason: FrameError, size: number): void {
    this.failed = true;
    this.head = null;
    this.assembly = null;
    this.sink.error(reason, size);
  }
}
