// Wire-format rules mqtt-packet does not enforce, judged on the raw bytes of a frame it has already
// parsed. They cannot be judged from the decoded packet: mqtt-packet decodes ill-formed UTF-8 to
// U+FFFD (indistinguishable from a client that really sent U+FFFD), turns a repeated single-value
// v5 property into an array (or, when the first value is 0/false/"", silently keeps the last one),
// and accepts any known property in any packet type. Pure: bytes in, a violation or undefined out.
import { isUtf8 } from 'node:buffer';
import type { ProtocolVersion } from './codec.ts';

export interface WireViolation {
  /** 0x81 Malformed Packet or 0x82 Protocol Error (v5 CONNACK/DISCONNECT reason code). */
  reasonCode: 0x81 | 0x82;
  message: string;
}

type Kind = 'byte' | 'bool' | 'int16' | 'int32' | 'varint' | 'string' | 'binary' | 'pair';

/** v5 property identifiers and their data types. [MQTT-2.2.2.2] `bool`: a byte whose only values are 0 and 1. */
const PROPERTIES: ReadonlyMap<number, { name: string; kind: Kind }> = new Map([
  [0x01, { name: 'Payload Format Indicator', kind: 'bool' }],
  [0x02, { name: 'Message Expiry Interval', kind: 'int32' }],
  [0x03, { name: 'Content Type', kind: 'string' }],
  [0x08, { name: 'Response Topic', kind: 'string' }],
  [0x09, { name: 'Correlation Data', kind: 'binary' }],
  [0x0b, { name: 'Subscription Identifier', kind: 'varint' }],
  [0x11, { name: 'Session Expiry Interval', kind: 'int32' }],
  [0x12, { name: 'Assigned Client Identifier', kind: 'string' }],
  [0x13, { name: 'Server Keep Alive', kind: 'int16' }],
  [0x15, { name: 'Authentication Method', kind: 'string' }],
  [0x16, { name: 'Authentication Data', kind: 'binary' }],
  [0x17, { name: 'Request Problem Information', kind: 'bool' }],
  [0x18, { name: 'Will Delay Interval', kind: 'int32' }],
  [0x19, { name: 'Request Response Information', kind: 'bool' }],
  [0x1a, { name: 'Response Information', kind: 'string' }],
  [0x1c, { name: 'Server Reference', kind: 'string' }],
  [0x1f, { name: 'Reason String', kind: 'string' }],
  [0x21, { name: 'Receive Maximum', kind: 'int16' }],
  [0x22, { name: 'Topic Alias Maximum', kind: 'int16' }],
  [0x23, { name: 'Topic Alias', kind: 'int16' }],
  [0x24, { name: 'Maximum QoS', kind: 'byte' }],
  [0x25, { name: 'Retain Available', kind: 'byte' }],
  [0x26, { name: 'User Property', kind: 'pair' }],
  [0x27, { name: 'Maximum Packet Size', kind: 'int32' }],
  [0x28, { name: 'Wildcard Subscription Available', kind: 'byte' }],
  [0x29, { name: 'Subscription Identifier Available', kind: 'byte' }],
  [0x2a, { name: 'Shared Subscription Available', kind: 'byte' }],
]);

/** The only property that may repeat in a client's packet. (Subscription Identifier repeats only server → client.) */
const USER_PROPERTY = 0x26;

/** Properties a client may put in each packet; any other identifier makes the packet malformed. [MQTT-2.2.2.2] */
const ALLOWED = {
  CONNECT: new Set([0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x15, 0x16]),
  will: new Set([0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26]),
  // 0x0B is allowed in PUBLISH, but not from a client: publish.ts answers that with 0x82. [MQTT-3.3.4-6]
  PUBLISH: new Set([0x01, 0x02, 0x23, 0x08, 0x09, 0x26, 0x0b, 0x03]),
  ack: new Set([0x1f, 0x26]),
  SUBSCRIBE: new Set([0x0b, 0x26]),
  UNSUBSCRIBE: new Set([0x26]),
  DISCONNECT: new Set([0x11, 0x1f, 0x26, 0x1c]),
  AUTH: new Set([0x15, 0x16, 0x1f, 0x26]),
} as const;

class Violation extends Error {
  readonly reasonCode: 0x81 | 0x82;
  constructor(reasonCode: 0x81 | 0x82, message: string) {
    super(message);
    this.reasonCode = reasonCode;
  }
}

const malformed = (message: string): Violation => new Violation(0x81, message);

/** Reads a frame front to back; every read is bounds-checked (a short frame is malformed, never a throw to the caller). */
class Cursor {
  pos: number;
  private readonly buf: Buffer;
  constructor(buf: Buffer, pos: number) {
    this.buf = buf;
    this.pos = pos;
  }

