// A replica stops gracefully (SIGTERM, a rollout) while v5 delayed wills are pending on it: one of
// a client that went away before the stop, one of a client whose connection the stop itself closed.
// The stopping replica releases their sessions with the wills' due times in Redis; one of the two
// live replicas adopts each and publishes each will once, at its due time (not before); a client that comes back
// before its due time has none. Real broker processes on the world's Redis, MQTT.js clients.
import type { IClientOptions } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { sleep } from '../../support/wait.ts';
import { replicaFixture, startReplicas } from './broker-replicas.ts';
import type { BrokerReplica } from './broker-replicas.ts';
import { adminClient, testPrefix, until } from './replicas.ts';

const { redis, replicas, client } = replicaFixture();

/** A live replica looks at released sessions every heartbeat interval (2 s); room for a loaded machine. */
const LATE_BOUND_MS = 5_000;

function withWill(clientId: string, delaySeconds: number): IClientOptions {
  return {
    clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 },
    will: { topic: `will/${clientId}`, payload: Buffer.from(`${clientId} gone`), qos: 1, retain: false, properties: { willDelayInterval: delaySeconds } },
  };
}

describe('a delayed will pending at a graceful stop', () => {
  it('goes out once cluster-wide at its due time from a live replica, unless its client is back first', async () => {
    const prefix = testPrefix('wired-will-release');
    // Two live replicas: both look at the released sessions, one adopts each.
    const rs = await startReplicas(['stay-0', 'stop-1', 'stay-2'], { redis: redis(), keyPrefix: prefix });
    replicas.push(...rs);
    const [live, stopping, otherLive] = rs as [BrokerReplica, BrokerReplica, BrokerReplica];
    const wills: { topic: string; payload: string; at: number }[] = [];
    const watcher = await client(live, { clientId: 'release-watcher', protocolVersion: 5 });
    watcher.on('message', (topic, payload) => wills.push({ topic, payload: payload.toString(), at: Date.now() }));
    await watcher.subscribeAsync('will/#', { qos: 1 });

    const away = await client(stopping, withWill('away-dev', 8));
    await client(stopping, withWill('cut-dev', 6)); // its connection ends with the stop
    await client(stopping, withWill('back-dev', 6)); // comes back elsewhere before its will is due
    await sleep(300);
    away.stream.destroy(); // gone without DISCONNECT: its will is pending on the stopping replica
    const awayAt = Date.now();
    await sleep(500);

    const termAt = Date.now();
    expect(await stopping.terminate()).toBe(0);
    const stoppedAt = Date.now();
    // Back in time [MQTT-3.1.3-9] (whether or not the live replica adopted its session already).
    await client(live, withWill('back-dev', 6));
    await until(() => wills.some((w) => w.topic === 'will/away-dev') && wills.some((w) => w.topic === 'will/cut-dev'), 20_000, 'both wills');
    await sleep(3_000); // a second copy would have come by now
    const away1 = wills.filter((w) => w.topic === 'will/away-dev');
    const cut = wills.filter((w) => w.topic === 'will/cut-dev');
    console.log(`wills after a graceful stop: away-dev (delay 8 s) ${away1[0]!.at - awayAt} ms after its client went, cut-dev (delay 6 s) ${cut[0]!.at - stoppedAt} ms after the stop`);
    expect(away1.map((w) => w.payload)).toEqual(['away-dev gone']);
    expect(cut.map((w) => w.payload)).toEqual(['cut-dev gone']);
    expect(wills.filter((w) => w.topic === 'will/back-dev')).toEqual([]);
    expect(away1[0]!.at - awayAt).toBeGreaterThanOrEqual(7_900);
    expect(away1[0]!.at - awayAt).toBeLessThan(8_000 + LATE_BOUND_MS);
    // Its delay counts from when the stop closed its connection: before `stoppedAt`.
    expect(cut[0]!.at - termAt).toBeGreaterThanOrEqual(5_900);
    expect(cut[0]!.at - stoppedAt).toBeLessThan(6_000 + LATE_BOUND_MS);
    const admin = adminClient(redis());
    // Nothing left to send: the list is empty, a live replica owns each of the two sessions, without its will.
    expect(await admin.zrange(`${prefix}released-wills`, '0', '-1')).toEqual([]);
    for (const id of ['away-dev', 'cut-dev']) {
      const [owner, will] = await admin.hmget(`${prefix}s:${id}`, 'owner', 'will');
      expect([live.id, otherLive.id]).toContain(owner);
      expect(will).toBeNull();
    }
    admin.disconnect();
  });
});
