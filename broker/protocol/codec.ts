// Decoding whole frames into packets and encoding packets into bytes. mqtt-packet does the general
// work; PUBLISH, the hot path, has a hand-written decoder and encoder so a message is encoded once
// per (protocol, QoS, retain) and only its packet id is patched per subscriber.
import { isUtf8 } from 'node:buffer';
import mqttPacket from 'mqtt-packet';
import type { Packet, IPublishPacket, Parser } from 'mqtt-packet';

export type ProtocolVersion = 3 | 4 | 5;

// mqtt-packet pre-generates 65,536 two-byte Buffers (~7 MB) on first use; allocating the few numbers
// the slow path needs is cheaper than carrying that in every tenant's pod.
(mqttPacket.writeToStream as unknown as { cacheNumbers: boolean }).cacheNumbers = false;

/**
 * One parser per protocol version, shared by all connections: frames arrive whole (FrameSplitter),
 * so each parse() call emits exactly one packet synchronously and no per-connection parser state
 * (and memory) is needed.
 */
interface SharedParser {
  parser: Parser;
  packet: Packet | undefined;
  error: Error | undefined;
}

function makeParser(protocolVersion: ProtocolVersion): SharedParser {
  const shared: SharedParser = { parser: mqttPacket.parser({ protocolVersion }), packet: undefined, error: undefined };
  shared.parser.on('packet', (p: Packet) => {
    shared.packet = p;
  });
  shared.parser.on('error', (e: unknown) => {
    shared.error = e instanceof Error ? e : new Error(String(e));
  });
  return shared;
}

/**
 * CONNECT has a parser of its own: mqtt-packet's parser takes its protocol level (and bridge mode)
 * from the last CONNECT it parsed, so a v5 CONNECT through the shared 3.1.1 parser made it read
 * every 3.1.1 client's next SUBSCRIBE as v5 (and close it as malformed). A CONNECT carries its
 * own level, so one parser reads all of them.
 */
type ParserKey = ProtocolVersion | 'connect';
const parsers: Record<ParserKey, SharedParser> = { 3: makeParser(3), 4: makeParser(4), 5: makeParser(5), connect: makeParser(4) };

/** Parses one complete frame. Returns an Error for anything malformed; never throws. */
export function parseFrame(frame: Buffer, version: ProtocolVersion): Packet | Error {
  const key: ParserKey = frame[0]! >> 4 === 1 ? 'connect' : version;
  const shared = parsers[key];
  shared.packet = undefined;
  shared.error = undefined;
  let left: number;
  try {
    left = shared.parser.parse(frame);
  } catch (err) {
    shared.error = err instanceof Error ? err : new Error(String(err));
    left = 0;
  }
  const { packet, error } = shared;
  shared.packet = undefined;
  shared.error = undefined;
  if (error !== undefined || packet === undefined || left !== 0) {
    // A fresh parser: mqtt-packet keeps partial state (list, position) after an error.
    parsers[key] = makeParser(key === 'connect' ? 4 : key);
    return error ?? new Error(left !== 0 ? 'packet has trailing bytes' : 'truncated packet');
  }
  return packet;
}

export interface FastPublish {
  topic: string;
  qos: 0 | 1 | 2;
  retain: boolean;
  dup: boolean;
  messageId: number;
  payload: Buffer;
}

/**
 * Decodes a PUBLISH without properties (v3/v4 always; v5 when the property length is 0).
 * Returns undefined when the frame needs the general parser (v5 with properties), or an Error.
 */
