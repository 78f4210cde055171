// protocol/wire-rules.ts as a table: frames mqtt-packet parses without complaint (asserted first,
// that is the gap) and what the rule says about them: undefined, 0x81 malformed or 0x82 protocol error.
import { describe, expect, it } from 'vitest';
import { parseFrame } from '../../../broker/protocol/codec.ts';
import type { ProtocolVersion } from '../../../broker/protocol/codec.ts';
import { wireViolation } from '../../../broker/protocol/wire-rules.ts';
import { connectPacket, frame, props, str } from './helpers.ts';

const BAD_UTF8 = Buffer.from([0x61, 0xc3, 0x28]); // 0xC3 starts a 2-byte sequence, 0x28 cannot continue it
const REPLACEMENT = Buffer.from('a/\ufffd'); // a well-formed U+FFFD: an ordinary character
const v5Publish = (properties: string, topic: string | Buffer = 'a/b'): Buffer => frame(0x30, str(topic), props(properties), 'ff');

type Row = [name: string, frame: Buffer, version: ProtocolVersion, expected: undefined | [0x81 | 0x82, RegExp]];

const rows: Row[] = [
  // v5 PUBLISH properties
  ['PUBLISH without properties', v5Publish(''), 5, undefined],
  ['PUBLISH with one of each forwarded property', v5Publish('0101 02 0000003c 03 0001 74 08 0001 72 09 0002 abcd 23 0001'), 5, undefined],
  ['User Property may repeat, even with the same name', v5Publish('26 0001 6b 0001 31 26 0001 6b 0001 32'), 5, undefined],
  ['Payload Format Indicator twice (first 0: mqtt-packet keeps the last, no array)', v5Publish('0100 0101'), 5, [0x82, /Payload Format Indicator more than once/]],
  ['Payload Format Indicator twice (mqtt-packet: an array)', v5Publish('0101 0101'), 5, [0x82, /Payload Format Indicator more than once/]],
  ['Payload Format Indicator 2', v5Publish('0102'), 5, [0x82, /must be 0 or 1/]],
  ['Message Expiry Interval twice', v5Publish('02 0000003c 02 0000000a'), 5, [0x82, /Message Expiry Interval more than once/]],
  ['Content Type twice (first empty)', v5Publish('03 0000 03 0001 62'), 5, [0x82, /Content Type more than once/]],
  ['Response Topic twice', v5Publish('08 0001 61 08 0001 62'), 5, [0x82, /Response Topic more than once/]],
  ['Correlation Data twice', v5Publish('09 0001 01 09 0001 02'), 5, [0x82, /Correlation Data more than once/]],
  ['Topic Alias twice', v5Publish('23 0001 23 0002'), 5, [0x82, /Topic Alias more than once/]],
  ['Session Expiry Interval is not a PUBLISH property', v5Publish('11 0000003c'), 5, [0x81, /Session Expiry Interval is not allowed in PUBLISH/]],
  ['Content Type with ill-formed UTF-8', v5Publish(`03 0003 ${BAD_UTF8.toString('hex')}`), 5, [0x81, /Content Type is not well-formed UTF-8/]],
  ['User Property name with U+0000', v5Publish('26 0002 6100 0001 31'), 5, [0x81, /User Property name contains U\+0000/]],
  ['PUBLISH topic with ill-formed UTF-8', v5Publish('02 0000003c', BAD_UTF8), 5, [0x81, /topic name is not well-formed UTF-8/]],
  ['PUBLISH topic with a well-formed U+FFFD', v5Publish('02 0000003c', REPLACEMENT), 5, undefined],
  ['PUBLISH topic with U+0000 is left to the topic rules (0x90)', v5Publish('02 0000003c', 'a\u0000b'), 5, undefined],
  ['v3.1.1 PUBLISH topic with ill-formed UTF-8', frame(0x30, str(BAD_UTF8), 'ff'), 4, [0x81, /topic name is not well-formed UTF-8/]],
  // CONNECT (judged by its own protocol level)
  ['v5 CONNECT with properties', connectPacket({ properties: '11 0000003c 21 0010 27 00001000 22 0008 17 01 19 00' }), 4, undefined],
  ['Session Expiry Interval twice', connectPacket({ properties: '11 00000000 11 0000003c' }), 4, [0x82, /Session Expiry Interval more than once in CONNECT/]],
  ['Receive Maximum twice', connectPacket({ properties: '21 0010 21 0020' }), 4, [0x82, /Receive Maximum more than once/]],
  ['Maximum Packet Size twice', connectPacket({ properties: '27 00001000 27 00002000' }), 4, [0x82, /Maximum Packet Size more than once/]],
  ['Topic Alias Maximum twice', connectPacket({ properties: '22 0000 22 0008' }), 4, [0x82, /Topic Alias Maximum more than once/]],
  ['Request Problem Information twice', connectPacket({ properties: '17 00 17 01' }), 4, [0x82, /Request Problem Information more than once/]],
  ['Request Response Information twice', connectPacket({ properties: '19 01 19 01' }), 4, [0x82, /Request Response Information more than once/]],
  ['Request Problem Information 2', connectPacket({ properties: '17 02' }), 4, [0x82, /must be 0 or 1/]],
  ['Authentication Method twice', connectPacket({ properties: '15 0001 61 15 0001 62' }), 4, [0x82, /Authentication Method more than once/]],
  ['Authentication Data twice', connectPacket({ properties: '15 0001 61 16 0001 01 16 0001 02' }), 4, [0x82, /Authentication Data more than once/]],
  ['Topic Alias is not a CONNECT property', connectPacket({ properties: '23 0001' }), 4, [0x81, /Topic Alias is not allowed in CONNECT/]],
  ['Will Delay Interval twice', connectPacket({ will: { properties: '18 00000000 18 0000000a', topic: 'w' } }), 4, [0x82, /Will Delay Interval more than once in will/]],
  ['Will with one of each property', connectPacket({ will: { properties: '18 0000000a 01 01 02 0000003c 03 0001 74 08 0001 72 09 0001 01', topic: 'w' } }), 4, undefined],
  ['Receive Maximum is not a will property', connectPacket({ will: { properties: '21 0010', topic: 'w' } }), 4, [0x81, /Receive Maximum is not allowed in will/]],
  ['client id with ill-formed UTF-8', connectPacket({ clientId: BAD_UTF8 }), 4, [0x81, /client identifier is not well-formed UTF-8/]],
  ['client id with U+0000', connectPacket({ clientId: 'a\u0000' }), 4, [0x81, /client identifier contains U\+0000/]],
  ['user name with ill-formed UTF-8', connectPacket({ username: BAD_UTF8, password: 'p' }), 4, [0x81, /user name is not well-formed UTF-8/]],
  ['will topic with ill-formed UTF-8', connectPacket({ will: { topic: BAD_UTF8 } }), 4, [0x81, /will topic is not well-formed UTF-8/]],
  ['v3.1.1 client id with ill-formed UTF-8', connectPacket({ level: 4, clientId: BAD_UTF8 }), 4, [0x81, /client identifier is not well-formed UTF-8/]],
  ['v3.1.1 user name with ill-formed UTF-8', connectPacket({ level: 4, username: BAD_UTF8 }), 4, [0x81, /user name is not well-formed UTF-8/]],
  ['v3.1.1 CONNECT with a well-formed U+FFFD client id', connectPacket({ level: 4, clientId: '\ufffd' }), 4, undefined],
  // SUBSCRIBE / UNSUBSCRIBE
  ['SUBSCRIBE with a Subscription Identifier', frame(0x82, '0001', props('0b 05'), str('a/#'), '01'), 5, undefined],
  ['Subscription Identifier twice', frame(0x82, '0001', props('0b 05 0b 06'), str('a/#'), '01'), 5, [0x82, /Subscription Identifier more than once in SUBSCRIBE/]],
  ['v5 SUBSCRIBE filter with ill-formed UTF-8 (second filter)', frame(0x82, '0001', props(), str('a'), '00', str(BAD_UTF8), '00'), 5, [0x81, /topic filter is not well-formed UTF-8/]],
  ['v3.1.1 SUBSCRIBE filter with ill-formed UTF-8', frame(0x82, '0001', str(BAD_UTF8), '00'), 4, [0x81, /topic filter is not well-formed UTF-8/]],
  ['v3.1.1 SUBSCRIBE filter with a well-formed U+FFFD', frame(0x82, '0001', str(REPLACEMENT), '00'), 4, undefined],
  ['v5 UNSUBSCRIBE filter with ill-formed UTF-8', frame(0xa2, '0001', props(), str(BAD_UTF8)), 5, [0x81, /topic filter is not well-formed UTF-8/]],
  ['v3.1.1 UNSUBSCRIBE filter with ill-formed UTF-8', frame(0xa2, '0001', str(BAD_UTF8)), 4, [0x81, /topic filter is not well-formed UTF-8/]],
  ['Subscription Identifier is not an UNSUBSCRIBE property', frame(0xa2, '0001', props('0b 05'), str('a')), 5, [0x81, /not allowed in UNSUBSCRIBE/]],
  // acks, DISCONNECT, AUTH
  ['PUBACK with a reason string', frame(0x40, '0001 10', props('1f 0002 6f6b')), 5, undefined],
  ['PUBACK with Reason String twice', frame(0x40, '0001 10', props('1f 0001 61 1f 0001 62')), 5, [0x82, /Reason String more than once/]],
  ['PUBREL with Reason String twice', frame(0x62, '0001 00', props('1f 0001 61 1f 0001 62')), 5, [0x82, /Reason String more than once/]],
  ['DISCONNECT with Session Expiry Interval twice', frame(0xe0, '00', props('11 00000000 11 0000003c')), 5, [0x82, /Session Expiry Interval more than once in DISCONNECT/]],
  ['DISCONNECT with a reason string of ill-formed UTF-8', frame(0xe0, '00', props(`1f 0003 ${BAD_UTF8.toString('hex')}`)), 5, [0x81, /Reason String is not well-formed UTF-8/]],
  ['AUTH with Authentication Method twice', frame(0xf0, '18', props('15 0001 61 15 0001 61')), 5, [0x82, /Authentication Method more than once in AUTH/]],
];

describe('wire rules mqtt-packet does not enforce', () => {
  it.each(rows)('%s', (_name, bytes, version, expected) => {
    expect(parseFrame(bytes, version)).not.toBeInstanceOf(Error);
    const got = wireViolation(bytes, version);
    if (expected === undefined) {
      expect(got).toBeUndefined();
    } else {
      expect(got?.reasonCode).toBe(expected[0]);
      expect(got?.message).toMatch(expected[1]);
    }
  });

  it('a frame shorter than its fields says is malformed, never a throw', () => {
    expect(wireViolation(Buffer.from([0x30, 0x03, 0x00, 0x05, 0x61]), 4)).toEqual({ reasonCode: 0x81, message: 'topic name runs past the end of the packet' });
  });
});
