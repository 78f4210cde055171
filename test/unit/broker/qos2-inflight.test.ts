// Incoming QoS 2 in flight: MQTT 3.1.1 has no Receive Maximum, so a client may keep any number of
// QoS 2 PUBLISHes unreleased (bounded only by the 16-bit packet id space) and must never be
// disconnected for it; a v5 client that exceeds the Receive Maximum it was told gets DISCONNECT 0x93.
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, connect311, connect5, publish, startTestBroker } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker();
});
afterAll(async () => {
  await tb.stop();
});

/** Publishes `count` QoS 2 messages keeping `window` of them in flight at any time. */
async function publishWindowed(c: MqttClient, topic: string, count: number, window: number): Promise<void> {
  let next = 0;
  const one = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await c.publishAsync(topic, String(i), { qos: 2 });
    }
  };
  await Promise.all(Array.from({ length: window }, one));
}

describe('QoS 2 in flight from the client', () => {
  it('3.1.1 (MQTT.js): 10 publishers with 100 QoS 2 in flight each stay connected, every message arrives exactly once', async () => {
    const pairs = 10;
    const perPublisher = 500;
    const clients: MqttClient[] = [];
    const closes: string[] = [];
    try {
      const received: Map<string, number>[] = [];
      const done: Promise<void>[] = [];
      for (let p = 0; p < pairs; p++) {
        const sub = await mqtt.connectAsync({ host: '127.0.0.1', port: tb.port, protocolVersion: 4, clientId: `q2-sub-${p}`, reconnectPeriod: 0 });
        clients.push(sub);
        await sub.subscribeAsync(`q2/${p}`, { qos: 2 });
        const seen = new Map<string, number>();
        received.push(seen);
        done.push(new Promise((resolve) => {
          sub.on('message', (_t, payload) => {
            const k = String(payload);
            seen.set(k, (seen.get(k) ?? 0) + 1);
            if (seen.size === perPublisher) resolve();
          });
        }));
      }
      const publishers: MqttClient[] = [];
      for (let p = 0; p < pairs; p++) {
        const pub = await mqtt.connectAsync({ host: '127.0.0.1', port: tb.port, protocolVersion: 4, clientId: `q2-pub-${p}`, reconnectPeriod: 0 });
        pub.on('close', () => closes.push(`q2-pub-${p}`));
        clients.push(pub);
        publishers.push(pub);
      }
      const sent = Promise.all(publishers.map((pub, p) => publishWindowed(pub, `q2/${p}`, perPublisher, 100)));
      const outcome = await Promise.race([
        Promise.all([sent, ...done]).then(() => 'all delivered'),
        new Promise<string>((r) => setTimeout(() => r(`timed out; closed: ${closes.join(',')}`), 15_000)),
      ]);
      expect(outcome).toBe('all delivered');
      expect(closes).toEqual([]);
      for (const seen of received) {
        expect(seen.size).toBe(perPublisher);
        expect([...seen.values()].every((n) => n === 1)).toBe(true); // exactly once
      }
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true)));
    }
  });

  it('3.1.1 (raw): 1,000 QoS 2 PUBLISHes never released are all answered PUBREC; the connection stays open', async () => {
    const c = await RawClient.connect(tb.port);
    c.send(connect311('q2-raw-311'));
    expect(await c.packetHex()).toBe('20020000');
    const burst = Buffer.concat(Array.from({ length: 1000 }, (_, i) => publish('q2raw/t', 'x', 2, i + 1)));
    c.send(burst);
    for (let i = 0; i < 1000; i++) {
      const id = (i + 1).toString(16).padStart(4, '0');
      expect(await c.packetHex()).toBe(`5002${id}`);
    }
    // Released now: every id completes.
    c.send(Buffer.concat(Array.from({ length: 1000 }, (_, i) => Buffer.from([0x62, 0x02, (i + 1) >> 8, (i + 1) & 0xff]))));
    for (let i = 0; i < 1000; i++) expect((await c.packet())?.[0]).toBe(0x70);
    expect(c.closed).toBe(false);
    c.end();
  });

  it('v5: one QoS 2 PUBLISH beyond the announced Receive Maximum gets DISCONNECT 0x93', async () => {
    const c = await RawClient.connect(tb.port);
    c.send(connect5('q2-raw-5'));
    const connack = await c.packet();
    expect(connack?.[0]).toBe(0x20);
    // Receive Maximum (0x21) announced in CONNACK: maxInflight, 64 by default.
    expect(connack!.includes(Buffer.from([0x21, 0x00, 0x40]))).toBe(true);
    c.send(Buffer.concat(Array.from({ length: 65 }, (_, i) => publish('q2raw5/t', 'x', 2, i + 1, false, true))));
    const packets = await c.untilClosed();
    expect(packets.slice(0, 64).every((p) => p.startsWith('5002'))).toBe(true);
    expect(packets).toHaveLength(65);
    expect(packets.slice(64)).toEqual(['e0029300']); // reason 0x93, no properties
  });
});
