// The wired broker when Redis fails, and at the ends of a deployment's life: two broker processes on
// a private redis-server that the test kills (SIGKILL) mid-traffic and starts again, empty, on the
// same port. No replica crashes; connected clients keep local delivery; a CONNECT asking for a
// persistent session is refused (v5 0x88, 3.1.1 return code 3) while clean sessions are accepted;
// /readyz turns 503 after its grace; the metrics say it; everything works again without a restart.
// Also: a purge leaves 0 keys, and `backend: memory` runs as before with no Redis at all.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countKeys, purgePrefix } from '../../../broker/cluster/purge.ts';
import { freePort } from '../../support/process.ts';
import { sleep } from '../../support/wait.ts';
import { BrokerReplica, startReplicas } from './broker-replicas.ts';
import { adminClient, PrivateRedis, testPrefix, until } from './replicas.ts';

let dir: string;
let server: PrivateRedis;
const replicas: BrokerReplica[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wired-outage-'));
  server = new PrivateRedis(join(dir, 'redis'), await freePort());
  await server.start();
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
  await Promise.all(replicas.map((r) => r.close()));
  await server.kill();
  await rm(dir, { recursive: true, force: true });
});

async function client(r: BrokerReplica, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync({ host: '127.0.0.1', port: r.port, reconnectPeriod: 0, ...opts });
  clients.push(c);
  return c;
}

function collect(c: MqttClient): IPublishPacket[] {
  const all: IPublishPacket[] = [];
  c.on('message', (_t, _p, packet) => all.push(packet));
  return all;
}

/** The CONNACK code a connect attempt gets (0 = accepted). */
async function connackCode(r: BrokerReplica, opts: IClientOptions): Promise<number> {
  const c = mqtt.connect({ host: '127.0.0.1', port: r.port, reconnectPeriod: 0, connectTimeout: 5_000, ...opts });
  clients.push(c);
  return new Promise((resolve) => {
    c.once('connect', () => resolve(0));
    c.once('error', (err) => resolve((err as { code?: number }).code ?? -1));
  });
}

