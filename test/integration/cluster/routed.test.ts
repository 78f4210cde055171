// The seam between the router's Message and the cluster's Envelope: a message survives the trip
// Message → envelope → frame → envelope → Message with everything a subscriber sees; and a resume
// merges what was buffered with what the old owner stored, each message once.
import { describe, expect, it } from 'vitest';
import { decodeEnvelope, encodeEnvelope } from '../../../broker/cluster/envelope.ts';
import type { Envelope } from '../../../broker/cluster/envelope.ts';
import { envelopeFromMessage, messageFromEnvelope, unseenDuringResume } from '../../../broker/cluster/routed.ts';
import type { InflightRecord } from '../../../broker/cluster/session-store.ts';
import { newMessage } from '../../../broker/router/message.ts';

const env = (origin: string, seq: number): Envelope => ({
  origin, seq, senderId: 'c', topic: 't', payload: Buffer.from(`${origin}${seq}`), qos: 1, retain: false, expiresAt: 0, properties: undefined, sharedPicks: undefined,
});

describe('routed', () => {
  it('Message → frame → Message keeps topic, payload, QoS, retain, properties, expiry, sender', () => {
    const msg = newMessage({ topic: 'a/b', payload: Buffer.from('x'), qos: 2, retain: true }, { contentType: 'text/plain', userProperties: { k: ['1', '2'] } }, 1_900_000_000_000, 'pub-1', performance.now());
    const frame = encodeEnvelope({ ...envelopeFromMessage(msg, [{ key: 'g/a/+', replica: 'broker-1' }]), origin: 'broker-0', seq: 5 });
    const e = decodeEnvelope(frame) as Envelope;
    const back = messageFromEnvelope(e);
    for (const k of ['topic', 'qos', 'retain', 'properties', 'expiresAt', 'senderId', 'bytes'] as const) expect(back[k]).toEqual(msg[k]);
    expect(back.payload.equals(msg.payload)).toBe(true);
    expect(e.sharedPicks).toEqual([{ key: 'g/a/+', replica: 'broker-1' }]);
  });

  it('a payload that is a small view into a large read is copied (a queued message must not pin the read)', () => {
    const read = Buffer.alloc(1 << 16);
    const e: Envelope = { ...env('broker-0', 1), payload: read.subarray(100, 200) };
    expect(messageFromEnvelope(e).payload.buffer).not.toBe(read.buffer);
    const whole = Buffer.alloc(100);
    expect(messageFromEnvelope({ ...e, payload: whole }).payload).toBe(whole);
  });

  it('a resume keeps buffered messages the old owner did not store, each once', () => {
    const queue = [env('broker-0', 1), env('broker-1', 7)];
    const inflight = new Map<number, InflightRecord>([
      [1, { stage: 'publish', qos: 1, retain: false, subscriptionIds: [], message: env('broker-0', 0) }],
      [2, { stage: 'pubrel', qos: 2, retain: false, subscriptionIds: [], message: undefined }],
    ]);
    const buffered = [env('broker-0', 0), env('broker-0', 1), env('broker-0', 2), env('broker-1', 7), env('broker-1', 8), env('broker-0', 2)];
    expect(unseenDuringResume(buffered, queue, inflight).map((e) => `${e.origin}:${e.seq}`)).toEqual(['broker-0:2', 'broker-1:8']);
  });
});
