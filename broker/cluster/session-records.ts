// Owns how a persistent session's parts are written as Redis values, and read back: a
// subscription's options as four digits (and its identifier), an in-flight record as a small binary
// header followed by the envelope, a will as its delay and expiry followed by the envelope. Pure:
// session-store.ts does the Redis side. Anything these decoders did not write is skipped, never thrown.
import { decodeEnvelope, EnvelopeError, encodeEnvelope } from './envelope.ts';
import type { Envelope } from './envelope.ts';

/** Subscription as stored: the filter without `$share/group/`, and its options. */
export interface StoredSubscriptionRecord {
  filter: string;
  group: string | undefined;
  options: { qos: 0 | 1 | 2; noLocal: boolean; retainAsPublished: boolean; retainHandling: 0 | 1 | 2; identifier: number | undefined };
}

/** One outgoing QoS 1/2 message: 'publish' waits for PUBACK/PUBREC, 'pubrel' for PUBCOMP. */
export interface InflightRecord {
  stage: 'publish' | 'pubrel';
  qos: 1 | 2;
  retain: boolean;
  subscriptionIds: number[];
  /** undefined at the pubrel stage: the payload was delivered, only the PUBREL is left. */
  message: Envelope | undefined;
}

export interface StoredWill {
  delaySeconds: number;
  expirySeconds: number;
  message: Envelope;
}

/** Field prefix of a subscription in the state hash. */
export const SUB = 'sub:';

/**
 * A subscription's value in the state hash: QoS, no-local, retain-as-published, retain handling as
 * four digits, then the Subscription Identifier if any ("1000", "2110:7"). The filter and group are
 * the field's key, so they are not stored twice (JSON cost ~100 bytes more per subscription).
 */
export function encodeSubscriptionOptions(o: StoredSubscriptionRecord['options']): string {
  const flags = `${o.qos}${o.noLocal ? 1 : 0}${o.retainAsPublished ? 1 : 0}${o.retainHandling}`;
  return o.identifier === undefined ? flags : `${flags}:${o.identifier}`;
}

/** The record of field key `key` (as subscribed: `$share/<group>/<filter>` or a filter). */
export function decodeSubscription(key: string, value: string): StoredSubscriptionRecord | undefined {
  const m = /^([0-2])([01])([01])([0-2])(?::(\d+))?$/.exec(value);
  if (m === null) return undefined;
  const options = {
    qos: Number(m[1]) as 0 | 1 | 2, noLocal: m[2] === '1', retainAsPublished: m[3] === '1', retainHandling: Number(m[4]) as 0 | 1 | 2,
    identifier: m[5] === undefined ? undefined : Number(m[5]),
  };
  if (!key.startsWith('$share/')) return { filter: key, group: undefined, options };
  const rest = key.slice('$share/'.length);
  const slash = rest.indexOf('/');
  return slash <= 0 ? undefined : { filter: rest.slice(slash + 1), group: rest.slice(0, slash), options };
}

/** [stage][qos][retain][n ids][ids u32…] then the envelope (absent at the pubrel stage). */
export function encodeInflightHeader(r: Omit<InflightRecord, 'message'>): Buffer {
  const b = Buffer.alloc(4 + 4 * r.subscriptionIds.length);
  b[0] = r.stage === 'pubrel' ? 1 : 0;
  b[1] = r.qos;
  b[2] = r.retain ? 1 : 0;
  b[3] = r.subscriptionIds.length;
  r.subscriptionIds.forEach((id, i) => b.writeUInt32BE(id, 4 + 4 * i));
  return b;
}

export function decodeInflight(b: Buffer): InflightRecord | EnvelopeError {
  if (b.length < 4 || b[0]! > 1 || (b[1] !== 1 && b[1] !== 2) || b.length < 4 + 4 * b[3]!) return new EnvelopeError('bad in-flight record');
  const n = b[3]!;
  const subscriptionIds = Array.from({ length: n }, (_, i) => b.readUInt32BE(4 + 4 * i));
  const stage = b[0] === 1 ? 'pubrel' : 'publish';
  const rest = b.subarray(4 + 4 * n);
  const message = stage === 'pubrel' ? undefined : decodeEnvelope(rest);
  if (message instanceof EnvelopeError) return message;
  return { stage, qos: b[1], retain: b[2] === 1, subscriptionIds, message };
}

export function encodeWill(w: StoredWill): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(w.delaySeconds, 0);
  head.writeUInt32BE(w.expirySeconds, 4);
  return Buffer.concat([head, encodeEnvelope(w.message)]);
}

export function decodeWill(b: Buffer): StoredWill | undefined {
  if (b.length < 8) return undefined;
  const message = decodeEnvelope(b.subarray(8));
  if (message instanceof EnvelopeError) return undefined;
  return { delaySeconds: b.readUInt32BE(0), expirySeconds: b.readUInt32BE(4), message: { ...message, payload: Buffer.from(message.payload) } };
}

/** The in-flight hash as read (packet id → record); payloads are copies. */
export function inflightMap(raw: Record<string, Buffer>): Map<number, InflightRecord> {
  const out = new Map<number, InflightRecord>();
  for (const [id, value] of Object.entries(raw)) {
    const r = decodeInflight(value);
    if (r instanceof EnvelopeError) continue;
    if (r.message !== undefined) r.message = { ...r.message, payload: Buffer.from(r.message.payload) };
    out.set(Number(id), r);
  }
  return out;
}

/** The `sub:` fields of the state hash. */
export function subscriptionsOf(state: Record<string, string>): Map<string, StoredSubscriptionRecord> {
  const out = new Map<string, StoredSubscriptionRecord>();
  for (const [field, value] of Object.entries(state)) {
    if (!field.startsWith(SUB)) continue;
    const key = field.slice(SUB.length);
    const sub = decodeSubscription(key, value);
    if (sub !== undefined) out.set(key, sub);
  }
  return out;
}
