// The wired broker with replicas: two and three real broker processes with `state.backend: redis`
// on the world's Redis, driven by MQTT.js. Cross-replica delivery at QoS 0/1/2 with counts and
// per-publisher order, no-local across replicas, v5 properties, retained set/clear across
// replicas, shared subscriptions (each message exactly once cluster-wide), takeover with 0x8E,
// resume on another replica with queued and in-flight messages, graceful stop, readiness, $SYS.
import mqtt from 'mqtt';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, connect311, publish, subscribe } from '../../unit/broker/helpers.ts';
import { sleep } from '../../support/wait.ts';
import { BrokerReplica, replicaFixture, startReplicas } from './broker-replicas.ts';
import { adminClient, testPrefix, until } from './replicas.ts';

const { redis, replicas, clients, client } = replicaFixture();
let admin: Redis;

beforeAll(() => {
  admin = adminClient(redis());
});
afterAll(() => {
  admin.disconnect();
});

async function cluster(name: string, n: number, extra: { limits?: Record<string, unknown> } = {}): Promise<{ rs: BrokerReplica[]; prefix: string }> {
  const prefix = testPrefix(name);
  const rs = await startReplicas(Array.from({ length: n }, (_, i) => `${name}-${i}`), { redis: redis(), keyPrefix: prefix, ...extra });
  replicas.push(...rs);
  return { rs, prefix };
}

/** The payload of a v3.1.1 PUBLISH with a packet id. */
function payloadOf(p: Buffer): string {
  let i = 1;
  while ((p[i]! & 0x80) !== 0) i++;
  const topicLength = p.readUInt16BE(i + 1);
  return p.subarray(i + 3 + topicLength + 2).toString();
}

function collect(c: MqttClient): IPublishPacket[] {
  const all: IPublishPacket[] = [];
  c.on('message', (_t, _p, packet) => all.push(packet));
  return all;
}

