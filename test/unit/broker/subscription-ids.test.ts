// v5 overlapping subscriptions with Subscription Identifiers: one copy of a message, at the highest
// QoS of the matching subscriptions, carrying every identifier. [MQTT-3.3.4-3, 3.3.4-5]
// Without identifiers (and for 3.1.1) each matching subscription still gets its own copy.
import mqtt from 'mqtt';
import type { IPublishPacket } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, connect5, frame, publish, sleep, startTestBroker, str } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker();
});
afterAll(async () => {
  await tb.stop();
});

/** A v5 SUBSCRIBE of one filter, with a Subscription Identifier when `id` is given. */
function subscribe5(packetId: number, filter: string, options: number, id?: number): Buffer {
  const props = id === undefined ? Buffer.from([0]) : Buffer.from([2, 0x0b, id]);
  return frame(0x82, Buffer.from([packetId >> 8, packetId & 0xff]), props, str(filter), Buffer.from([options]));
}

/** Packets `c` receives until `ms` of silence. */
async function drain(c: RawClient, ms = 200): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const p = await Promise.race([c.packetHex(), sleep(ms).then(() => 'quiet')]);
    if (p === 'quiet' || p === undefined) return out;
    out.push(p);
  }
}

describe('overlapping subscriptions', () => {
  it('v5 with identifiers 1 (QoS 0) and 2 (QoS 1): one PUBLISH at QoS 1 carrying both identifiers', async () => {
    const sub = await RawClient.connect(tb.port);
    sub.send(connect5('sid-sub'));
    await sub.packet();
    sub.send(subscribe5(1, 'sid/+', 0x00, 1));
    expect(await sub.packetHex()).toBe('9004000100' + '00');
    sub.send(subscribe5(2, 'sid/#', 0x01, 2));
    expect(await sub.packetHex()).toBe('9004000200' + '01');
    const pub = await RawClient.connect(tb.port);
    pub.send(connect5('sid-pub'));
    await pub.packet();
    pub.send(publish('sid/a', 'x', 1, 7, false, true));
    expect(await pub.packetHex()).toBe('40020007');
    const got = await drain(sub);
    // 0x32 QoS 1 | topic "sid/a" | packet id | properties: 0B 01, 0B 02 | payload "x"
    expect(got).toEqual(['320f' + '0005' + Buffer.from('sid/a').toString('hex') + '0001' + '04' + '0b01' + '0b02' + '78']);
    sub.end();
    pub.end();
  });

  it('MQTT.js v5 sees one message with subscriptionIdentifier [1, 2]', async () => {
    const sub = await mqtt.connectAsync({ host: '127.0.0.1', port: tb.port, protocolVersion: 5, reconnectPeriod: 0 });
    const pub = await mqtt.connectAsync({ host: '127.0.0.1', port: tb.port, protocolVersion: 5, reconnectPeriod: 0 });
    try {
      const got: IPublishPacket[] = [];
      sub.on('message', (_t, _p, packet) => got.push(packet));
      await sub.subscribeAsync('sidjs/+/x', { qos: 1, properties: { subscriptionIdentifier: 1 } });
      await sub.subscribeAsync('sidjs/#', { qos: 2, properties: { subscriptionIdentifier: 2 } });
      await pub.publishAsync('sidjs/a/x', 'm', { qos: 2 });
      await sleep(200);
      expect(got).toHaveLength(1);
      expect(got[0]!.qos).toBe(2);
      expect(got[0]!.properties?.subscriptionIdentifier).toEqual([1, 2]);
    } finally {
      await Promise.all([sub.endAsync(true), pub.endAsync(true)]);
    }
  });

  it('v5 without identifiers: one copy per matching subscription, as before', async () => {
    const sub = await RawClient.connect(tb.port);
    sub.send(connect5('sid-none'));
    await sub.packet();
    sub.send(subscribe5(1, 'sidn/+', 0x00));
    await sub.packet();
    sub.send(subscribe5(2, 'sidn/#', 0x00));
    await sub.packet();
    const pub = await RawClient.connect(tb.port);
    pub.send(connect5('sid-none-pub'));
    await pub.packet();
    pub.send(publish('sidn/a', 'x', 0, 0, false, true));
    expect(await drain(sub)).toHaveLength(2);
    sub.end();
    pub.end();
  });
});

describe('outbound topic aliases', () => {
  it('a client announcing Topic Alias Maximum 65535 gets at most limits.topicAliasMaximum (64) aliases', async () => {
    const sub = await RawClient.connect(tb.port);
    sub.send(connect5('alias-greedy', 0x02, Buffer.from([0x22, 0xff, 0xff]))); // Topic Alias Maximum 65535
    await sub.packet();
    sub.send(subscribe5(1, 'alias/#', 0x00));
    await sub.packet();
    const pub = await RawClient.connect(tb.port);
    pub.send(connect5('alias-pub'));
    await pub.packet();
    pub.send(Buffer.concat(Array.from({ length: 100 }, (_, i) => publish(`alias/${i}`, 'x', 0, 0, false, true))));
    const got = await drain(sub);
    expect(got).toHaveLength(100);
    // Property 0x23 Topic Alias in the first 64 PUBLISHes only.
    const aliased = got.map((p) => Buffer.from(p, 'hex')).map((b) => {
      const topicLen = b.readUInt16BE(2);
      const propsLen = b[4 + topicLen]!;
      return propsLen > 0 && b[5 + topicLen] === 0x23;
    });
    expect(aliased.filter(Boolean)).toHaveLength(64);
    expect(aliased.slice(0, 64).every(Boolean)).toBe(true);
    sub.end();
    pub.end();
  });
});
