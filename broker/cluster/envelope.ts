// Owns the binary form of a message as it travels between replicas and as it is stored in Redis
// (retained hash, offline queue, in-flight records): topic, payload, QoS, retain, the v5 properties
// the broker forwards, expiry, the origin replica and its per-origin sequence (gap detection and
// de-duplication on resume), the publishing client id (no-local) and the shared-subscription picks
// (which replica delivers to which `$share` group). Pure. The payload is the tail of the frame, never
// re-encoded; decode() answers an EnvelopeError for anything it did not write, it never throws.
import { isUtf8 } from 'node:buffer';
import type { ForwardedProperties } from '../router/message.ts';

export interface SharedPick {
  /** `group/filter`, as sharedKey() makes it. */
  key: string;
  /** The replica that delivers this message to one member of that group. */
  replica: string;
}

export interface Envelope {
  /** Replica that accepted the PUBLISH (≤ 255 UTF-8 bytes). */
  origin: string;
  /** Position in the origin's sequence (0 ≤ seq < 2^48). */
  seq: number;
  /** Client id of the publisher, '' for the broker itself (no-local). [MQTT-3.8.3-3] */
  senderId: string;
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  /** Epoch ms after which the message must not be delivered; 0 = never. */
  expiresAt: number;
  properties: ForwardedProperties | undefined;
  /** undefined (the common case) when the message matches no cluster-wide shared group. */
  sharedPicks: SharedPick[] | undefined;
}

export class EnvelopeError extends Error {
  readonly code = 'ENVELOPE_INVALID';
}

const VERSION = 0xe1;
const F_RETAIN = 0x04;
const F_PROPS = 0x08;
const F_EXPIRY = 0x10;
const F_PICKS = 0x20;
const MAX_SEQ = 2 ** 48;

const TAG_FORMAT = 1;
const TAG_CONTENT_TYPE = 2;
const TAG_RESPONSE_TOPIC = 3;
const TAG_CORRELATION = 4;
const TAG_USER = 5;

/** The key a shared group is known by across replicas. */
export function sharedKey(group: string, filter: string): string {
  return `${group}/${filter}`;
}

// ---- encoding --------------------------------------------------------------------------------

/** One growable view: the size is computed first, so a frame is one allocation. */
class Writer {
  readonly buf: Buffer;
  pos = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  u8(n: number): void {
    this.buf[this.pos++] = n;
  }
  u16(n: number): void {
    this.buf.writeUInt16BE(n, this.pos);
    this.pos += 2;
  }
  u48(n: number): void {
    this.buf.writeUIntBE(n, this.pos, 6);
    this.pos += 6;
  }
  str8(s: string): void {
    const n = this.buf.write(s, this.pos + 1, 'utf8');
    this.buf[this.pos] = n;
    this.pos += n + 1;
  }
  str16(s: string): void {
    const n = this.buf.write(s, this.pos + 2, 'utf8');
    this.buf.writeUInt16BE(n, this.pos);
    this.pos += n + 2;
  }
  bytes16(b: Buffer): void {
    this.u16(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }
}

function lengthChecked(s: string, max: number, what: string): number {
  const n = Buffer.byteLength(s, 'utf8');
  if (n > max) throw new RangeError(`${what} is ${n} bytes, more than ${max}`);
  return n;
}

function userPairs(p: ForwardedProperties): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(p.userProperties ?? {})) {
    for (const one of Array.isArray(v) ? v : [v]) out.push([k, one]);
  }
  return out;
}

function propertiesSize(p: ForwardedProperties, pairs: [string, string][]): number {
  let n = 2;
  if (p.payloadFormatIndicator !== undefined) n += 2;
  if (p.contentType !== undefined) n += 3 + lengthChecked(p.contentType, 0xffff, 'content type');
  if (p.responseTopic !== undefined) n += 3 + lengthChecked(p.responseTopic, 0xffff, 'response topic');
  if (p.correlationData !== undefined) n += 3 + p.correlationData.length;
  for (const [k, v] of pairs) n += 5 + lengthChecked(k, 0xffff, 'user property name') + lengthChecked(v, 0xffff, 'user property value');
  return n;
}

function writeProperties(w: Writer, p: ForwardedProperties, pairs: [string, string][]): void {
  let count = pairs.length;
  for (const v of [p.payloadFormatIndicator, p.contentType, p.responseTopic, p.correlationData]) if (v !== undefined) count++;
  w.u16(count);
  if (p.payloadFormatIndicator !== undefined) {
    w.u8(TAG_FORMAT);
    w.u8(p.payloadFormatIndicator ? 1 : 0);
  }
  if (p.contentType !== undefined) {
    w.u8(TAG_CONTENT_TYPE);
    w.str16(p.contentType);
  }
  if (p.responseTopic !== undefined) {
    w.u8(TAG_RESPONSE_TOPIC);
    w.str16(p.responseTopic);
  }
  if (p.correlationData !== undefined) {
    w.u8(TAG_CORRELATION);
    w.bytes16(p.correlationData);
  }
  for (const [k, v] of pairs) {
    w.u8(TAG_USER);
    w.str16(k);
    w.str16(v);
  }
}

