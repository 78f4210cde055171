// QoS 2 stays exactly once while a session moves between two live replicas: a persistent QoS 2
// subscriber is taken over back and forth (a second connection with its client id on the other
// replica) while a publisher sends QoS 2 without pause on one of them. The old owner keeps
// delivering until it sees the takeover; the new owner has buffered the same messages since its
// claim. Counted at the client: every message the publisher got PUBCOMP for is delivered once, and
// on the wire no message comes in two PUBLISH packets but as a re-send flagged DUP. The subscriber's
// connections share one MQTT.js incoming store, as one client process with its session state would
// (it delivers a QoS 2 message at PUBREL, once per packet id). A burst of QoS 2 publishes at each
// takeover keeps the old owner delivering while the new one has already claimed.
import mqtt from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { sleep } from '../../support/wait.ts';
import { BrokerReplica, replicaFixture, startReplicas } from './broker-replicas.ts';
import { testPrefix, until } from './replicas.ts';

const { redis, replicas, clients, client } = replicaFixture();

describe('QoS 2 during a takeover between live replicas', () => {
  it('every completed QoS 2 message is delivered once, sent once (re-sends flagged DUP), across 6 takeovers under traffic', async () => {
    const rs = await startReplicas(['q2-0', 'q2-1'], { redis: redis(), keyPrefix: testPrefix('wired-q2-takeover'), takeoverTimeoutMs: 5_000, limits: { maxQueuedMessages: 100_000 } });
    replicas.push(...rs);
    const [a, b] = rs as [BrokerReplica, BrokerReplica];
    const received = new Map<number, number>();
    const onWire = new Map<number, number>(); // PUBLISH packets not flagged DUP, per message
    const store = new mqtt.Store();
    const subOpts: IClientOptions = { clientId: 'q2-sub', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 0, incomingStore: store };
    const connectSub = async (r: BrokerReplica): Promise<MqttClient> => {
      const c = mqtt.connect({ host: '127.0.0.1', port: r.port, ...subOpts });
      clients.push(c);
      c.on('message', (_t, payload) => {
        const i = Number(payload.toString());
        received.set(i, (received.get(i) ?? 0) + 1);
      });
      c.on('error', () => undefined);
      c.on('packetreceive', (p) => {
        if (p.cmd !== 'publish' || p.dup) return;
        const i = Number(p.payload.toString());
        onWire.set(i, (onWire.get(i) ?? 0) + 1);
      });
      await new Promise<void>((resolve, reject) => {
        c.once('connect', () => resolve());
        c.once('error', reject);
      });
      return c;
    };
    const first = await connectSub(a);
    await first.subscribeAsync('q2/#', { qos: 2 });
    const pub = await client(a, { clientId: 'q2-pub', protocolVersion: 5 });
    const completed = new Set<number>();
    let sent = 0;
    let stop = false;
    const traffic = (async () => {
      while (!stop) {
        // Paced so the subscriber keeps up; the queue limit is raised so none is dropped while it moves.
        const window = Array.from({ length: 8 }, () => sent++);
        await Promise.all(window.map((i) => pub.publishAsync('q2/t', String(i), { qos: 2 }).then(() => completed.add(i), () => undefined)));
        await sleep(10);
      }
    })();
    const bursts: Promise<unknown>[] = [];
    for (let round = 0; round < 6; round++) {
      await sleep(400);
      const burst = Array.from({ length: 48 }, () => sent++); // with the paced window, under the Receive Maximum (64)
      bursts.push(...burst.map((i) => pub.publishAsync('q2/t', String(i), { qos: 2 }).then(() => completed.add(i), () => undefined)));
      await connectSub(round % 2 === 0 ? b : a); // the other replica: the previous connection gets 0x8E
    }
    await Promise.all(bursts);
    await sleep(500);
    stop = true;
    await traffic;
    await until(() => [...completed].every((i) => received.has(i)), 30_000, 'every completed message').catch(() => undefined);
    await sleep(500); // a late second copy would be here by now
    const lost = [...completed].filter((i) => !received.has(i));
    const twice = [...received].filter(([, n]) => n > 1).map(([i]) => i);
    const twiceOnWire = [...onWire].filter(([, n]) => n > 1).map(([i]) => i);
    const released = rs.flatMap((r) => r.logLines()).filter((l) => l.msg === 'session taken over from another replica');
    console.log(`takeovers answered by the old owner: ${released.filter((l) => l.released === true).length} of ${released.length}`);
    console.log(`QoS 2 takeovers: sent ${sent}, completed ${completed.size}, delivered ${received.size}, lost ${lost.length}, delivered twice ${twice.length}, sent twice (not as DUP) ${twiceOnWire.length}`);
    expect(twice).toEqual([]);
    expect(twiceOnWire).toEqual([]);
    expect(lost).toEqual([]);
  });
});
