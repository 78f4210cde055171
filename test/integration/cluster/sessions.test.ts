// Persistent sessions in Redis: claims with a fencing epoch, a resume on another replica that finds
// the queue, outgoing in flight at both QoS 2 stages and the incoming QoS 2 ids, queue caps with both
// drop policies, expiry as a TTL, a live owner's handover at a takeover and the reclaim and rewrite
// after an outage, and Redis memory per session and per queued message (printed).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { InflightRecord, StoredSubscriptionRecord } from '../../../broker/cluster/session-store.ts';
import { adminClient, closeAll, envelopeOf, startReplica, testPrefix, worldRedis } from './replicas.ts';
import type { RedisAddress, Replica } from './replicas.ts';

let redis: RedisAddress;
let admin: Redis;
const open: Replica[] = [];

beforeAll(() => {
  redis = worldRedis();
  admin = adminClient(redis);
});
afterAll(async () => {
  await closeAll(open);
  admin.disconnect();
});

async function pair(name: string): Promise<[Replica, Replica]> {
  const prefix = testPrefix(name);
  const rs = await Promise.all([startReplica('broker-0', redis, prefix), startReplica('broker-1', redis, prefix)]);
  open.push(...rs);
  return rs;
}

const sub: StoredSubscriptionRecord = {
  filter: 'dev/+/cmd', group: undefined, options: { qos: 2, noLocal: true, retainAsPublished: false, retainHandling: 0, identifier: 7 },
};
const shared: StoredSubscriptionRecord = {
  filter: 'jobs/#', group: 'workers', options: { qos: 1, noLocal: false, retainAsPublished: true, retainHandling: 2, identifier: undefined },
};
const limits = { maxMessages: 1000, maxBytes: 1 << 20, overflow: 'drop-oldest' as const };

describe('session store', () => {
  it('a session resumes on another replica with subscriptions, will, queue, in flight and incoming QoS 2 ids', async () => {
    const [a, b] = await pair('session-resume');
    const c1 = await a.sessions.claim('dev-1', true);
    expect(c1).toMatchObject({ present: false, previousOwner: undefined });
    await a.sessions.setSubscription('dev-1', c1.epoch, 'dev/+/cmd', sub);
    await a.sessions.setSubscription('dev-1', c1.epoch, '$share/workers/jobs/#', shared);
    await a.sessions.setSubscription('dev-1', c1.epoch, 'gone/#', sub);
    await a.sessions.setSubscription('dev-1', c1.epoch, 'gone/#', undefined);
    await a.sessions.setWill('dev-1', c1.epoch, { delaySeconds: 5, expirySeconds: 60, message: envelopeOf(a.bus, 'dev/1/status', 'offline', { retain: true }) });
    // Outgoing: id 1 waits for PUBACK, id 2 (QoS 2) for PUBREC, id 3 (QoS 2) is at PUBREL.
    await a.sessions.setInflight('dev-1', c1.epoch, 1, { stage: 'publish', qos: 1, retain: false, subscriptionIds: [7], message: envelopeOf(a.bus, 'dev/1/cmd', 'm1') });
    await a.sessions.setInflight('dev-1', c1.epoch, 2, { stage: 'publish', qos: 2, retain: false, subscriptionIds: [], message: envelopeOf(a.bus, 'dev/1/cmd', 'm2', { qos: 2 }) });
    await a.sessions.setInflight('dev-1', c1.epoch, 3, { stage: 'pubrel', qos: 2, retain: false, subscriptionIds: [], message: undefined });
    await a.sessions.setInflight('dev-1', c1.epoch, 4, { stage: 'publish', qos: 1, retain: false, subscriptionIds: [], message: envelopeOf(a.bus, 'x', 'acked') });
    await a.sessions.deleteInflight('dev-1', c1.epoch, 4);
    // Incoming QoS 2 from the client: 10 and 11 got PUBREC; 11 then got its PUBREL.
    expect(await a.sessions.setIncomingQos2('dev-1', c1.epoch, 10, true)).toBe(true);
    expect(await a.sessions.setIncomingQos2('dev-1', c1.epoch, 11, true)).toBe(true);
    expect(await a.sessions.setIncomingQos2('dev-1', c1.epoch, 11, false)).toBe(true);
    for (let i = 0; i < 3; i++) await a.sessions.enqueue('dev-1', c1.epoch, envelopeOf(a.bus, 'dev/1/cmd', `q${i}`), limits);
    expect(await a.sessions.queueToInflight('dev-1', c1.epoch, 5, { stage: 'publish', qos: 1, retain: false, subscriptionIds: [] })).toBe(true);
    await a.sessions.goOffline('dev-1', c1.epoch, 300);

    const c2 = await b.sessions.claim('dev-1', false);
    expect(c2.epoch).toBeGreaterThan(c1.epoch);
    expect(c2).toMatchObject({ present: true, previousOwner: 'broker-0' });
    const s = (await b.sessions.load('dev-1'))!;
    expect(s.owner).toBe('broker-1');
    expect(s.subscriptions.get('dev/+/cmd')).toEqual(sub);
    expect(s.subscriptions.get('$share/workers/jobs/#')).toEqual(shared);
    expect(s.subscriptions.size).toBe(2);
    expect(s.will?.message.payload.toString()).toBe('offline');
    expect(s.will).toMatchObject({ delaySeconds: 5, expirySeconds: 60 });
    expect([...s.inflight.keys()].sort()).toEqual([1, 2, 3, 5]);
    expect(s.inflight.get(1)).toMatchObject({ stage: 'publish', qos: 1, subscriptionIds: [7] });
    expect(s.inflight.get(1)?.message?.payload.toString()).toBe('m1');
    expect(s.inflight.get(3)).toMatchObject({ stage: 'pubrel', qos: 2, message: undefined });
    expect(s.inflight.get(5)?.message?.payload.toString()).toBe('q0');
    expect(s.incomingQos2).toEqual([10]);
    expect(s.queue.map((e) => e.payload.toString())).toEqual(['q1', 'q2']);
    // Back online: no TTL any more.
    for (const key of b.sessions.keys('dev-1')) expect(await admin.ttl(key)).toBeLessThan(0);
  });

  it('the old owner is fenced: every write after the new claim fails with FENCED, nothing it writes lands', async () => {
    const [a, b] = await pair('session-fence');
    const old = await a.sessions.claim('dev-2', true);
    const now = await b.sessions.claim('dev-2', false);
    const attempts = [
      a.sessions.setSubscription('dev-2', old.epoch, 'late/#', sub),
      a.sessions.enqueue('dev-2', old.epoch, envelopeOf(a.bus, 'late', 'x'), limits),
      a.sessions.setInflight('dev-2', old.epoch, 1, { stage: 'publish', qos: 1, retain: false, subscriptionIds: [], message: envelopeOf(a.bus, 'late', 'y') }),
      a.sessions.goOffline('dev-2', old.epoch, 10),
      a.sessions.delete('dev-2', old.epoch),
    ];
    for (const p of attempts) await expect(p).rejects.toMatchObject({ code: 'FENCED' });
    const s = (await b.sessions.load('dev-2'))!;
    expect(s.epoch).toBe(now.epoch);
    expect(s.subscriptions.size + s.queue.length + s.inflight.size).toBe(0);
  });

});

