// Hostile inputs (docs/hostile-inputs.md): each closes that connection (or answers with the
// right reason code), the broker keeps serving everyone else, and nothing is buffered unboundedly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, connect311, connect5, connectPacket, frame, hex, props, publish, startTestBroker, str, subscribe } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker((c) => {
    c.limits.maxPacketSize = 64 * 1024;
    c.limits.maxTopicLevels = 16;
    c.limits.maxTopicLength = 256;
  });
});
afterAll(async () => {
  await tb.stop();
});

async function stillServing(): Promise<void> {
  const c = await RawClient.connect(tb.port);
  c.send(connect311(`probe-${Math.random()}`));
  expect(await c.packetHex()).toBe('20020000');
  c.end();
}

function v5Publish(topic: string | Buffer, properties: Buffer, payload = 'x', qos = 0, id = 1): Buffer {
  const t = Buffer.isBuffer(topic) ? topic : Buffer.from(topic);
  const body = Buffer.concat([
    Buffer.from([t.length >> 8, t.length & 0xff]), t, qos > 0 ? Buffer.from([id >> 8, id & 0xff]) : Buffer.alloc(0),
    encodeVarint(properties.length), properties, Buffer.from(payload),
  ]);
  return Buffer.concat([Buffer.from([0x30 | (qos << 1)]), encodeVarint(body.length), body]);
}

function encodeVarint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

interface Case {
  name: string;
  v5?: boolean;
  /** Sent before the hostile bytes (undefined = the hostile bytes are the first packet). */
  connectFirst?: boolean;
  bytes: Buffer;
  /** Packets expected before the close (hex, or a pattern for packets with a reason string), undefined = don't care. */
  expect?: (string | RegExp)[];
}

const BAD_UTF8 = Buffer.from([0x61, 0xc3, 0x28]);
const DISCONNECT_0x81 = /^e0[0-9a-f]{2}81/;
const DISCONNECT_0x82 = /^e0[0-9a-f]{2}82/;

