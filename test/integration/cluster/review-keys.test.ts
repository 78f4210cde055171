// Every key of a session goes when it ends or expires (docs/ha.md "Keys"): a key written while the
// session is offline (a message queued for it, here or by an adopter) carries the session's TTL,
// and a session that expired on its owner leaves no member in the owner's `owned:` set. Real Redis,
// the session store's own scripts; the assertions read Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import mqtt from 'mqtt';
import { sleep } from '../../support/wait.ts';
import { startReplicas } from './broker-replicas.ts';
import type { BrokerReplica } from './broker-replicas.ts';
import { adminClient, closeAll, envelopeOf, startReplica, testPrefix, worldRedis } from './replicas.ts';
import type { RedisAddress, Replica } from './replicas.ts';

let redis: RedisAddress;
let admin: Redis;
const open: Replica[] = [];
const brokers: BrokerReplica[] = [];

beforeAll(() => {
  redis = worldRedis();
  admin = adminClient(redis);
});
afterAll(async () => {
  await closeAll(open);
  await Promise.all(brokers.map((b) => b.close()));
  admin.disconnect();
});

const limits = { maxMessages: 100, maxBytes: 1 << 20, overflow: 'drop-oldest' as const };

describe('session keys expire with their session', () => {
  it('a message queued for an offline session (and one adopted) gets the session\'s TTL: nothing is left once it expires', async () => {
    const prefix = testPrefix('review-ttl');
    const a = await startReplica('broker-0', redis, prefix);
    open.push(a);
    const { epoch } = await a.sessions.claim('dev-1', true, 2);
    await a.sessions.goOffline('dev-1', epoch, 2);
    // Nothing queued when it went offline: the queue key is created now, while it is offline.
    await a.sessions.enqueue('dev-1', epoch, envelopeOf(a.bus, 'dev/1', 'q1'), limits);
    const [base, , , queue] = a.sessions.keys('dev-1');
    expect(await admin.pttl(queue)).toBeGreaterThan(0);
    expect(await admin.pttl(queue)).toBeLessThanOrEqual(await admin.pttl(base) + 50);
    // Whatever the offline session gets written carries the TTL too (in flight, incoming QoS 2 ids).
    await a.sessions.setIncomingQos2('dev-1', epoch, 9, true);
    await a.sessions.setInflight('dev-1', epoch, 3, { stage: 'pubrel', qos: 2, retain: false, subscriptionIds: [], message: undefined });
    for (const key of a.sessions.keys('dev-1')) expect(await admin.pttl(key)).toBeGreaterThan(0);
    await sleep(2_600);
    expect(await admin.keys(`${prefix}s:*`)).toEqual([]);
  });

  it('a session ended on its owner after Redis expired it leaves no member in the owner\'s owned set', async () => {
    const prefix = testPrefix('review-owned');
    const a = await startReplica('broker-0', redis, prefix);
    open.push(a);
    const { epoch } = await a.sessions.claim('dev-2', false, 1);
    await a.sessions.goOffline('dev-2', epoch, 1);
    await sleep(1_500); // Redis expired it before the owner's expiry timer ended it
    expect(await admin.exists(a.sessions.keys('dev-2')[0])).toBe(0);
    await a.sessions.expired('dev-2', epoch);
    expect(await admin.smembers(a.sessions.ownedKey('broker-0'))).toEqual([]);
  });

  it('a broker replica whose client\'s session expired leaves nothing of it in Redis (keys and owned-set member)', async () => {
    const prefix = testPrefix('review-expiry');
    const [b] = await startReplicas(['expiry-0'], { redis, keyPrefix: prefix });
    brokers.push(b!);
    const c = await mqtt.connectAsync({ host: '127.0.0.1', port: b!.port, clientId: 'short-lived', protocolVersion: 5, clean: true, reconnectPeriod: 0, properties: { sessionExpiryInterval: 2 } });
    await c.subscribeAsync('short/#', { qos: 1 });
    await c.endAsync();
    expect(await admin.smembers(`${prefix}owned:expiry-0`)).toEqual(['short-lived']);
    await sleep(3_500);
    expect(await admin.keys(`${prefix}s:*`)).toEqual([]);
    expect(await admin.smembers(`${prefix}owned:expiry-0`)).toEqual([]);
  });
});