describe('session store limits', () => {
  it('a live owner\'s handover lands only while the new owner waits; a reclaim after an outage leaves another owner\'s session alone and a rewrite replaces all', async () => {
    const [a, b] = await pair('session-handover');
    const c1 = await a.sessions.claim('dev-h', true, 600);
    await a.sessions.enqueue('dev-h', c1.epoch, envelopeOf(a.bus, 'dev/h', 'stale'), limits);
    const c2 = await b.sessions.claim('dev-h', false, 600);
    const held = {
      connected: true, expirySeconds: 600, will: undefined, willAt: undefined, subscriptions: [['dev/+/cmd', sub]] as [string, StoredSubscriptionRecord][],
      inflight: [[3, { stage: 'pubrel' as const, qos: 2 as const, retain: false, subscriptionIds: [], message: undefined }]] as [number, InflightRecord][],
      incomingQos2: [9], queue: [envelopeOf(a.bus, 'dev/h', 'held')],
    };
    await expect(a.sessions.handOver('dev-h', c1.epoch, held, new Map(), undefined)).resolves.toBe(false); // its own epoch is not the new owner's
    expect(await a.sessions.handOver('dev-h', c2.epoch, held, new Map([['broker-0', 41]]), '1-0')).toBe(true);
    const s = (await b.sessions.load('dev-h'))!;
    expect(s.queue.map((e) => e.payload.toString())).toEqual(['held']);
    expect(s.inflight.get(3)).toMatchObject({ stage: 'pubrel' });
    expect(s.incomingQos2).toEqual([9]);
    expect(s.subscriptions.get('dev/+/cmd')).toEqual(sub);
    expect([s.sentUpTo.get('broker-0'), s.readTo, s.connected, s.expirySeconds]).toEqual([41, '1-0', true, 600]);
    // Loaded: a late handover would overwrite what the new owner writes from now on.
    expect(await a.sessions.handOver('dev-h', c2.epoch, held, new Map(), undefined)).toBe(false);

    // After an outage: a can't reclaim b's session; b reclaims (a newer epoch) and rewrites it whole.
    expect(await a.sessions.reclaim('dev-h', c1.epoch)).toBeUndefined();
    const again = (await b.sessions.reclaim('dev-h', c2.epoch))!;
    expect(again).toBeGreaterThan(c2.epoch);
    await b.sessions.rewrite('dev-h', again, { ...held, connected: false, queue: [], subscriptions: [], will: { delaySeconds: 5, expirySeconds: 0, message: envelopeOf(b.bus, 'w', 'gone') }, willAt: 1234 });
    const r = (await b.sessions.load('dev-h'))!;
    expect([r.epoch, r.owner, r.connected, r.queue.length, r.subscriptions.size, r.willAt, r.sentUpTo.size]).toEqual([again, 'broker-1', false, 0, 0, 1234, 0]);
    expect(r.will?.message.payload.toString()).toBe('gone');
    await expect(a.sessions.setWill('dev-h', c1.epoch, undefined)).rejects.toMatchObject({ code: 'FENCED' });
  });

  it('clean start deletes everything; an offline session expires by TTL', async () => {
    const [a] = await pair('session-clean');
    const c = await a.sessions.claim('dev-3', true);
    await a.sessions.setSubscription('dev-3', c.epoch, 'a', sub);
    await a.sessions.enqueue('dev-3', c.epoch, envelopeOf(a.bus, 'a', 'x'), limits);
    const again = await a.sessions.claim('dev-3', true);
    expect(again.present).toBe(false);
    expect((await a.sessions.load('dev-3'))!.subscriptions.size).toBe(0);
    await a.sessions.enqueue('dev-3', again.epoch, envelopeOf(a.bus, 'a', 'x'), limits);
    await a.sessions.goOffline('dev-3', again.epoch, 1);
    await new Promise((r) => setTimeout(r, 2100));
    expect(await a.sessions.load('dev-3')).toBeUndefined();
    expect(await admin.exists(...a.sessions.keys('dev-3'))).toBe(0);
  });

  it('queue caps: drop-oldest keeps the newest, drop-newest refuses, bytes bounded', async () => {
    const [a] = await pair('session-caps');
    const c = await a.sessions.claim('dev-4', true);
    const dropped: number[] = [];
    for (let i = 0; i < 5; i++) dropped.push((await a.sessions.enqueue('dev-4', c.epoch, envelopeOf(a.bus, 't', `m${i}`), { ...limits, maxMessages: 3 })).dropped);
    expect(dropped).toEqual([0, 0, 0, 1, 1]);
    expect((await a.sessions.load('dev-4'))!.queue.map((e) => e.payload.toString())).toEqual(['m2', 'm3', 'm4']);
    const d = await a.sessions.claim('dev-5', true);
    const stored: boolean[] = [];
    for (let i = 0; i < 5; i++) stored.push((await a.sessions.enqueue('dev-5', d.epoch, envelopeOf(a.bus, 't', `m${i}`), { ...limits, maxMessages: 3, overflow: 'drop-newest' })).stored);
    expect(stored).toEqual([true, true, true, false, false]);
    const e = await a.sessions.claim('dev-6', true);
    for (let i = 0; i < 10; i++) await a.sessions.enqueue('dev-6', e.epoch, envelopeOf(a.bus, 't', Buffer.alloc(100)), { ...limits, maxBytes: 450 });
    const s = (await a.sessions.load('dev-6'))!;
    expect(s.queuedBytes).toBeLessThanOrEqual(450);
    expect(s.queue.length).toBe(3);
  });

  it('measures Redis memory per persistent session and per queued message', async () => {
    const [a] = await pair('session-memory');
    const c = await a.sessions.claim('device-000001', true);
    await a.sessions.setSubscription('device-000001', c.epoch, 'devices/000001/cmd/#', sub);
    await a.sessions.goOffline('device-000001', c.epoch, 3600);
    const session = await a.sessions.memoryUsage('device-000001');
    const n = 100;
    for (let i = 0; i < n; i++) await a.sessions.enqueue('device-000001', c.epoch, envelopeOf(a.bus, 'devices/000001/cmd/set', Buffer.alloc(64)), limits);
    const perMessage = (await a.sessions.memoryUsage('device-000001') - session) / n;
    process.stdout.write(`redis memory: ${session} B per persistent session (1 subscription), ${perMessage.toFixed(0)} B per queued 64-byte message\n`);
    expect(session).toBeGreaterThan(0);
    expect(perMessage).toBeLessThan(400);
  });
});
