// Wire-level tests: raw bytes in, exact bytes out, one block per packet type.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, connect311, connect5, hex, publish, startTestBroker, subscribe } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker();
});
afterAll(async () => {
  await tb.stop();
});

async function connected(id: string, v5 = false): Promise<RawClient> {
  const c = await RawClient.connect(tb.port);
  c.send(v5 ? connect5(id) : connect311(id));
  const ack = await c.packetHex();
  expect(ack?.slice(0, 8)).toBe(v5 ? ack!.slice(0, 4) + '0000' : '20020000');
  return c;
}

describe('CONNECT / CONNACK', () => {
  it('v3.1.1 clean session → 20 02 00 00', async () => {
    const c = await RawClient.connect(tb.port);
    c.send(connect311('w-a'));
    expect(await c.packetHex()).toBe('20020000');
    c.end();
  });

  it('v3.1 (MQIsdp, level 3) is accepted', async () => {
    const c = await RawClient.connect(tb.port);
    c.send(hex('101100064d514973647003020000 0003 772d62'.replace(/\s/g, '')).subarray(0) );
    expect(await c.packetHex()).toBe('20020000');
    c.end();
  });

  it('v3.1.1 empty client id without clean session → return code 2, then close', async () => {
    const c = await RawClient.connect(tb.port);
    c.send(connect311('', 0x00));
    expect(await c.untilClosed()).toEqual(['20020002']);
  });

  it('unsupported protocol level → return code 1, then close', async () => {
    const c = await RawClient.connect(tb.port);
    c.send(hex('100d00044d5154540702003c0001' + '61'));
    expect(await c.untilClosed()).toEqual(['20020001']);
  });

  it('v5 CONNACK carries the server limits; empty client id gets an assigned one', async () => {
    const c = await RawClient.connect(tb.port);
    c.send(connect5('', 0x02));
    const ack = (await c.packet())!;
    expect(ack[0]).toBe(0x20);
    expect(ack.subarray(2, 4).toString('hex')).toBe('0000'); // session present 0, reason 0x00
    const props = ack.subarray(5);
    expect(props.includes(hex('210040'))).toBe(true); // Receive Maximum 64
    expect(props.includes(hex('2700100000'))).toBe(true); // Maximum Packet Size 1 MiB
    expect(props.includes(hex('220040'))).toBe(true); // Topic Alias Maximum 64
    expect(props.includes(Buffer.from([0x12]))).toBe(true); // Assigned Client Identifier
    expect(props.toString()).toContain('enclave-');
    c.end();
  });

  it('v5 with an authentication method → 0x8C bad authentication method', async () => {
    const c = await RawClient.connect(tb.port);
    c.send(connect5('w-auth', 0x02, hex('15000453434d41'))); // 0x15 "SCMA"
    const packets = await c.untilClosed();
    expect(packets).toEqual(['2003008c00']); // session present 0, reason 0x8C, no properties
  });

  it('session present after reconnect with clean session 0', async () => {
    const a = await RawClient.connect(tb.port);
    a.send(connect311('w-persist', 0x00));
    expect(await a.packetHex()).toBe('20020000');
    a.send('e000');
    await a.closedPromise;
    const b = await RawClient.connect(tb.port);
    b.send(connect311('w-persist', 0x00));
    expect(await b.packetHex()).toBe('20020100');
    b.send('e000');
  });
});