const cases: Case[] = [
  { name: '#1 huge Remaining Length as the first packet', bytes: hex('10ffffff7f') },
  { name: '#2 first packet not CONNECT with a 100 MB Remaining Length', bytes: hex('308080807400'), expect: [] },
  { name: 'first packet not CONNECT (PINGREQ)', bytes: hex('c000'), expect: [] },
  { name: '#4 5-byte varint in the Remaining Length', bytes: hex('1080808080010000'), expect: [] },
  { name: '#4 5-byte varint in CONNECT properties length', bytes: hex('101200044d515454050200' + '3c' + '8080808001' + '000161'), expect: [] },
  { name: '#16 reserved packet type 0', connectFirst: true, bytes: hex('0000'), expect: [] },
  { name: '#16 packet type 15 (AUTH) on v3.1.1', connectFirst: true, bytes: hex('f000'), expect: [] },
  { name: '#9 client sends CONNACK', connectFirst: true, bytes: hex('20020000'), expect: [] },
  { name: 'client sends SUBACK', connectFirst: true, bytes: hex('9003000100'), expect: [] },
  { name: 'client sends PINGRESP', connectFirst: true, bytes: hex('d000'), expect: [] },
  { name: 'second CONNECT', connectFirst: true, bytes: connect311('again'), expect: [] },
  { name: '#6 QoS 1 PUBLISH that ends after the topic', connectFirst: true, bytes: hex('3205' + '0003612f62'), expect: [] },
  { name: '#7 PUBLISH with a zero-length topic', connectFirst: true, bytes: hex('30030000' + '78'), expect: [] },
  { name: 'wildcard in a PUBLISH topic', connectFirst: true, bytes: publish('a/+/b', 'x'), expect: [] },
  { name: '#19 topic with more levels than allowed', connectFirst: true, bytes: publish('a/'.repeat(40) + 'z', 'x'), expect: [] },
  { name: '#20 topic longer than allowed', connectFirst: true, bytes: publish('t'.repeat(300), 'x'), expect: [] },
  { name: 'invalid UTF-8 in a topic', connectFirst: true, bytes: hex('30050002c3287a'), expect: [] },
  { name: 'U+0000 in a topic', connectFirst: true, bytes: hex('3005000261007a'), expect: [] },
  { name: 'QoS 3 PUBLISH', connectFirst: true, bytes: hex('36050001' + '61' + '0001'), expect: [] },
  { name: '#30 DUP on QoS 0', connectFirst: true, bytes: hex('38040001617a'), expect: [] },
  { name: '#21 malformed DISCONNECT (v3 with a body)', connectFirst: true, bytes: hex('e00100'), expect: [] },
  { name: '#23 SUBSCRIBE without the options byte', connectFirst: true, bytes: hex('8205' + '0001' + '000161'), expect: [] },
  { name: 'SUBSCRIBE with reserved header flags', connectFirst: true, bytes: hex('8006' + '0001' + '00016100'), expect: [] },
  { name: '#22 TLS ClientHello on the plain port', bytes: hex('16030100a5010000a10303' + '00'.repeat(32)), expect: [] },
  { name: '#3 slowloris: large declared length, body withheld (over the limit)', bytes: hex('1080808001'), expect: [] },
  { name: '#5 truncated PUBLISH body then close is not a crash', connectFirst: true, bytes: hex('3080200001'), expect: undefined },
  // v5
  { name: '#30 v5 PUBLISH carrying a Subscription Identifier', v5: true, connectFirst: true, bytes: v5Publish('a/b', hex('0b01')), expect: [/^e0[0-9a-f]{2}82/] },
  { name: 'v5 Topic Alias 0', v5: true, connectFirst: true, bytes: v5Publish('a/b', hex('230000')), expect: [/^e0[0-9a-f]{2}94/] },
  { name: 'v5 Topic Alias above the maximum', v5: true, connectFirst: true, bytes: v5Publish('a/b', hex('230400')), expect: [/^e0[0-9a-f]{2}94/] },
  { name: 'v5 unknown Topic Alias with an empty topic', v5: true, connectFirst: true, bytes: v5Publish('', hex('230005')), expect: [/^e0[0-9a-f]{2}82/] },
  { name: 'v5 Receive Maximum 0 in CONNECT', v5: true, bytes: connect5('rm0', 0x02, hex('210000')), expect: ['2003008200'] },
  { name: 'v5 Maximum Packet Size 0 in CONNECT', v5: true, bytes: connect5('mps0', 0x02, hex('2700000000')), expect: ['2003008200'] },
  { name: 'v5 PUBLISH to a wildcard topic → 0x90', v5: true, connectFirst: true, bytes: v5Publish('a/#', Buffer.alloc(0)), expect: [/^e0[0-9a-f]{2}90/] },
  { name: '#18 v5 SUBSCRIBE with no-local on a shared subscription', v5: true, connectFirst: true, bytes: hex('8210' + '0001' + '00' + '000a' + Buffer.from('$share/g/t').toString('hex') + '04'), expect: [/^e0[0-9a-f]{2}82/] },
  { name: 'v5 AUTH without a prior method', v5: true, connectFirst: true, bytes: hex('f00100'), expect: undefined },
  // v5: a repeated single-value property is a protocol error, never forwarded (mqtt-packet makes it an array, or keeps the last)
  { name: 'v5 PUBLISH with Payload Format Indicator 0 then 1', v5: true, connectFirst: true, bytes: v5Publish('a/b', hex('0100 0101')), expect: [DISCONNECT_0x82] },
  { name: 'v5 PUBLISH with Message Expiry Interval twice', v5: true, connectFirst: true, bytes: v5Publish('a/b', hex('02 0000003c 02 00000001')), expect: [DISCONNECT_0x82] },
  { name: 'v5 PUBLISH with Content Type twice', v5: true, connectFirst: true, bytes: v5Publish('a/b', hex('03 0001 61 03 0001 62')), expect: [DISCONNECT_0x82] },
  { name: 'v5 PUBLISH with Response Topic twice', v5: true, connectFirst: true, bytes: v5Publish('a/b', hex('08 0001 61 08 0001 62')), expect: [DISCONNECT_0x82] },
  { name: 'v5 PUBLISH with Correlation Data twice', v5: true, connectFirst: true, bytes: v5Publish('a/b', hex('09 0001 01 09 0001 02')), expect: [DISCONNECT_0x82] },
  { name: 'v5 PUBLISH with Topic Alias twice', v5: true, connectFirst: true, bytes: v5Publish('a/b', hex('23 0001 23 0002')), expect: [DISCONNECT_0x82] },
  { name: 'v5 SUBSCRIBE with Subscription Identifier twice', v5: true, connectFirst: true, bytes: frame(0x82, '0001', props('0b 01 0b 02'), str('a/#'), '01'), expect: [DISCONNECT_0x82] },
  { name: 'v5 CONNECT with Session Expiry Interval twice', v5: true, bytes: connectPacket({ properties: '11 00000000 11 0000003c' }), expect: ['2003008200'] },
  { name: 'v5 CONNECT with Receive Maximum twice', v5: true, bytes: connectPacket({ properties: '21 0010 21 0010' }), expect: ['2003008200'] },
  { name: 'v5 CONNECT with Maximum Packet Size twice', v5: true, bytes: connectPacket({ properties: '27 00001000 27 00001000' }), expect: ['2003008200'] },
  { name: 'v5 CONNECT with Topic Alias Maximum twice', v5: true, bytes: connectPacket({ properties: '22 0000 22 0004' }), expect: ['2003008200'] },
  { name: 'v5 CONNECT with Request Problem Information twice', v5: true, bytes: connectPacket({ properties: '17 01 17 00' }), expect: ['2003008200'] },
  { name: 'v5 CONNECT with Request Response Information twice', v5: true, bytes: connectPacket({ properties: '19 00 19 01' }), expect: ['2003008200'] },
  { name: 'v5 CONNECT with Authentication Method twice (0x82, not 0x8C)', v5: true, bytes: connectPacket({ properties: '15 0001 61 15 0001 62' }), expect: ['2003008200'] },
  { name: 'v5 CONNECT with Authentication Data twice', v5: true, bytes: connectPacket({ properties: '16 0001 01 16 0001 02' }), expect: ['2003008200'] },
  { name: 'v5 CONNECT with Will Delay Interval twice', v5: true, bytes: connectPacket({ will: { properties: '18 00000000 18 00000005', topic: 'w' } }), expect: ['2003008200'] },
  // ill-formed UTF-8: v5 0x81, v3.1.1 just closed [MQTT-1.5.4-1]
  { name: 'v5 CONNECT client id with ill-formed UTF-8', v5: true, bytes: connectPacket({ clientId: BAD_UTF8 }), expect: ['2003008100'] },
  { name: 'v5 CONNECT user name with ill-formed UTF-8', v5: true, bytes: connectPacket({ username: BAD_UTF8 }), expect: ['2003008100'] },
  { name: 'v3.1.1 CONNECT client id with ill-formed UTF-8', bytes: connectPacket({ level: 4, clientId: BAD_UTF8 }), expect: [] },
  { name: 'v3.1.1 CONNECT user name with ill-formed UTF-8', bytes: connectPacket({ level: 4, username: BAD_UTF8 }), expect: [] },
  { name: 'v3.1.1 CONNECT will topic with ill-formed UTF-8', bytes: connectPacket({ level: 4, will: { topic: BAD_UTF8 } }), expect: [] },
  { name: 'v5 PUBLISH (with properties) topic with ill-formed UTF-8', v5: true, connectFirst: true, bytes: v5Publish(BAD_UTF8, hex('02 0000003c')), expect: [DISCONNECT_0x81] },
  { name: 'v5 SUBSCRIBE filter with ill-formed UTF-8', v5: true, connectFirst: true, bytes: frame(0x82, '0001', props(), str(BAD_UTF8), '00'), expect: [DISCONNECT_0x81] },
  { name: 'v3.1.1 SUBSCRIBE filter with ill-formed UTF-8: no SUBACK', connectFirst: true, bytes: frame(0x82, '0001', str(BAD_UTF8), '00'), expect: [] },
  { name: 'v3.1.1 UNSUBSCRIBE filter with ill-formed UTF-8: no UNSUBACK', connectFirst: true, bytes: frame(0xa2, '0001', str(BAD_UTF8)), expect: [] },
];