export function decodePublishFast(frame: Buffer, version: ProtocolVersion): FastPublish | Error | undefined {
  const first = frame[0]!;
  const qos = (first >> 1) & 3;
  if (qos === 3) return new Error('PUBLISH with QoS 3');
  let pos = 1;
  while (frame[pos]! & 0x80) pos++;
  pos++;
  if (pos + 2 > frame.length) return new Error('PUBLISH too short for topic length');
  const topicLen = frame.readUInt16BE(pos);
  pos += 2;
  const topicEnd = pos + topicLen;
  if (topicEnd > frame.length) return new Error('PUBLISH topic longer than packet');
  const topicBytes = frame.subarray(pos, topicEnd);
  pos = topicEnd;
  let messageId = 0;
  if (qos > 0) {
    // docs/hostile-inputs.md #6: QoS>0 PUBLISH that ends right after the topic
    if (pos + 2 > frame.length) return new Error('PUBLISH without packet identifier');
    messageId = frame.readUInt16BE(pos);
    pos += 2;
  }
  if (version === 5) {
    if (pos >= frame.length) return new Error('PUBLISH without property length');
    if (frame[pos] !== 0) return undefined;
    pos++;
  }
  if (!isUtf8(topicBytes)) return new Error('PUBLISH topic is not valid UTF-8');
  return {
    topic: topicBytes.toString('utf8'),
    qos: qos as 0 | 1 | 2,
    retain: (first & 1) === 1,
    dup: (first & 8) === 8,
    messageId,
    payload: frame.subarray(pos),
  };
}

function varintSize(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

function writeVarint(buf: Buffer, offset: number, n: number): number {
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    buf[offset++] = byte;
  } while (n > 0);
  return offset;
}

/** The first byte of a PUBLISH: type 3 and its flags DUP, QoS, RETAIN. [MQTT-3.3.1] */
export function publishHeader(qos: 0 | 1 | 2, retain: boolean, dup: boolean): number {
  return 0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0);
}

/**
 * Encodes a PUBLISH with no v5 properties. `header` is its first byte (publishHeader()); messageId
 * is written as given (0 for QoS 0 templates; withPacketId() sets it per QoS>0 subscriber).
 */
export function encodePublishPlain(topic: string, payload: Buffer, header: number, messageId: number, v5: boolean): Buffer {
  const qos = (header >> 1) & 3;
  const topicLen = Buffer.byteLength(topic);
  const remaining = 2 + topicLen + (qos > 0 ? 2 : 0) + (v5 ? 1 : 0) + payload.length;
  const buf = Buffer.allocUnsafe(1 + varintSize(remaining) + remaining);
  buf[0] = header;
  let pos = writeVarint(buf, 1, remaining);
  buf.writeUInt16BE(topicLen, pos);
  pos += 2;
  pos += buf.write(topic, pos, 'utf8');
  if (qos > 0) {
    buf.writeUInt16BE(messageId, pos);
    pos += 2;
  }
  if (v5) buf[pos++] = 0;
  payload.copy(buf, pos);
  return buf;
}

/** Offset of the packet identifier inside an encoded PUBLISH with QoS > 0. */
export function packetIdOffset(encoded: Buffer): number {
  let pos = 1;
  while (encoded[pos]! & 0x80) pos++;
  pos++;
  return pos + 2 + encoded.readUInt16BE(pos);
}

/** A copy of a QoS>0 PUBLISH template with its packet id (and optionally DUP) set. */
export function withPacketId(template: Buffer, messageId: number, dup: boolean): Buffer {
  const out = Buffer.allocUnsafe(template.length);
  template.copy(out);
  out.writeUInt16BE(messageId, packetIdOffset(out));
  if (dup) out[0] = out[0]! | 8;
  return out;
}

/** General encoder (everything but the plain PUBLISH fast path). */
export function encodePacket(packet: Packet, version: ProtocolVersion): Buffer {
  return mqttPacket.generate(packet, { protocolVersion: version });
}

export type PublishPacket = IPublishPacket;
export type { Packet };

// Fixed small packets, encoded once.
export const PINGRESP = Buffer.from([0xd0, 0x00]);

/** PUBACK/PUBREC/PUBREL/PUBCOMP: v3/v4 or v5 with reason 0 and no properties. */
export function encodeAck(type: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp', messageId: number, reasonCode: number, v5: boolean): Buffer {
  const header = type === 'puback' ? 0x40 : type === 'pubrec' ? 0x50 : type === 'pubrel' ? 0x62 : 0x70;
  if (v5 && reasonCode !== 0) {
    return Buffer.from([header, 3, messageId >> 8, messageId & 0xff, reasonCode]);
  }
  return Buffer.from([header, 2, messageId >> 8, messageId & 0xff]);
}