describe('wired replicas and Redis failures', () => {
  it('Redis killed mid-traffic: no crash, degraded (local delivery, 0x88 / 3 for persistent sessions, /readyz 503), then recovered without a restart', async () => {
    const prefix = testPrefix('wired-outage');
    const rs = await startReplicas(['out-0', 'out-1'], { redis: server.address, keyPrefix: prefix });
    replicas.push(...rs);
    const [a, b] = [rs[0]!, rs[1]!];
    expect(await a.metric('enclave_state_backend_up')).toBe(1);
    const localSub = await client(a, { clientId: 'local-sub', protocolVersion: 5 });
    const local = collect(localSub);
    await localSub.subscribeAsync('t/#', { qos: 1 });
    const remoteSub = await client(b, { clientId: 'remote-sub', protocolVersion: 5 });
    const remote = collect(remoteSub);
    await remoteSub.subscribeAsync('t/#', { qos: 1 });
    await sleep(200);
    const pub = await client(a, { clientId: 'out-pub', protocolVersion: 5 });
    let sent = 0;
    let acked = 0;
    let refused = 0;
    let stop = false;
    const traffic = (async () => {
      while (!stop) {
        const i = sent++;
        // While Redis is down a QoS 1 PUBLISH is answered 0x80 (MQTT.js rejects): the client may send it again.
        await pub.publishAsync('t/x', String(i), { qos: 1 }).then(() => acked++, () => refused++);
        await sleep(5);
      }
    })();
    await sleep(500);
    await server.kill();
    await until(async () => (await a.metric('enclave_state_backend_up')) === 0, 5_000, 'up gauge 0');
    const localBefore = local.length;
    await sleep(1_000);
    expect(local.length).toBeGreaterThan(localBefore); // local delivery continues
    expect(await connackCode(b, { clientId: 'p5', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } })).toBe(0x88);
    expect(await connackCode(b, { clientId: 'p3', protocolVersion: 4, clean: false })).toBe(3);
    expect(await connackCode(b, { clientId: 'c5', protocolVersion: 5, clean: true })).toBe(0);
    // 3.1.1 has no negative PUBACK: a QoS 1 PUBLISH Redis cannot take closes the connection (the
    // client sends it again after reconnecting) rather than leaving it unanswered forever.
    const old = await client(b, { clientId: 'p311', protocolVersion: 4, clean: true, reconnectPeriod: 0 });
    const closed = new Promise<void>((res) => old.once('close', () => res()));
    old.publish('t/311', 'x', { qos: 1 });
    await Promise.race([closed, sleep(5_000).then(() => { throw new Error('the 3.1.1 connection was not closed'); })]);
    // A QoS 0 PUBLISH has no acknowledgement to refuse: one Redis cannot take is dropped and
    // counted, retained or not, and the replica stays up (a rejected promise nobody awaited would
    // end the process).
    const dropped = async () => (await b.metric('enclave_broker_messages_dropped_total{reason="state-backend"}')) ?? 0;
    const droppedBefore = await dropped();
    const q0 = await client(b, { clientId: 'q0', protocolVersion: 5 });
    q0.publish('r/q0', 'kept?', { qos: 0, retain: true });
    q0.publish('t/q0', 'plain', { qos: 0 });
    await until(async () => (await dropped()) >= droppedBefore + 2, 5_000, 'QoS 0 publishes Redis refused counted');
    await sleep(200);
    expect(b.running).toBe(true);
    await until(async () => (await a.readyz()).status === 503, 10_000, '/readyz 503 after the grace');
    expect(await a.readyz()).toEqual({ status: 503, body: 'state backend unavailable' });
    expect(a.running && b.running).toBe(true);

    await server.start();
    await until(async () => (await a.readyz()).status === 200 && (await b.readyz()).status === 200, 20_000, 'ready again');
    expect(await b.metric('enclave_state_backend_up')).toBe(1);
    expect(await a.metric('enclave_state_backend_reconnects_total')).toBeGreaterThan(0);
    expect(await a.metric('enclave_state_backend_outages_total')).toBeGreaterThan(0);
    const remoteBefore = remote.length;
    await until(() => remote.length > remoteBefore + 10, 10_000, 'cross-replica delivery after recovery');
    stop = true;
    await traffic;
    expect(refused).toBeGreaterThan(0);
    expect(acked + refused).toBe(sent);
    // Persistent sessions are accepted again; retained works across replicas again.
    expect(await connackCode(b, { clientId: 'p5', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } })).toBe(0);
    await pub.publishAsync('r/after', 'back', { qos: 1, retain: true });
    const late = await client(b, { clientId: 'late' });
    const got = collect(late);
    await late.subscribeAsync('r/#', { qos: 1 });
    // Only what Redis holds: the QoS 0 retained message Redis refused was kept here while it was
    // down, and goes with the recovery (the other replica never had it).
    await until(() => got.length === 1, 5_000, 'retained after recovery').catch((err: unknown) => {
      throw new Error(`${(err as Error).message}: got ${JSON.stringify(got.map((p) => [p.topic, p.payload.toString()]))}`, { cause: err });
    });
    expect(a.running && b.running).toBe(true);
    console.log(`redis restart: sent ${sent}, acknowledged ${acked}, refused (0x80) ${refused}, delivered locally ${local.length}, on the other replica ${remote.length}`);
  });

  it('Redis restarts empty: what the replicas hold of their sessions is written back, an offline subscriber still gets what was queued for it', async () => {
    const prefix = testPrefix('wired-rewrite');
    const rs = await startReplicas(['rw-0', 'rw-1'], { redis: server.address, keyPrefix: prefix });
    replicas.push(...rs);
    const [a, b] = [rs[0]!, rs[1]!];
    const subOpts: IClientOptions = { clientId: 'rw-sub', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } };
    const sub = await client(a, subOpts);
    await sub.subscribeAsync('rw/#', { qos: 1 });
    await sub.endAsync(); // offline on a: what is published now is queued there and in Redis
    // Connected on b across the restart: its will and subscription come back too.
    const online = await client(b, { clientId: 'rw-online', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 }, will: { topic: 'rw-will/x', payload: Buffer.from('gone'), qos: 1, retain: false } });
    await online.subscribeAsync('other/#', { qos: 1 });
    const pub = await client(b, { clientId: 'rw-pub', protocolVersion: 5 });
    for (let i = 0; i < 30; i++) await pub.publishAsync('rw/t', String(i), { qos: 1 });
    const redis = adminClient(server.address);
    try {
      const base = `${prefix}s:rw-sub`;
      await until(async () => await redis.llen(`${base}:queue`) === 30, 5_000, '30 queued in Redis');
      await server.kill();
      await server.start(); // empty
      expect(await redis.exists(base)).toBe(0);
      await until(async () => (await a.readyz()).status === 200 && (await b.readyz()).status === 200, 20_000, 'ready again');
      await until(async () => await redis.llen(`${base}:queue`) === 30, 10_000, 'the queue written back');
      expect(await redis.hget(base, 'owner')).toBe('rw-0');
      expect(await redis.hexists(base, 'sub:rw/#')).toBe(1);
      expect(await redis.ttl(base)).toBeGreaterThan(500); // offline: its expiry is a TTL again
      // Each replica writes back its own sessions when its link is up again: rw-1 may come later.
      const onlineBase = `${prefix}s:rw-online`;
      await until(async () => await redis.hexists(onlineBase, 'will') === 1, 10_000, 'the online session written back');
      expect(await redis.hget(onlineBase, 'owner')).toBe('rw-1');
      expect(await redis.hexists(onlineBase, 'sub:other/#')).toBe(1);
    } finally {
      redis.disconnect();
    }
    // Back on the other replica: a takeover from a, the load from Redis, every queued message.
    const back = mqtt.connect({ host: '127.0.0.1', port: b.port, reconnectPeriod: 0, ...subOpts });
    clients.push(back);
    const got = collect(back);
    await until(() => new Set(got.map((p) => p.payload.toString())).size === 30, 10_000, 'the 30 queued messages').catch(() => undefined);
    const unique = new Set(got.map((p) => Number(p.payload.toString())));
    console.log(`redis restart-empty: 30 queued before, ${got.length} received after the move (${unique.size} unique)`);
    expect([...unique].sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i));
  });

  it('a purge of the deployment prefix leaves 0 keys after replicas with sessions, retained and shared groups stop', async () => {
    const prefix = testPrefix('wired-purge');
    const rs = await startReplicas(['pg-0', 'pg-1'], { redis: server.address, keyPrefix: prefix });
    replicas.push(...rs);
    const s = await client(rs[0]!, { clientId: 'pg-sub', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 } });
    await s.subscribeAsync(['a/#', '$share/g/b/#'], { qos: 1 });
    const p = await client(rs[1]!, { clientId: 'pg-pub' });
    await p.publishAsync('a/1', 'kept', { qos: 1, retain: true });
    await s.endAsync();
    await p.publishAsync('a/2', 'queued', { qos: 1 });
    await Promise.all(rs.map((r) => r.terminate()));
    const redis = adminClient(server.address);
    try {
      expect(await countKeys(redis, prefix)).toBeGreaterThan(3);
      await purgePrefix(redis, prefix);
      expect(await countKeys(redis, prefix)).toBe(0);
    } finally {
      redis.disconnect();
    }
  });

  it('backend: memory runs without any Redis, as before', async () => {
    const [m] = await startReplicas(['mem-0'], { redis: { host: '127.0.0.1', port: 1, password: 'x' }, keyPrefix: 'unused:', backend: 'memory' });
    replicas.push(m!);
    const sub = await client(m!, { clientId: 'ms', clean: false });
    const got = collect(sub);
    await sub.subscribeAsync('m/#', { qos: 1 });
    const pub = await client(m!, { clientId: 'mp' });
    for (let i = 0; i < 20; i++) await pub.publishAsync('m/t', String(i), { qos: 1 });
    await until(() => got.length === 20, 5_000, 'memory delivery');
    expect(await m!.readyz()).toEqual({ status: 200, body: 'ready' });
    expect(await m!.metric('enclave_state_backend_up')).toBeUndefined();
  });
});