describe('hostile inputs close only that connection', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const client = await RawClient.connect(tb.port);
      if (c.connectFirst) {
        client.send(c.v5 ? connect5(`h-${Math.random()}`) : connect311(`h-${Math.random()}`));
        expect((await client.packet())?.[0]).toBe(0x20);
      }
      client.send(c.bytes);
      if (c.name.includes('truncated')) client.socket.end();
      const got = await client.untilClosed();
      if (c.expect !== undefined) {
        expect(got).toHaveLength(c.expect.length);
        c.expect.forEach((e, i) => (typeof e === 'string' ? expect(got[i]).toBe(e) : expect(got[i]).toMatch(e)));
      }
      await stillServing();
    });
  }
});

describe('hostile sequences', () => {
  it('oversized PUBLISH is refused from its header: the body is never buffered', async () => {
    const client = await RawClient.connect(tb.port);
    client.send(connect5('big-one'));
    await client.packet();
    // Declares 10 MB, sends 1 MB: the broker must close after reading the header.
    client.send(Buffer.concat([hex('30'), encodeVarint(10 * 1024 * 1024)]));
    client.socket.write(Buffer.alloc(1024 * 1024));
    expect(await client.untilClosed()).toEqual(['e0029500']); // v5: DISCONNECT Packet Too Large
    await stillServing();
  });

  it('#14 many QoS 2 PUBLISH with the same packet id: one delivery, bounded state', async () => {
    const sub = await RawClient.connect(tb.port);
    sub.send(connect311('h-q2-sub'));
    await sub.packet();
    sub.send(subscribe(1, 'h/q2', 0));
    await sub.packet();
    const c = await RawClient.connect(tb.port);
    c.send(connect311('h-q2'));
    await c.packet();
    for (let i = 0; i < 200; i++) c.send(publish('h/q2', 'x', 2, 42));
    for (let i = 0; i < 200; i++) expect(await c.packetHex()).toBe('5002002a');
    sub.send('c000');
    expect(await sub.packetHex()).toBe('30070004682f713278');
    expect(await sub.packetHex()).toBe('d000');
    expect(tb.broker.sessions.get('h-q2')!.awaitingPubrelCount).toBe(1);
    c.end();
    sub.end();
  });

  it('#12 thousands of user properties are bounded by the maximum packet size', async () => {
    const c = await RawClient.connect(tb.port);
    const one = hex('26' + '0001' + '6b' + '0001' + '76'); // user property k=v, 7 bytes
    const props = Buffer.concat(Array.from({ length: 20_000 }, () => one));
    c.send(connect5('h-props'));
    await c.packet();
    c.send(v5Publish('a/b', props));
    expect(await c.untilClosed()).toEqual(['e0029500']);
    await stillServing();
  });

  it('#27 reconnect storm with the same client id while publishing', async () => {
    const clients: RawClient[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await RawClient.connect(tb.port);
      c.send(connect311('h-storm'));
      c.send(publish('h/storm', String(i), 1, i + 1));
      c.send(subscribe(i + 1, 'h/#', 1));
      clients.push(c);
    }
    // Only the last one stays connected; all others were taken over.
    await Promise.all(clients.slice(0, -1).map((c) => c.closedPromise));
    const last = clients.at(-1)!;
    last.send('c000');
    let p: string | undefined;
    do p = await last.packetHex(); while (p !== 'd000' && p !== undefined);
    expect(p).toBe('d000');
    last.end();
    await stillServing();
  });

  it('connect timeout closes a silent connection', async () => {
    const quick = await startTestBroker((c) => {
      c.limits.connectTimeoutMs = 200;
    });
    try {
      const c = await RawClient.connect(quick.port);
      expect(await c.untilClosed()).toEqual([]);
    } finally {
      await quick.stop();
    }
  });

  it('max connections: connections beyond the limit are refused', async () => {
    const small = await startTestBroker((c) => {
      c.limits.maxConnections = 2;
    });
    try {
      const a = await RawClient.connect(small.port);
      a.send(connect311('mc-a'));
      expect(await a.packetHex()).toBe('20020000');
      const b = await RawClient.connect(small.port);
      b.send(connect311('mc-b'));
      expect(await b.packetHex()).toBe('20020000');
      const c = await RawClient.connect(small.port);
      c.send(connect311('mc-c'));
      expect(await c.untilClosed()).toEqual(['20020003']); // server unavailable
      a.end();
      b.end();
    } finally {
      await small.stop();
    }
  });
});

