// Cuts an MQTT byte stream into whole control packets, enforcing the maximum packet size from the
// fixed header BEFORE any body is buffered (mqtt-packet's parser would buffer until the declared
// Remaining Length arrives: broker-anchors §6 #1–#3). Pure: no sockets, no timers.

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

export class FrameSplitter {
  private pending: Buffer | null = null;
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
    return this.pending === null ? 0 : this.pending.length;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    let buf = chunk;
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
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
      if (rl === -1) break;
      const total = 1 + rl.bytes + rl.length;
      if (total > this.maxPacketSize) {
        this.fail('packet-too-large', total);
        return;
      }
      if (offset + total > buf.length) break;
      this.sink.frame(buf.subarray(offset, offset + total));
      if (this.failed) return;
      offset += total;
    }
    if (offset < buf.length) {
      // Copy so a large socket chunk is not kept alive by a small tail.
      this.pending = Buffer.from(buf.subarray(offset));
    }
  }

  private fail(reason: FrameError, size: number): void {
    this.failed = true;
    this.pending = null;
    this.sink.error(reason, size);
  }
}