describe('wired replicas', () => {
  it('QoS 0/1/2 published on one replica reach subscribers on the others, counted, in publisher order', async () => {
    const { rs } = await cluster('route', 3);
    const subs = await Promise.all([rs[1]!, rs[2]!].map((r) => client(r, { clientId: `sub-${r.id}`, protocolVersion: 5 })));
    const inboxes = subs.map(collect);
    for (const s of subs) await s.subscribeAsync('load/#', { qos: 2 });
    await sleep(200);
    const pub = await client(rs[0]!, { clientId: 'pub', protocolVersion: 5 });
    const n = 300;
    for (const qos of [0, 1, 2] as const) {
      // In windows of 10: the client must stay under the broker's Receive Maximum.
      for (let i = 0; i < n; i += 10) await Promise.all(Array.from({ length: 10 }, (_, j) => pub.publishAsync(`load/q${qos}`, String(i + j), { qos })));
    }
    await pub.publishAsync('load/props', 'p', { qos: 1, properties: { contentType: 'text/plain', userProperties: { k: 'v' }, correlationData: Buffer.from('c') } });
    for (const inbox of inboxes) {
      await until(() => inbox.length >= 3 * n + 1 || false, 15_000, 'deliveries');
      await sleep(200);
      for (const qos of [0, 1, 2]) {
        const got = inbox.filter((p) => p.topic === `load/q${qos}`).map((p) => Number(p.payload.toString()));
        // QoS 0 may be lost under load, never reordered; QoS 1/2 all arrive, once, in order.
        if (qos > 0) expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
        else expect(got).toEqual([...got].sort((a, b) => a - b));
      }
      const props = inbox.find((p) => p.topic === 'load/props')!;
      expect(props.properties).toMatchObject({ contentType: 'text/plain', userProperties: { k: 'v' } });
      expect(Buffer.from(props.properties!.correlationData!).toString()).toBe('c');
    }
  });

  it('no-local holds across replicas; retained set and clear reach a new subscriber on another replica; $SYS says which replica', async () => {
    const { rs } = await cluster('retain', 2);
    const [a, b] = [rs[0]!, rs[1]!];
    const pub = await client(a, { clientId: 'nl', protocolVersion: 5 });
    const echo = collect(pub);
    await pub.subscribeAsync('nl/t', { qos: 1, nl: true });
    const other = await client(b, { clientId: 'nl-other', protocolVersion: 5 });
    const seen = collect(other);
    await other.subscribeAsync('nl/t', { qos: 1 });
    await sleep(200);
    await pub.publishAsync('nl/t', 'x', { qos: 1 });
    await until(() => seen.length === 1, 5_000, 'delivery on b');
    await sleep(200);
    expect(echo).toHaveLength(0);

    await pub.publishAsync('ret/a', 'kept', { qos: 1, retain: true });
    await pub.publishAsync('ret/b', 'soon gone', { qos: 1, retain: true });
    await pub.publishAsync('ret/b', '', { qos: 1, retain: true });
    await sleep(300);
    const late = await client(b, { clientId: 'late', protocolVersion: 5 });
    const got = collect(late);
    await late.subscribeAsync('ret/#', { qos: 1 });
    await until(() => got.length >= 1, 5_000, 'retained on b');
    await sleep(200);
    expect(got.map((p) => [p.topic, p.payload.toString(), p.retain])).toEqual([['ret/a', 'kept', true]]);

    const sys = await client(b, { clientId: 'sys' });
    const sysGot = collect(sys);
    await sys.subscribeAsync('$SYS/broker/replica', { qos: 0 });
    await until(() => sysGot.length === 1, 5_000, '$SYS/broker/replica');
    expect(sysGot[0]!.payload.toString()).toBe(b.id);
  });

  it('a shared subscription with members on three replicas gets each message exactly once', async () => {
    const { rs } = await cluster('shared', 3);
    const members = await Promise.all(rs.map((r, i) => client(r, { clientId: `m${i}`, protocolVersion: 5 })));
    const inboxes = members.map(collect);
    for (const m of members) await m.subscribeAsync('$share/g/jobs/+', { qos: 1 });
    await sleep(500);
    const pub = await client(rs[0]!, { clientId: 'jobs-pub', protocolVersion: 5 });
    const n = 600;
    await Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync(`jobs/${i % 7}`, String(i), { qos: 1 })));
    await until(() => inboxes.reduce((s, x) => s + x.length, 0) >= n, 15_000, 'shared deliveries');
    await sleep(500);
    const all = inboxes.flatMap((x) => x.map((p) => Number(p.payload.toString()))).sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: n }, (_, i) => i));
    // Every replica's member got a share (weighted round-robin by members: one each).
    for (const x of inboxes) expect(x.length).toBeGreaterThan(n / 6);
  });

  it('a second connection with the same client id on another replica takes the session over: the old one gets 0x8E', async () => {
    const { rs } = await cluster('takeover', 2);
    const first = await client(rs[0]!, { clientId: 'dup', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } });
    const disconnect = new Promise<number>((resolve) => first.on('disconnect', (p) => resolve(p.reasonCode ?? 0)));
    await first.subscribeAsync('to/dup', { qos: 1 });
    const second = await client(rs[1]!, { clientId: 'dup', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } });
    expect(await disconnect).toBe(0x8e);
    const got = collect(second);
    const pub = await client(rs[0]!, { clientId: 'tk-pub' });
    await pub.publishAsync('to/dup', 'after', { qos: 1 });
    await until(() => got.length === 1, 5_000, 'delivery to the new owner');
  });

  it('a persistent session resumes on another replica with its subscriptions and queued messages; clean start deletes it', async () => {
    const { rs, prefix } = await cluster('resume', 2);
    const opts = { clientId: 'roamer', protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 300 } };
    const sub = await client(rs[0]!, opts);
    await sub.subscribeAsync('q/+', { qos: 1 });
    await sub.endAsync();
    const pub = await client(rs[1]!, { clientId: 'q-pub' });
    for (let i = 0; i < 50; i++) await pub.publishAsync(`q/${i % 3}`, String(i), { qos: 1 });
    await sleep(300);
    expect(await admin.llen(`${prefix}s:roamer:queue`)).toBe(50);
    const back = mqtt.connect({ host: '127.0.0.1', port: rs[1]!.port, reconnectPeriod: 0, ...opts });
    clients.push(back);
    const got = collect(back);
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve) => back.once('connect', resolve));
    expect(connack.sessionPresent).toBe(true);
    await until(() => got.length === 50, 10_000, 'queued messages on the other replica');
    expect(got.map((p) => Number(p.payload.toString()))).toEqual(Array.from({ length: 50 }, (_, i) => i));
    await pub.publishAsync('q/live', 'live', { qos: 1 });
    await until(() => got.length === 51, 5_000, 'live delivery after resume');
    await back.endAsync();
    const clean = await client(rs[0]!, { clientId: 'roamer', protocolVersion: 5, clean: true });
    await clean.endAsync();
    await sleep(300);
    expect(await admin.exists(`${prefix}s:roamer`, `${prefix}s:roamer:queue`, `${prefix}s:roamer:inflight`)).toBe(0);
  });

  it('in flight and incoming QoS 2 ids move with the session: resent with DUP, a re-sent QoS 2 PUBLISH is not delivered twice', async () => {
    const { rs } = await cluster('inflight', 2);
    // A raw v3.1.1 persistent client that never acknowledges: its QoS 1 messages stay in flight.
    const raw = await RawClient.connect(rs[0]!.port);
    raw.send(connect311('raw-sub', 0x00));
    expect((await raw.packet())![0]).toBe(0x20);
    raw.send(subscribe(1, 'f/#', 1));
    expect((await raw.packet())![0]).toBe(0x90);
    // It publishes QoS 2 (id 77) to a topic it subscribes to, gets PUBREC, never sends PUBREL.
    raw.send(publish('f/qos2', 'once', 2, 77));
    const pub = await client(rs[1]!, { clientId: 'f-pub' });
    await pub.publishAsync('f/a', 'one', { qos: 1 });
    await pub.publishAsync('f/b', 'two', { qos: 1 });
    const first: Buffer[] = [];
    for (let i = 0; i < 4; i++) first.push((await raw.packet())!);
    expect(first.map((p) => p[0]).sort()).toEqual([0x32, 0x32, 0x32, 0x50]);
    raw.end();
    await sleep(300);
    // Resume on the other replica.
    const back = await RawClient.connect(rs[1]!.port);
    back.send(connect311('raw-sub', 0x00));
    const connack = (await back.packet())!;
    expect([connack[0], connack[2], connack[3]]).toEqual([0x20, 1, 0]); // session present
    const resent: Buffer[] = [];
    for (let i = 0; i < 3; i++) resent.push((await back.packet())!);
    expect(resent.map((p) => p[0])).toEqual([0x3a, 0x3a, 0x3a]); // PUBLISH QoS 1 with DUP
    expect(resent.map(payloadOf).sort()).toEqual(['once', 'one', 'two']);
    // The client re-sends its QoS 2 PUBLISH 77 (DUP): answered with PUBREC, not routed again.
    const dup = publish('f/qos2', 'once', 2, 77);
    dup[0] = 0x3c;
    back.send(dup);
    expect((await back.packet())![0]).toBe(0x50);
    const more = await Promise.race([back.packet(), sleep(500).then(() => undefined)]);
    expect(more).toBeUndefined();
    back.end();
  });
});