/** The frame of an envelope. Throws RangeError only for values MQTT itself cannot carry. */
export function encodeEnvelope(e: Envelope): Buffer {
  if (!Number.isInteger(e.seq) || e.seq < 0 || e.seq >= MAX_SEQ) throw new RangeError(`sequence ${e.seq} out of range`);
  let size = 8 + 1 + lengthChecked(e.origin, 0xff, 'origin replica id') + 2 + lengthChecked(e.senderId, 0xffff, 'client id')
    + 2 + lengthChecked(e.topic, 0xffff, 'topic') + e.payload.length;
  let flags = e.qos | (e.retain ? F_RETAIN : 0);
  if (e.expiresAt !== 0) {
    flags |= F_EXPIRY;
    size += 6;
  }
  const picks = e.sharedPicks !== undefined && e.sharedPicks.length > 0 ? e.sharedPicks : undefined;
  if (picks !== undefined) {
    if (picks.length > 0xff) throw new RangeError(`${picks.length} shared picks, more than 255`);
    flags |= F_PICKS;
    size += 1;
    for (const p of picks) size += 3 + lengthChecked(p.key, 0xffff, 'shared key') + lengthChecked(p.replica, 0xff, 'replica id');
  }
  const pairs = e.properties === undefined ? [] : userPairs(e.properties);
  if (e.properties !== undefined) {
    flags |= F_PROPS;
    size += propertiesSize(e.properties, pairs);
  }
  const w = new Writer(size);
  w.u8(VERSION);
  w.u8(flags);
  w.u48(e.seq);
  w.str8(e.origin);
  w.str16(e.senderId);
  w.str16(e.topic);
  if (e.expiresAt !== 0) w.u48(e.expiresAt);
  if (picks !== undefined) {
    w.u8(picks.length);
    for (const p of picks) {
      w.str16(p.key);
      w.str8(p.replica);
    }
  }
  if (e.properties !== undefined) writeProperties(w, e.properties, pairs);
  e.payload.copy(w.buf, w.pos);
  return w.buf;
}

// ---- decoding --------------------------------------------------------------------------------

/** Thrown inside decode only; decode turns it into its answer. */
class Short extends Error {}

class Reader {
  pos = 0;
  readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  need(n: number): void {
    if (this.pos + n > this.buf.length) throw new Short(`frame ends at byte ${this.buf.length}, ${n} more needed at ${this.pos}`);
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  u16(): number {
    this.need(2);
    const n = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return n;
  }
  u48(): number {
    this.need(6);
    const n = this.buf.readUIntBE(this.pos, 6);
    this.pos += 6;
    return n;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  text(n: number): string {
    const b = this.bytes(n);
    if (!isUtf8(b)) throw new Short(`ill-formed UTF-8 at byte ${this.pos - n}`);
    return b.toString('utf8');
  }
  str8(): string {
    return this.text(this.u8());
  }
  str16(): string {
    return this.text(this.u16());
  }
}

function readProperties(r: Reader): ForwardedProperties {
  const p: ForwardedProperties = {};
  const count = r.u16();
  for (let i = 0; i < count; i++) {
    const tag = r.u8();
    if (tag === TAG_FORMAT) p.payloadFormatIndicator = r.u8() === 1;
    else if (tag === TAG_CONTENT_TYPE) p.contentType = r.str16();
    else if (tag === TAG_RESPONSE_TOPIC) p.responseTopic = r.str16();
    else if (tag === TAG_CORRELATION) p.correlationData = Buffer.from(r.bytes(r.u16()));
    else if (tag === TAG_USER) {
      const k = r.str16();
      const v = r.str16();
      const user = (p.userProperties ??= {});
      const old = user[k];
      user[k] = old === undefined ? v : Array.isArray(old) ? [...old, v] : [old, v];
    } else throw new Short(`unknown property tag ${tag}`);
  }
  return p;
}

function readPicks(r: Reader): SharedPick[] {
  const n = r.u8();
  const picks: SharedPick[] = [];
  for (let i = 0; i < n; i++) picks.push({ key: r.str16(), replica: r.str8() });
  return picks;
}

/**
 * The envelope in `frame`, or an EnvelopeError saying why it is not one. The payload is a view
 * into `frame` (copy it before keeping it beyond the frame's life if the frame is large).
 */
export function decodeEnvelope(frame: Buffer): Envelope | EnvelopeError {
  const r = new Reader(frame);
  try {
    if (r.u8() !== VERSION) return new EnvelopeError(`not an envelope (version byte 0x${frame[0]!.toString(16)})`);
    const flags = r.u8();
    const qos = flags & 0x03;
    if (qos === 3 || (flags & 0xc0) !== 0) return new EnvelopeError(`bad flags 0x${flags.toString(16)}`);
    const seq = r.u48();
    const origin = r.str8();
    const senderId = r.str16();
    const topic = r.str16();
    const expiresAt = flags & F_EXPIRY ? r.u48() : 0;
    const sharedPicks = flags & F_PICKS ? readPicks(r) : undefined;
    const properties = flags & F_PROPS ? readProperties(r) : undefined;
    const payload = frame.subarray(r.pos);
    return { origin, seq, senderId, topic, payload, qos: qos as 0 | 1 | 2, retain: (flags & F_RETAIN) !== 0, expiresAt, properties, sharedPicks };
  } catch (err) {
    if (err instanceof Short) return new EnvelopeError(err.message);
    throw err;
  }
}
