// A replica process crashes and comes back under the same replica id before anyone sees it silent
// (a container restarted in its pod: the pod name, its replica id, stays). What the previous
// process held must not linger in Redis: its clients' sessions are adopted at start (a will goes out
// once, the session's keys go or expire), and its shared-group member counts go (picks would send
// those groups' messages to a replica with no member). Real broker processes on the world's Redis.
import { describe, expect, it } from 'vitest';
import { sleep } from '../../support/wait.ts';
import { replicaFixture, startReplicas } from './broker-replicas.ts';
import type { BrokerReplica } from './broker-replicas.ts';
import { adminClient, testPrefix, until } from './replicas.ts';

const { redis, replicas, client } = replicaFixture();

describe('a replica restarted under the same id after a crash', () => {
  it('adopts what its previous process owned: the will of a client that does not come back goes out once, its keys go', async () => {
    const prefix = testPrefix('review-restart');
    const rs = await startReplicas(['same-0', 'same-1'], { redis: redis(), keyPrefix: prefix });
    replicas.push(...rs);
    const [phoenix, other] = rs as [BrokerReplica, BrokerReplica];
    const wills: string[] = [];
    const watcher = await client(other, { clientId: 'watcher', protocolVersion: 5 });
    watcher.on('message', (_t, payload) => wills.push(payload.toString()));
    await watcher.subscribeAsync('will/#', { qos: 1 });
    await client(phoenix, { clientId: 'lost-dev', protocolVersion: 4, clean: true, will: { topic: 'will/lost', payload: Buffer.from('lost'), qos: 1, retain: false } });
    await sleep(500);
    await phoenix.kill();
    await phoenix.start(); // same id, back within the liveness window: nobody else adopts
    await until(() => wills.length > 0, 15_000, 'the will of the crashed process\'s client');
    await sleep(3_000); // a second copy would have come by now
    expect(wills).toEqual(['lost']);
    const admin = adminClient(redis());
    expect(await admin.keys(`${prefix}s:lost-dev*`)).toEqual([]);
    expect(await admin.smembers(`${prefix}owned:same-0`)).toEqual([]);
    admin.disconnect();
  });

  it('its previous process\'s shared-group members go: every message of the group reaches the member that is left', async () => {
    const prefix = testPrefix('review-restart-shared');
    const rs = await startReplicas(['group-0', 'group-1'], { redis: redis(), keyPrefix: prefix });
    replicas.push(...rs);
    const [phoenix, other] = rs as [BrokerReplica, BrokerReplica];
    const gone = await client(phoenix, { clientId: 'worker-gone', protocolVersion: 5 });
    await gone.subscribeAsync('$share/g/jobs/#', { qos: 1 });
    const received: string[] = [];
    const worker = await client(other, { clientId: 'worker-left', protocolVersion: 5 });
    worker.on('message', (_t, payload) => received.push(payload.toString()));
    await worker.subscribeAsync('$share/g/jobs/#', { qos: 1 });
    await sleep(500);
    await phoenix.kill();
    await phoenix.start();
    const pub = await client(other, { clientId: 'jobs-pub', protocolVersion: 5 });
    for (let i = 0; i < 20; i++) await pub.publishAsync('jobs/x', `job ${i}`, { qos: 1 });
    await until(() => received.length >= 20, 10_000, 'every job at the member left').catch(() => undefined);
    expect(received.length).toBe(20);
  });
});
