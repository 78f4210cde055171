// Shared subscriptions across replicas: each message is picked for exactly one replica (so exactly
// one member cluster-wide gets it), shares follow the member counts, a replica that stops
// heartbeating is no longer picked, and a replica starting late learns the groups from Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envelopeOf, startReplica, testPrefix, until, worldRedis } from './replicas.ts';
import type { RedisAddress, Replica } from './replicas.ts';

let redis: RedisAddress;
const open: Replica[] = [];

beforeAll(() => {
  redis = worldRedis();
});
afterAll(async () => {
  await Promise.all(open.map((r) => r.close().catch(() => undefined)));
});

async function replicas(n: number, name: string): Promise<Replica[]> {
  const prefix = testPrefix(name);
  const rs = await Promise.all(Array.from({ length: n }, (_, i) => startReplica(`broker-${i}`, redis, prefix)));
  open.push(...rs);
  return rs;
}

describe('shared subscriptions across replicas', () => {
  it('every message is delivered by exactly one replica, in proportion to its members', async () => {
    const [a, b, c] = await replicas(3, 'shared-one');
    await b!.shared.change('workers', 'jobs/+', 1);
    await c!.shared.change('workers', 'jobs/+', 1);
    await c!.shared.change('workers', 'jobs/+', 1);
    await until(() => a!.shared.membersOf('workers', 'jobs/+').get('broker-2') === 2 && a!.shared.membersOf('workers', 'jobs/+').size === 2, 5000, 'a learns membership');
    const N = 300;
    for (let i = 0; i < N; i++) {
      const e = envelopeOf(a!.bus, 'jobs/1', String(i));
      e.sharedPicks = a!.shared.pick(e.topic);
      await a!.bus.publish(e);
    }
    expect(a!.shared.pick('other/topic')).toBeUndefined();
    await until(() => b!.received.length === N && c!.received.length === N, 10_000, 'all envelopes');
    // Who delivers: the replicas look at the picks in the envelope they received.
    const byB = b!.received.filter((e) => b!.shared.delivers(e, 'workers', 'jobs/+')).length;
    const byC = c!.received.filter((e) => c!.shared.delivers(e, 'workers', 'jobs/+')).length;
    expect(byB + byC).toBe(N);
    for (let i = 0; i < N; i++) {
      const both = [b!, c!].filter((r) => r.shared.delivers(r.received[i]!, 'workers', 'jobs/+'));
      expect(both).toHaveLength(1);
    }
    expect(byB).toBe(N / 3);
    expect(byC).toBe((2 * N) / 3);
  });

  it('a replica that stopped heartbeating is not picked; a late replica loads the groups from Redis', async () => {
    const [a, b] = await replicas(2, 'shared-dead');
    await a!.shared.change('g', 'x/#', 1);
    await b!.shared.change('g', 'x/#', 1);
    await until(() => a!.shared.membersOf('g', 'x/#').size === 2, 5000, 'membership');
    b!.shared.stop(); // b "dies": no more heartbeats (its membership stays in Redis)
    await until(() => Array.from({ length: 10 }, () => a!.shared.pick('x/1')![0]!.replica).every((r) => r === 'broker-0'), 5000, 'only live replicas picked');
    const late = await startReplica('broker-9', redis, a!.link.keyPrefix);
    open.push(late);
    expect(late.shared.membersOf('g', 'x/#')).toEqual(new Map([['broker-0', 1], ['broker-1', 1]]));
    await a!.shared.change('g', 'x/#', -1);
    await until(() => late.shared.membersOf('g', 'x/#').get('broker-0') === undefined, 5000, 'leave propagates');
    expect(await a!.link.command.hexists(`${a!.link.keyPrefix}shared:g/x/#`, 'broker-0')).toBe(0);
  });
});