describe('PINGREQ / PUBLISH / SUBSCRIBE / UNSUBSCRIBE / DISCONNECT', () => {
  it('PINGREQ → PINGRESP', async () => {
    const c = await connected('w-ping');
    c.send('c000');
    expect(await c.packetHex()).toBe('d000');
    c.end();
  });

  it('SUBSCRIBE → SUBACK with granted QoS; QoS 1 PUBLISH → PUBACK and delivery', async () => {
    const sub = await connected('w-sub1');
    sub.send(subscribe(1, 'w/t', 1));
    expect(await sub.packetHex()).toBe('9003000101');
    const pub = await connected('w-pub1');
    pub.send(publish('w/t', 'hi', 1, 0x0a));
    expect(await pub.packetHex()).toBe('4002000a');
    // the subscriber gets its own packet id (1), topic "w/t", payload "hi"
    expect(await sub.packetHex()).toBe('3209' + '0003772f74' + '0001' + '6869');
    sub.send('40020001'); // PUBACK
    sub.end();
    pub.end();
  });

  it('a 3.1.1 SUBSCRIBE and UNSUBSCRIBE are read as 3.1.1 after a v5 client connected', async () => {
    // mqtt-packet's parser takes its protocol level from the last CONNECT it parsed: a v5 CONNECT
    // made the next 3.1.1 SUBSCRIBE read as v5 (the filter's length taken for properties), closed as malformed.
    const c = await connected('w-mixed-311');
    const v5 = await connected('w-mixed-v5', true);
    c.send(subscribe(3, 'w/mixed', 1));
    expect(await c.packetHex()).toBe('9003000301');
    const v5b = await connected('w-mixed-v5b', true);
    c.send('a20b00040007772f6d69786564'); // UNSUBSCRIBE w/mixed
    expect(await c.packetHex()).toBe('b0020004');
    for (const x of [v5, v5b, c]) x.end();
  });

  it('QoS 2 exactly once: duplicate PUBLISH is acknowledged but not delivered again', async () => {
    const sub = await connected('w-sub2');
    sub.send(subscribe(2, 'w/q2', 2));
    expect(await sub.packetHex()).toBe('9003000202');
    const pub = await connected('w-pub2');
    pub.send(publish('w/q2', 'x', 2, 7));
    expect(await pub.packetHex()).toBe('50020007');
    const dup = publish('w/q2', 'x', 2, 7);
    dup[0] = dup[0]! | 0x08;
    pub.send(dup);
    expect(await pub.packetHex()).toBe('50020007');
    pub.send('62020007'); // PUBREL
    expect(await pub.packetHex()).toBe('70020007'); // PUBCOMP
    expect(await sub.packetHex()).toBe('3409' + '0004772f7132' + '0001' + '78');
    sub.send('50020001'); // PUBREC
    expect(await sub.packetHex()).toBe('62020001'); // PUBREL
    sub.send('70020001'); // PUBCOMP
    // nothing else arrives for the subscriber: a PINGREQ answer comes next
    sub.send('c000');
    expect(await sub.packetHex()).toBe('d000');
    sub.end();
    pub.end();
  });

  it('a well-formed U+FFFD is an ordinary character: subscribed, published, delivered', async () => {
    const c = await connected('w-fffd');
    c.send(subscribe(1, 'w/\ufffd', 0)); // EF BF BD on the wire
    expect(await c.packetHex()).toBe('9003000100');
    c.send(publish('w/\ufffd', 'r', 0));
    expect(await c.packetHex()).toBe('30080005772fefbfbd72');
    c.end();
  });

  it('PUBREL for an unknown id still gets PUBCOMP (v3.1.1)', async () => {
    const c = await connected('w-rel');
    c.send('62020063');
    expect(await c.packetHex()).toBe('70020063');
    c.end();
  });

  it('UNSUBSCRIBE → UNSUBACK; no delivery afterwards', async () => {
    const c = await connected('w-unsub');
    c.send(subscribe(3, 'w/u', 0));
    expect(await c.packetHex()).toBe('9003000300');
    c.send(hex('a2070004' + '0003772f75'));
    expect(await c.packetHex()).toBe('b0020004');
    c.send(publish('w/u', 'z', 0));
    c.send('c000');
    expect(await c.packetHex()).toBe('d000');
    c.end();
  });

  it('retained: set, replay with the retain flag, delete with an empty payload', async () => {
    const pub = await connected('w-ret');
    pub.send(publish('w/r', 'keep', 0, 0, true));
    pub.send('c000'); // the PINGRESP proves the PUBLISH before it was processed
    expect(await pub.packetHex()).toBe('d000');
    const s1 = await connected('w-ret-s1');
    s1.send(subscribe(1, 'w/#', 0));
    expect(await s1.packetHex()).toBe('9003000100');
    expect(await s1.packetHex()).toBe('31090003772f726b656570');
    pub.send(publish('w/r', '', 0, 0, true));
    expect(await s1.packetHex()).toBe('30050003772f72'); // live delivery, retain flag cleared
    pub.send('c000');
    expect(await pub.packetHex()).toBe('d000');
    const s2 = await connected('w-ret-s2');
    s2.send(subscribe(1, 'w/#', 0));
    expect(await s2.packetHex()).toBe('9003000100');
    s2.send('c000');
    expect(await s2.packetHex()).toBe('d000');
    for (const c of [pub, s1, s2]) c.end();
  });

  it('v5 PUBACK carries 0x87 for a publish to a $-topic', async () => {
    const c = await connected('w-dollar', true);
    c.send(publish('$SYS/x', 'no', 1, 5, false, true));
    expect(await c.packetHex()).toBe('4003000587');
    c.end();
  });

  it('DISCONNECT closes without the will; an abrupt close sends it', async () => {
    const watcher = await connected('w-will-watch');
    watcher.send(subscribe(1, 'will/#', 0));
    expect(await watcher.packetHex()).toBe('9003000100');
    const willConnect = (id: string): Buffer => {
      const idb = Buffer.from(id);
      const body = Buffer.concat([hex('00044d51545404' + '06' + '003c'), Buffer.from([0, idb.length]), idb, hex('0006' + Buffer.from('will/a').toString('hex') + '0004' + Buffer.from('gone').toString('hex'))]);
      return Buffer.concat([Buffer.from([0x10, body.length]), body]);
    };
    const polite = await RawClient.connect(tb.port);
    polite.send(willConnect('w-polite'));
    expect(await polite.packetHex()).toBe('20020000');
    polite.send('e000');
    await polite.closedPromise;
    const rude = await RawClient.connect(tb.port);
    rude.send(willConnect('w-rude'));
    expect(await rude.packetHex()).toBe('20020000');
    rude.end();
    expect(await watcher.packetHex()).toBe('300c' + '0006' + Buffer.from('will/a').toString('hex') + Buffer.from('gone').toString('hex'));
    watcher.end();
  });
});
