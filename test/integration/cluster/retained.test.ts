// Retained messages in Redis: set, replace, delete, the byte budget, expiry, load-all, and the
// property that makes replicas agree: concurrent writes to one topic from two replicas leave every
// replica's view equal to what Redis holds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll, envelopeOf, startReplica, testPrefix, until, worldRedis } from './replicas.ts';
import type { RedisAddress, Replica } from './replicas.ts';

let redis: RedisAddress;
const open: Replica[] = [];

beforeAll(() => {
  redis = worldRedis();
});
afterAll(async () => {
  await closeAll(open);
});

async function pair(name: string, maxBytes?: number): Promise<[Replica, Replica]> {
  const prefix = testPrefix(name);
  const rs = await Promise.all([startReplica('broker-0', redis, prefix, maxBytes), startReplica('broker-1', redis, prefix, maxBytes)]);
  open.push(...rs);
  return rs;
}

const retain = { retain: true };
const payloads = async (r: Replica): Promise<Record<string, string>> =>
  Object.fromEntries((await r.retained.loadAll()).map((e) => [e.topic, e.payload.toString()]));

describe('retained store', () => {
  it('set, replace and delete reach Redis and every replica; load-all returns what is live', async () => {
    const [a, b] = await pair('retained-basic');
    expect(await a.retained.publish(envelopeOf(a.bus, 'home/t1', 'one', retain))).toBe(true);
    expect(await b.retained.publish(envelopeOf(b.bus, 'home/t2', 'two', { ...retain, properties: { contentType: 'x' } }))).toBe(true);
    expect(await a.retained.publish(envelopeOf(a.bus, 'home/t1', 'one-b', retain))).toBe(true);
    expect(await a.retained.publish(envelopeOf(a.bus, 'home/t3', 'gone', retain))).toBe(true);
    expect(await b.retained.publish(envelopeOf(b.bus, 'home/t3', '', retain))).toBe(true);
    await a.retained.publish(envelopeOf(a.bus, 'home/old', 'expired', { ...retain, expiresAt: Date.now() - 1 }));
    expect(await payloads(a)).toEqual({ 'home/t1': 'one-b', 'home/t2': 'two' });
    expect((await b.retained.loadAll()).find((e) => e.topic === 'home/t2')?.properties).toEqual({ contentType: 'x' });
    // The expired one was removed from Redis by the load, not just skipped.
    expect(await a.link.command.hexists(a.retained.hashKey, 'home/old')).toBe(0);
    await until(() => a.retainedView.get('home/t3') === '' && b.retainedView.get('home/t1') === 'one-b', 5000, 'views');
    expect(b.received.filter((e) => e.retain).map((e) => e.topic)).toContain('home/t1');
  });

  it('two replicas writing one topic concurrently end with the same value everywhere: Redis\' order', async () => {
    const [a, b] = await pair('retained-race');
    const writes: Promise<boolean>[] = [];
    for (let i = 0; i < 200; i++) {
      writes.push(a.retained.publish(envelopeOf(a.bus, 'race', `a${i}`, retain)));
      writes.push(b.retained.publish(envelopeOf(b.bus, 'race', `b${i}`, retain)));
    }
    await Promise.all(writes);
    const stored = (await payloads(a)).race!;
    await until(() => a.retainedView.get('race') === stored && b.retainedView.get('race') === stored, 5000, 'converged views');
  });

  it('over the byte budget: not kept, the previous value removed too, replicas told (k=0)', async () => {
    const [a, b] = await pair('retained-budget', 400);
    expect(await a.retained.publish(envelopeOf(a.bus, 'big', 'x'.repeat(100), retain))).toBe(true);
    expect(await a.retained.publish(envelopeOf(a.bus, 'big', 'y'.repeat(1000), retain))).toBe(false);
    expect(await payloads(a)).toEqual({});
    expect(await a.retained.bytes()).toBe(0);
    await until(() => b.retainedView.get('big') === '', 5000, 'b dropped its copy');
    // The message itself was still routed live.
    await until(() => b.received.some((e) => e.topic === 'big' && e.payload.length === 1000), 5000, 'live delivery');
  });
});
