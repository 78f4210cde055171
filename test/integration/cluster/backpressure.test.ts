// Back-pressure across replicas (broker/session/backlog.ts), on real broker processes sharing the
// world's Redis. A burst published on one replica waits in the Redis stream while a subscriber on
// the other replica is behind, instead of overflowing that subscriber's queue. The publisher is
// MQTT.js, which has no in-flight limit, sending everything at once. A subscriber that stays stuck
// is let go after the longest hold, and the replica's other subscribers get their messages.
import { describe, expect, it } from 'vitest';
import { MAX_HOLD_MS } from '../../../broker/session/backlog.ts';
import { stallableSubscriber } from '../../support/stallable-subscriber.ts';
import type { StallableSubscriber } from '../../support/stallable-subscriber.ts';
import { sleep } from '../../support/wait.ts';
import { replicaFixture, startReplicas } from './broker-replicas.ts';
import type { BrokerReplica } from './broker-replicas.ts';
import { testPrefix, until } from './replicas.ts';

const { redis, replicas, client } = replicaFixture();
const QUEUE_LIMIT = 100;

async function pair(name: string): Promise<[BrokerReplica, BrokerReplica]> {
  const rs = await startReplicas([`${name}-0`, `${name}-1`], { redis: redis(), keyPrefix: testPrefix(name), limits: { maxQueuedMessages: QUEUE_LIMIT } });
  replicas.push(...rs);
  return [rs[0]!, rs[1]!];
}

async function subscriber(r: BrokerReplica, clientId: string, filter: string): Promise<StallableSubscriber> {
  return await stallableSubscriber(await client(r, { clientId, clean: false }), filter);
}

/** The broker's drops for one reason (`enclave_broker_messages_dropped_total{reason=…}`). */
async function drops(r: BrokerReplica, reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${r.adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`enclave_broker_messages_dropped_total{reason="${reason}"}`));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

describe('back-pressure across replicas', () => {
  it('a burst of 10× the queue limit to a subscriber that stalls on the other replica waits in Redis: all delivered once, in order, none dropped', async () => {
    const [pubReplica, subReplica] = await pair('bp-burst');
    const { inbox, stall, unstall } = await subscriber(subReplica, 'bp-burst-sub', 'bp/burst');
    await sleep(300); // the subscription reaches the other replica
    stall(); // no PUBACK: the broker's window for it, then its queue, fill
    const pub = await client(pubReplica, { clientId: 'bp-burst-pub' });
    const n = QUEUE_LIMIT * 10;
    // MQTT.js sends all of them at once: no in-flight limit, as a client resending its backlog does.
    await Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync('bp/burst', String(i), { qos: 1 })));
    await sleep(500);
    expect(await subReplica.metric('enclave_state_backend_read_held_seconds_total')).toBeGreaterThan(0);
    unstall();
    await until(() => inbox.length >= n, 20_000, `${n} messages (have ${inbox.length})`);
    await sleep(300); // late duplicates
    expect(inbox).toEqual(Array.from({ length: n }, (_, i) => String(i)));
    expect(await drops(subReplica, 'queue-full')).toBe(0);
    expect(await subReplica.metric('enclave_state_backend_slow_consumers_total')).toBe(0);
  }, 60_000);

  it('a subscriber that stays stuck is let go after the longest hold: the other subscribers of its replica get their messages, the stuck one drops at its limit', async () => {
    const [pubReplica, subReplica] = await pair('bp-stuck');
    const stuck = await subscriber(subReplica, 'bp-stuck-sub', 'bp/stuck');
    const healthy = await subscriber(subReplica, 'bp-ok-sub', 'bp/ok');
    await sleep(300);
    stuck.stall();
    const pub = await client(pubReplica, { clientId: 'bp-stuck-pub' });
    await Promise.all(Array.from({ length: QUEUE_LIMIT * 4 }, (_, i) => pub.publishAsync('bp/stuck', String(i), { qos: 1 })));
    await Promise.all(Array.from({ length: 50 }, (_, i) => pub.publishAsync('bp/ok', String(i), { qos: 1 })));
    await until(() => healthy.inbox.length >= 50, MAX_HOLD_MS + 8_000, `the healthy subscriber's 50 (have ${healthy.inbox.length})`);
    expect(healthy.inbox).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    // Reading waited the longest hold once, for the stuck one, then let it go.
    expect(await subReplica.metric('enclave_state_backend_read_held_seconds_total')).toBeGreaterThanOrEqual(MAX_HOLD_MS / 1000 * 0.95);
    expect(await subReplica.metric('enclave_state_backend_slow_consumers_total')).toBe(1);
    expect(await drops(subReplica, 'queue-full')).toBeGreaterThan(0);
  }, 60_000);
});
