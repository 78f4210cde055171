// A replica crashes (SIGKILL) and stays dead: the live replicas notice its heartbeat stopped and one
// of them adopts each of its sessions. Wills of the clients it had connected are published once
// cluster-wide (v3.1.1 and v5, the v5 Will Delay Interval respected; none for a client that came
// back first); a persistent subscriber that stays away gets every QoS 1/2 message published after
// the crash queued for it, and all of them when it comes back to another replica. Real broker
// processes on the world's Redis, MQTT.js clients; the timings are printed and bounded.
import mqtt from 'mqtt';
import type { IClientOptions } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { sleep } from '../../support/wait.ts';
import { BrokerReplica, replicaFixture, startReplicas } from './broker-replicas.ts';
import { adminClient, testPrefix, until } from './replicas.ts';

const { redis, replicas, clients, client } = replicaFixture();

/**
 * Detection takes the liveness window (10 s) after the dead replica's last heartbeat (at most one
 * heartbeat interval, 2 s, before the kill) plus up to one interval until the next look: ≤ 14 s.
 * The bound tested leaves room for a loaded 2-core machine.
 */
const WILL_BOUND_MS = 20_000;

interface Arrival {
  topic: string;
  payload: string;
  at: number;
}

async function watchWills(r: BrokerReplica, clientId: string): Promise<Arrival[]> {
  const seen: Arrival[] = [];
  const c = await client(r, { clientId, protocolVersion: 5 });
  c.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString(), at: Date.now() }));
  await c.subscribeAsync('will/#', { qos: 1 });
  return seen;
}

/** Which replicas logged adopting (or ending) `clientId`'s session. */
function adopters(rs: BrokerReplica[], clientId: string): string[] {
  return rs.filter((r) => r.logLines().some((l) => l.clientId === clientId && (l.msg === 'session of a gone replica adopted' || l.msg === 'session of a gone replica ended'))).map((r) => r.id);
}

