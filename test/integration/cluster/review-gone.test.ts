// A replica gone for good (its pod deleted after a crash) leaves nothing behind once it is
// forgotten: its heartbeat entry and its shared-group member counts go (with a new pod name per
// pod, counts of gone replicas would otherwise pile up in every group's hash). A real broker
// process on the world's Redis; the gone replica is what it left in Redis.
import { describe, expect, it } from 'vitest';
import { replicaFixture, startReplicas } from './broker-replicas.ts';
import { adminClient, testPrefix, until } from './replicas.ts';

const { redis, replicas } = replicaFixture();

describe('a replica gone for good', () => {
  it('is forgotten with its shared-group member counts', async () => {
    const prefix = testPrefix('review-gone');
    const admin = adminClient(redis());
    // What a replica that crashed 11 minutes ago, owning no session any more, left.
    await admin.zadd(`${prefix}replicas`, Date.now() - 11 * 60_000, 'gone-9');
    await admin.hset(`${prefix}shared:g/jobs/#`, 'gone-9', 3);
    const [r] = await startReplicas(['live-0'], { redis: redis(), keyPrefix: prefix });
    replicas.push(r!);
    // It judges peers once up for the liveness window and a heartbeat (12 s), then every 2 s.
    await until(async () => (await admin.zscore(`${prefix}replicas`, 'gone-9')) === null, 30_000, 'the gone replica forgotten');
    expect(await admin.hgetall(`${prefix}shared:g/jobs/#`)).toEqual({});
    admin.disconnect();
  });
});
