// The envelope: every field survives a round trip, the payload is the frame's tail (no copy of it
// encoded twice), and anything that is not an envelope — truncated, bit-flipped, random — is
// answered with an EnvelopeError, never an exception.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeEnvelope, encodeEnvelope, EnvelopeError } from '../../../broker/cluster/envelope.ts';
import type { Envelope } from '../../../broker/cluster/envelope.ts';

const base: Envelope = {
  origin: 'broker-0', seq: 1, senderId: 'c1', topic: 'a/b', payload: Buffer.from('hello'), qos: 1, retain: false,
  expiresAt: 0, properties: undefined, sharedPicks: undefined,
};

const cases: [string, Partial<Envelope>][] = [
  ['plain QoS 0', { qos: 0 }],
  ['QoS 2 retained', { qos: 2, retain: true }],
  ['empty payload (retained delete)', { payload: Buffer.alloc(0), retain: true }],
  ['broker as sender', { senderId: '' }],
  ['expiry', { expiresAt: 1_900_000_000_123 }],
  ['largest sequence', { seq: 2 ** 48 - 1 }],
  ['UTF-8 topic and origin', { topic: 'café/温度/🌡', origin: 'brøker-1' }],
  ['shared picks', { sharedPicks: [{ key: 'g1/a/+', replica: 'broker-1' }, { key: 'g2/#', replica: 'broker-0' }] }],
  ['every forwarded property', {
    properties: {
      payloadFormatIndicator: true, contentType: 'application/json', responseTopic: 'r/1', correlationData: Buffer.from([0, 1, 2, 255]),
      userProperties: { a: '1', b: ['x', 'y', 'z'], '': '' },
    },
  }],
  ['format indicator false only', { properties: { payloadFormatIndicator: false } }],
  ['binary payload 64 KiB', { payload: Buffer.alloc(1 << 16, 0xab) }],
];

describe('envelope', () => {
  it.each(cases)('round-trips: %s', (_name, over) => {
    const e: Envelope = { ...base, ...over };
    const frame = encodeEnvelope(e);
    const back = decodeEnvelope(frame);
    expect(back).not.toBeInstanceOf(EnvelopeError);
    expect(back).toEqual(e);
  });

  it('is compact: a 64-byte QoS 1 message on a short topic costs 13 bytes of framing', () => {
    const frame = encodeEnvelope({ ...base, topic: 'bench/pair/1', senderId: 'pub-1', payload: Buffer.alloc(64) });
    expect(frame.length - 64 - 'bench/pair/1'.length - 'pub-1'.length - 'broker-0'.length).toBe(13);
  });

  it('rejects every truncation of a frame', () => {
    const frame = encodeEnvelope({ ...base, ...cases[8]![1], sharedPicks: cases[7]![1].sharedPicks, expiresAt: 5 });
    const payloadStart = frame.length - base.payload.length;
    for (let n = 0; n < payloadStart; n++) expect(decodeEnvelope(frame.subarray(0, n))).toBeInstanceOf(EnvelopeError);
  });

  it('rejects a foreign version byte, QoS 3, unknown flags, ill-formed UTF-8 and unknown property tags', () => {
    const frame = encodeEnvelope({ ...base, properties: { contentType: 'x' } });
    const variants = [
      (b: Buffer) => (b[0] = 0x00),
      (b: Buffer) => (b[1] = b[1]! | 0x03),
      (b: Buffer) => (b[1] = b[1]! | 0x40),
      (b: Buffer) => (b[9] = 0xff), // first byte of the origin
      (b: Buffer) => (b[frame.indexOf(Buffer.from([2, 0, 1, 0x78]))] = 9),
    ];
    for (const mutate of variants) {
      const b = Buffer.from(frame);
      mutate(b);
      expect(decodeEnvelope(b)).toBeInstanceOf(EnvelopeError);
    }
  });

  it('never throws on arbitrary bytes or on bit flips of a valid frame', () => {
    const valid = encodeEnvelope({ ...base, ...cases[8]![1], expiresAt: 7 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const r = decodeEnvelope(Buffer.from(bytes));
      expect(r instanceof EnvelopeError || typeof r.topic === 'string').toBe(true);
    }), { numRuns: 2000 });
    fc.assert(fc.property(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 }), (at, x) => {
      const b = Buffer.from(valid);
      b[at] = b[at]! ^ x;
      decodeEnvelope(b); // any answer, no exception
    }), { numRuns: 2000 });
  });

  it('refuses to encode what MQTT cannot carry', () => {
    expect(() => encodeEnvelope({ ...base, origin: 'x'.repeat(256) })).toThrow(RangeError);
    expect(() => encodeEnvelope({ ...base, seq: 2 ** 48 })).toThrow(RangeError);
    expect(() => encodeEnvelope({ ...base, topic: 'x'.repeat(65536) })).toThrow(RangeError);
  });
});