  get end(): number {
    return this.buf.length;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) throw malformed(`${what} runs past the end of the packet`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  skip(n: number, what: string): void {
    this.need(n, what);
    this.pos += n;
  }

  varint(what: string): number {
    let value = 0;
    for (let i = 0, mul = 1; i < 4; i++, mul *= 128) {
      const b = this.u8(what);
      value += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return value;
    }
    throw malformed(`${what} is a variable byte integer longer than 4 bytes`);
  }

  /** Length-prefixed binary data. */
  binary(what: string): void {
    this.skip(this.u16(what), what);
  }

  /**
   * A UTF-8 Encoded String: well-formed [MQTT-1.5.4-1] and, unless `allowNul`, without U+0000
   * [MQTT-1.5.4-2]. Topic names and filters pass allowNul: router/topics.ts refuses U+0000 there
   * with the topic reason codes (0x90 / 0x8F).
   */
  string(what: string, allowNul = false): void {
    const len = this.u16(what);
    this.need(len, what);
    const bytes = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    if (!isUtf8(bytes)) throw malformed(`${what} is not well-formed UTF-8`);
    if (!allowNul && bytes.includes(0)) throw malformed(`${what} contains U+0000`);
  }

  /** A v5 property list: each allowed in this packet, single-value ones at most once. */
  properties(packet: string, allowed: ReadonlySet<number>): void {
    const length = this.varint(`${packet} property length`);
    const end = this.pos + length;
    if (end > this.buf.length) throw malformed(`${packet} properties run past the end of the packet`);
    const seen = new Set<number>();
    while (this.pos < end) {
      const id = this.varint(`${packet} property identifier`);
      const p = PROPERTIES.get(id);
      if (p === undefined) throw malformed(`${packet} has unknown property 0x${id.toString(16)}`);
      if (!allowed.has(id)) throw malformed(`${p.name} is not allowed in ${packet}`);
      if (id !== USER_PROPERTY && seen.has(id)) throw new Violation(0x82, `${p.name} more than once in ${packet}`); // [MQTT-2.2.2.2]
      seen.add(id);
      this.value(p.kind, `${packet} ${p.name}`);
    }
    if (this.pos !== end) throw malformed(`${packet} property runs past the property length`);
  }

  private value(kind: Kind, what: string): void {
    switch (kind) {
      case 'byte':
        this.skip(1, what);
        return;
      case 'bool':
        if (this.u8(what) > 1) throw new Violation(0x82, `${what} must be 0 or 1`);
        return;
      case 'int16':
        this.skip(2, what);
        return;
      case 'int32':
        this.skip(4, what);
        return;
      case 'varint':
        this.varint(what);
        return;
      case 'string':
        this.string(what);
        return;
      case 'binary':
        this.binary(what);
        return;
      case 'pair':
        this.string(`${what} name`);
        this.string(`${what} value`);
    }
  }
}

/**
 * Why a frame that mqtt-packet parsed must still be refused, or undefined. `version` is the
 * connection's protocol level; a CONNECT is judged by the level it carries itself.
 */
export function wireViolation(frame: Buffer, version: ProtocolVersion): WireViolation | undefined {
  try {
    check(frame, version);
    return undefined;
  } catch (err) {
    if (err instanceof Violation) return { reasonCode: err.reasonCode, message: err.message };
    throw err;
  }
}

/** The checker of each packet type a client sends (types not listed carry nothing to check). */
const CHECKS: Partial<Record<number, (c: Cursor, v5: boolean, flags: number) => void>> = {
  1: (c) => checkConnect(c),
  3: checkPublish,
  4: checkAck,
  5: checkAck,
  6: checkAck,
  7: checkAck,
  8: (c, v5) => checkFilters(c, v5, true),
  10: (c, v5) => checkFilters(c, v5, false),
  14: (c, v5) => checkReasonAndProperties(c, v5, 'DISCONNECT', ALLOWED.DISCONNECT),
  15: (c, v5) => checkReasonAndProperties(c, v5, 'AUTH', ALLOWED.AUTH),
};

function check(frame: Buffer, version: ProtocolVersion): void {
  const first = frame[0]!;
  const c = new Cursor(frame, 1);
  c.varint('remaining length');
  CHECKS[first >> 4]?.(c, version === 5, first & 0x0f);
}

function checkPublish(c: Cursor, v5: boolean, flags: number): void {
  c.string('topic name', true);
  if (((flags >> 1) & 3) > 0) c.skip(2, 'packet identifier');
  if (v5) c.properties('PUBLISH', ALLOWED.PUBLISH);
}

/** v5 acks: packet id, then reason code and properties only when the remaining length says so. [MQTT-3.4.2.2] */
function checkAck(c: Cursor, v5: boolean): void {
  if (v5 && c.end - c.pos >= 4) {
    c.skip(3, 'packet identifier and reason code');
    c.properties('acknowledgement', ALLOWED.ack);
  }
}

function checkFilters(c: Cursor, v5: boolean, subscribe: boolean): void {
  c.skip(2, 'packet identifier');
  if (v5) c.properties(subscribe ? 'SUBSCRIBE' : 'UNSUBSCRIBE', subscribe ? ALLOWED.SUBSCRIBE : ALLOWED.UNSUBSCRIBE);
  while (c.pos < c.end) {
    c.string('topic filter', true);
    if (subscribe) c.skip(1, 'subscription options');
  }
}

/** DISCONNECT and AUTH: a reason code and properties when the remaining length says so. */
function checkReasonAndProperties(c: Cursor, v5: boolean, name: string, allowed: ReadonlySet<number>): void {
  if (v5 && c.end - c.pos >= 2) {
    c.skip(1, 'reason code');
    c.properties(name, allowed);
  }
}

/** CONNECT: protocol name, level, flags, keepalive, [properties], client id, [will], [username], [password]. [MQTT-3.1] */
function checkConnect(c: Cursor): void {
  c.string('protocol name');
  const level = c.u8('protocol level');
  const flags = c.u8('connect flags');
  c.skip(2, 'keep alive');
  const v5 = level === 5;
  if (v5) c.properties('CONNECT', ALLOWED.CONNECT);
  c.string('client identifier');
  if (flags & 0x04) {
    if (v5) c.properties('will', ALLOWED.will);
    c.string('will topic', true);
    c.binary('will payload');
  }
  if (flags & 0x80) c.string('user name');
}
