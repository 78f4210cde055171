// Purge: after routing, retained messages, sessions (online, offline, with queue and in flight) and
// shared groups of one deployment, purgePrefix() leaves zero keys under its prefix (SCAN says 0),
// and another deployment's keys on the same Redis are untouched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { countKeys, purgePrefix } from '../../../broker/cluster/purge.ts';
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

async function populate(r: Replica, clients: number): Promise<void> {
  await r.bus.publish(envelopeOf(r.bus, 'x', 'routed'));
  await r.retained.publish(envelopeOf(r.bus, 'status/[1]', 'retained*', { retain: true }));
  await r.shared.change('g', 'jobs/#', 1);
  for (let i = 0; i < clients; i++) {
    const id = `dev-${i}*?`; // glob characters in client ids must not widen or break the purge
    const c = await r.sessions.claim(id, true);
    await r.sessions.setSubscription(id, c.epoch, 'a/#', { filter: 'a/#', group: undefined, options: { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, identifier: undefined } });
    await r.sessions.enqueue(id, c.epoch, envelopeOf(r.bus, 'a/b', 'q'), { maxMessages: 10, maxBytes: 10_000, overflow: 'drop-oldest' });
    await r.sessions.setInflight(id, c.epoch, 1, { stage: 'publish', qos: 1, retain: false, subscriptionIds: [], message: envelopeOf(r.bus, 'a/b', 'f') });
    await r.sessions.setIncomingQos2(id, c.epoch, 9, true);
    if (i % 2 === 0) await r.sessions.goOffline(id, c.epoch, 3600);
  }
}

describe('purge', () => {
  it('leaves zero keys under the deployment prefix and touches no other deployment', async () => {
    const mine = testPrefix('purge-mine');
    const other = testPrefix('purge-other');
    const [a, b, o] = await Promise.all([startReplica('broker-0', redis, mine), startReplica('broker-1', redis, mine), startReplica('broker-0', redis, other)]);
    open.push(a, b, o);
    await populate(a, 20);
    await populate(b, 5);
    await populate(o, 3);
    const before = await countKeys(admin, mine);
    const otherBefore = await countKeys(admin, other);
    expect(before).toBeGreaterThan(80);
    // The replicas are stopped first, as the operator does (the namespace is going away).
    await a.close();
    await b.close();
    expect(await purgePrefix(admin, mine)).toBe(before);
    expect(await countKeys(admin, mine)).toBe(0);
    expect(await countKeys(admin, other)).toBe(otherBefore);
    await expect(purgePrefix(admin, '')).rejects.toThrow(RangeError);
  });
});