describe('a crashed replica\'s sessions are adopted', () => {
  it('wills of its v3.1.1 and v5 clients reach a subscriber elsewhere once (v5 after its Will Delay Interval, also one pending when it died); a client back first has none', async () => {
    const prefix = testPrefix('wired-will');
    const rs = await startReplicas(['will-0', 'will-1'], { redis: redis(), keyPrefix: prefix });
    replicas.push(...rs);
    const [survivor, doomed] = rs as [BrokerReplica, BrokerReplica];
    const wills = await watchWills(survivor, 'will-watcher');
    await client(doomed, { clientId: 'v3-dev', protocolVersion: 4, clean: true, will: { topic: 'will/v3', payload: Buffer.from('v3 gone'), qos: 1, retain: false } });
    await client(doomed, {
      clientId: 'v5-dev', protocolVersion: 5, clean: true, properties: { sessionExpiryInterval: 60 },
      will: { topic: 'will/v5', payload: Buffer.from('v5 gone'), qos: 1, retain: false, properties: { willDelayInterval: 15 } },
    });
    const backOpts: IClientOptions = {
      clientId: 'back-dev', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 },
      will: { topic: 'will/back', payload: Buffer.from('back gone'), qos: 1, retain: false, properties: { willDelayInterval: 5 } },
    };
    await client(doomed, backOpts);
    // Gone without DISCONNECT before the crash: its delayed will is pending on the doomed replica.
    const gone = await client(doomed, {
      clientId: 'gone-dev', protocolVersion: 5, clean: true, properties: { sessionExpiryInterval: 60 },
      will: { topic: 'will/gone', payload: Buffer.from('gone earlier'), qos: 1, retain: false, properties: { willDelayInterval: 14 } },
    });
    await sleep(300);
    gone.stream.destroy();
    const goneAt = Date.now();
    await sleep(500); // the wills (and the pending one's due time) are in Redis

    await doomed.kill();
    const killedAt = Date.now();
    await client(survivor, backOpts); // back before anyone noticed the crash: no will [MQTT-3.1.3-9]
    const admin = adminClient(redis());
    const lastHeartbeat = Number(await admin.zscore(`${prefix}replicas`, doomed.id));
    admin.disconnect();
    await until(() => ['will/v3', 'will/v5', 'will/gone'].every((t) => wills.some((w) => w.topic === t)), 30_000, 'the three wills');
    await sleep(3_000); // a second copy would have come by now
    const v3 = wills.filter((w) => w.topic === 'will/v3');
    const v5 = wills.filter((w) => w.topic === 'will/v5');
    const pending = wills.filter((w) => w.topic === 'will/gone');
    console.log(`wills after the kill: v3.1.1 ${v3[0]!.at - killedAt} ms, v5 (delay 15 s) ${v5[0]!.at - killedAt} ms; pending one (delay 14 s) ${pending[0]!.at - goneAt} ms after its client went`);
    expect(pending.map((w) => w.payload)).toEqual(['gone earlier']);
    expect(pending[0]!.at - goneAt).toBeGreaterThanOrEqual(13_500);
    expect(v3.map((w) => w.payload)).toEqual(['v3 gone']);
    expect(v5.map((w) => w.payload)).toEqual(['v5 gone']);
    expect(wills.filter((w) => w.topic === 'will/back')).toEqual([]);
    expect(v3[0]!.at - killedAt).toBeLessThan(WILL_BOUND_MS);
    // Due 15 s after the dead replica's last heartbeat (before the kill), not at detection.
    expect(v5[0]!.at - lastHeartbeat).toBeGreaterThanOrEqual(15_000);
    expect(v5[0]!.at - killedAt).toBeLessThan(15_000 + WILL_BOUND_MS - 10_000);
  });

  it('a persistent subscriber that stays away: 100 QoS 1 and 40 QoS 2 messages published after the crash are queued and all arrive on another replica', async () => {
    const prefix = testPrefix('wired-away');
    const rs = await startReplicas(['away-0', 'away-1', 'away-2'], { redis: redis(), keyPrefix: prefix });
    replicas.push(...rs);
    const [pubReplica, doomed] = rs as [BrokerReplica, BrokerReplica, BrokerReplica];
    const subOpts: IClientOptions = { clientId: 'away-sub', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } };
    const sub = await client(doomed, subOpts);
    await sub.subscribeAsync({ 'away/#': { qos: 1 }, 'away2/#': { qos: 2 } });
    const pub = await client(pubReplica, { clientId: 'away-pub', protocolVersion: 5 });
    await sleep(300);
    await doomed.kill();
    const killedAt = Date.now();
    // Half before anyone noticed the crash (the adopter replays them from the bus), half after.
    for (let i = 0; i < 50; i++) await pub.publishAsync('away/t', `q1:${i}`, { qos: 1 });
    // QoS 2 is replayed only from a heartbeat interval + 1 s after the dead replica's last heartbeat
    // (before the kill): it could not have sent these any more.
    await sleep(Math.max(0, killedAt + 3_500 - Date.now()));
    for (let i = 0; i < 20; i++) await pub.publishAsync('away2/t', `q2:${i}`, { qos: 2 });
    const admin = adminClient(redis());
    try {
      const base = `${prefix}s:away-sub`;
      expect(await admin.hget(base, 'owner')).toBe('away-1'); // not adopted yet
      await until(async () => ![null, 'away-1'].includes(await admin.hget(base, 'owner')), 30_000, 'the session adopted');
      const owner = (await admin.hget(base, 'owner'))!;
      for (let i = 50; i < 100; i++) await pub.publishAsync('away/t', `q1:${i}`, { qos: 1 });
      for (let i = 20; i < 40; i++) await pub.publishAsync('away2/t', `q2:${i}`, { qos: 2 });
      await until(async () => await admin.llen(`${base}:queue`) === 140, 10_000, '140 messages queued in Redis');
      expect(adopters(rs, 'away-sub')).toEqual([owner]);
      // Back, to the live replica that did NOT adopt it: a takeover from the adopter, then the load.
      const other = rs.find((r) => r.running && r.id !== owner)!;
      const received: string[] = [];
      const back = mqtt.connect({ host: '127.0.0.1', port: other.port, reconnectPeriod: 0, ...subOpts });
      clients.push(back);
      back.on('message', (_t, payload) => received.push(payload.toString()));
      await until(() => new Set(received).size === 140, 15_000, 'every queued message').catch(() => undefined);
      const unique = new Set(received);
      console.log(`away subscriber: adopted by ${owner}, back on ${other.id}, received ${received.length}, unique ${unique.size}`);
      const expected = [...Array.from({ length: 100 }, (_, i) => `q1:${i}`), ...Array.from({ length: 40 }, (_, i) => `q2:${i}`)];
      expect([...unique].sort()).toEqual(expected.sort());
      expect(received.filter((p) => p.startsWith('q2:'))).toHaveLength(40); // QoS 2: each once
    } finally {
      admin.disconnect();
    }
  });

  it('three replicas, one killed: its clients\' wills go out once, each session has one adopter', async () => {
    const rs = await startReplicas(['three-0', 'three-1', 'three-2'], { redis: redis(), keyPrefix: testPrefix('wired-three') });
    replicas.push(...rs);
    const [a, doomed, c] = rs as [BrokerReplica, BrokerReplica, BrokerReplica];
    const seenA = await watchWills(a, 'watch-a');
    const seenC = await watchWills(c, 'watch-c');
    const ids = Array.from({ length: 6 }, (_, i) => `three-dev-${i}`);
    for (const [i, clientId] of ids.entries()) {
      await client(doomed, {
        clientId, protocolVersion: i % 2 === 0 ? 4 : 5, clean: i % 2 === 0, ...(i % 2 === 1 ? { properties: { sessionExpiryInterval: 300 } } : {}),
        will: { topic: `will/${clientId}`, payload: Buffer.from('gone'), qos: 1, retain: false },
      });
    }
    await sleep(500);
    await doomed.kill();
    const killedAt = Date.now();
    await until(() => ids.every((id) => seenA.some((w) => w.topic === `will/${id}`) && seenC.some((w) => w.topic === `will/${id}`)), 30_000, 'every will on both survivors');
    const last = Math.max(...seenA.map((w) => w.at));
    await sleep(3_000);
    console.log(`three replicas: ${ids.length} wills, the last ${last - killedAt} ms after the kill`);
    for (const id of ids) {
      expect(seenA.filter((w) => w.topic === `will/${id}`)).toHaveLength(1);
      expect(seenC.filter((w) => w.topic === `will/${id}`)).toHaveLength(1);
      expect(adopters(rs, id)).toHaveLength(1);
    }
    expect(last - killedAt).toBeLessThan(WILL_BOUND_MS);
  });
});