describe('slow consumers', () => {
  it('a subscriber that stops reading costs bounded memory: QoS 0 is dropped and counted, QoS 1 is queued up to the limit', async () => {
    const small = await startTestBroker((c) => {
      c.limits.maxQueuedMessages = 100;
    });
    try {
      const slow = await RawClient.connect(small.port);
      slow.send(connect311('slow-sub'));
      await slow.packet();
      slow.send(subscribe(1, 'slow/#', 1));
      await slow.packet();
      slow.socket.pause(); // stop reading: the kernel buffers fill, then the broker's
      const pub = await RawClient.connect(small.port);
      pub.send(connect311('fast-pub'));
      await pub.packet();
      const payload = 'x'.repeat(16 * 1024);
      // 64 MB of QoS 0 and 2,000 QoS 1 messages toward a reader that does not read
      for (let i = 0; i < 4096; i++) pub.send(publish('slow/q0', payload, 0));
      for (let i = 0; i < 2000; i++) pub.send(publish('slow/q1', payload, 1, (i % 65535) + 1));
      pub.send('c000');
      let p: string | undefined;
      do p = await pub.packetHex(); while (p !== 'd000' && p !== undefined);
      const metrics = await small.broker.metrics.registry.metrics();
      expect(metrics).toMatch(/reason="slow-consumer"} \d+/);
      expect(metrics).toMatch(/reason="queue-full"} \d+/);
      const session = small.broker.sessions.get('slow-sub')!;
      expect(session.queuedCount).toBeLessThanOrEqual(100);
      expect(session.inflightCount).toBeLessThanOrEqual(64);
      // What the broker holds for this subscriber: its socket's write buffer, bounded near the
      // high-water mark (256 KiB) plus one tick of writes — not the 96 MB sent.
      const link = session.link as unknown as { socket: { writableLength: number } };
      expect(link.socket.writableLength).toBeLessThan(2 * 1024 * 1024);
      slow.end();
      pub.end();
    } finally {
      await small.stop();
    }
  });
});

describe('per-client publish rate', () => {
  it('over the rate the broker stops reading that client (TCP pushes back); nothing is lost', async () => {
    const limited = await startTestBroker((c) => {
      c.limits.publishRatePerSecond = 5;
    });
    try {
      const c = await RawClient.connect(limited.port);
      c.send(connect311('rate-1'));
      await c.packet();
      for (let i = 1; i <= 8; i++) c.send(publish('rate/t', String(i), 1, i));
      for (let i = 1; i <= 5; i++) expect(await c.packetHex()).toBe(`400200${i.toString(16).padStart(2, '0')}`);
      const conn = limited.broker.sessions.get('rate-1')!.link as unknown as { socket: { isPaused(): boolean } };
      expect(conn.socket.isPaused()).toBe(true);
      for (let i = 6; i <= 8; i++) expect(await c.packetHex()).toBe(`400200${i.toString(16).padStart(2, '0')}`);
      c.end();
    } finally {
      await limited.stop();
    }
  });
});
