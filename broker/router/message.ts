// A message as the router carries it: immutable after publish, with a per-message cache of its
// encoded PUBLISH bytes so fan-out encodes once per (protocol family, QoS, retain flag).
import { encodePacket, encodePublishPlain, publishHeader } from '../protocol/codec.ts';
import type { PublishPacket } from '../protocol/codec.ts';

/** v5 properties forwarded unchanged from publisher to subscribers. [MQTT-3.3.2-*] */
export interface ForwardedProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: Record<string, string | string[]>;
}

export interface Message {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  /** undefined when there is nothing to forward (the common, fast case). */
  properties: ForwardedProperties | undefined;
  /** Epoch ms after which the message must not be delivered; 0 = never expires. */
  expiresAt: number;
  /** Client id of the publisher (no-local), '' for the broker itself. */
  senderId: string;
  /** performance.now() at arrival, for the publish-to-deliver latency histogram. */
  receivedAt: number;
  /** Encoded PUBLISH templates, index = v5*6 + qos*2 + retain. */
  encoded: (Buffer | undefined)[] | undefined;
  /** messageBytes(), computed once. */
  bytes: number;
  /**
   * With replicas: the replica that accepted the message and its sequence there, the identity a
   * resume de-duplicates by (broker/cluster/routed.ts). '' and 0 with one replica.
   */
  origin: string;
  seq: number;
}

/** Bytes of the objects around a message (Message, its queue entry, a slot) beyond its own data. */
export const MESSAGE_OVERHEAD = 200;

/** UTF-8 bytes of a string, cheap for ASCII (the common topic). */
function stringBytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function propertyBytes(p: ForwardedProperties | undefined): number {
  if (p === undefined) return 0;
  let n = 16;
  if (p.contentType !== undefined) n += stringBytes(p.contentType);
  if (p.responseTopic !== undefined) n += stringBytes(p.responseTopic);
  if (p.correlationData !== undefined) n += p.correlationData.length;
  for (const [k, v] of Object.entries(p.userProperties ?? {})) {
    n += stringBytes(k);
    for (const one of Array.isArray(v) ? v : [v]) n += stringBytes(one) + 16;
  }
  return n;
}

/**
 * What one held message costs in memory: payload, topic, forwarded properties and the objects
 * around them. The unit of `limits.maxQueuedBytes`; stable for a message (cached templates are
 * not counted: a held message is compact and encoded when sent).
 */
export function messageBytes(msg: Message): number {
  return msg.bytes;
}

/**
 * A message kept beyond the tick it arrived in (queued, in flight, retained) must not pin the
 * socket chunk its payload was cut from (up to 64 KiB, or a whole reassembled frame): its payload
 * becomes a copy of its own size when it is a view into a much larger buffer.
 */
export function compactPayload(msg: Message): void {
  const p = msg.payload;
  if (p.buffer.byteLength > 2 * p.length + 64) msg.payload = Buffer.from(p);
}

/** What a PUBLISH carried: the fields a message is made of (an incoming packet, a will, a $SYS value). */
export interface Published {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
}

/**
 * How one copy of a message goes to one subscriber: its QoS and retain flag, packet id (0 until
 * assigned, and for QoS 0) and the Subscription Identifier(s) of the matching subscription(s).
 */
export interface PublishCopy {
  qos: 0 | 1 | 2;
  retain: boolean;
  messageId: number;
  subscriptionIds: number | number[] | undefined;
}

/** `published` is read, not kept: the message is a new object with its own fields. */
export function newMessage(
  published: Published, properties: ForwardedProperties | undefined, expiresAt: number, senderId: string, receivedAt: number,
): Message {
  const { topic, payload, qos, retain } = published;
  const bytes = MESSAGE_OVERHEAD + payload.length + stringBytes(topic) + propertyBytes(properties);
  return { topic, payload, qos, retain, properties, expiresAt, senderId, receivedAt, encoded: undefined, bytes, origin: '', seq: 0 };
}

/** The copies a cached template stands for (packet id 0, no subscription id), index = qos * 2 + retain. */
const TEMPLATE_COPIES: readonly PublishCopy[] = [0, 1, 2].flatMap((qos) => [false, true].map((retain) => (
  { qos: qos as 0 | 1 | 2, retain, messageId: 0, subscriptionIds: undefined }
)));

/**
 * The PUBLISH bytes of `msg` at `qos` with the given retain flag and packet id 0 (patch it per
 * subscriber). Cached on the message.
 */
export function publishTemplate(msg: Message, qos: 0 | 1 | 2, retain: boolean, v5: boolean): Buffer {
  const idx = (v5 ? 6 : 0) + qos * 2 + (retain ? 1 : 0);
  let cache = msg.encoded;
  if (cache === undefined) {
    cache = msg.encoded = [];
  }
  let buf = cache[idx];
  if (buf === undefined) {
    buf = v5 && msg.properties !== undefined
      ? encodeWithProperties(msg, TEMPLATE_COPIES[qos * 2 + (retain ? 1 : 0)]!, false, 0)
      : encodePublishPlain(msg.topic, msg.payload, publishHeader(qos, retain, false), 0, v5);
    cache[idx] = buf;
  }
  return buf;
}

/**
 * v5 PUBLISH with properties (subscription ids, remaining expiry as of `now`, forwarded
 * properties, the topic alias when one is used).
 */
export function encodeWithProperties(
  msg: Message, copy: PublishCopy, dup: boolean, now: number, alias?: { alias: number; known: boolean },
): Buffer {
  const properties: NonNullable<PublishPacket['properties']> = { ...msg.properties };
  if (msg.expiresAt !== 0) {
    properties.messageExpiryInterval = Math.max(0, Math.ceil((msg.expiresAt - now) / 1000)); // [MQTT-3.3.2-6]
  }
  const ids = copy.subscriptionIds;
  if (typeof ids === 'number') properties.subscriptionIdentifier = ids;
  else if (ids !== undefined && ids.length > 0) properties.subscriptionIdentifier = ids.length === 1 ? ids[0]! : ids;
  if (alias !== undefined) properties.topicAlias = alias.alias; // [MQTT-3.3.2-12]
  const topic = alias?.known === true ? '' : msg.topic;
  const { qos, retain } = copy;
  const packet: PublishPacket = { cmd: 'publish', topic, payload: msg.payload, qos, retain, dup, properties };
  if (qos > 0) packet.messageId = copy.messageId;
  return encodePacket(packet, 5);
}
