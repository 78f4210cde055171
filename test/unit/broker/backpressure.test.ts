// Back-pressure on one broker (broker/session/backlog.ts): a publisher whose messages are queued for
// a connected subscriber that is behind stops being read until that queue drains, so a burst waits
// in the publisher (TCP) instead of overflowing the queue. The publisher is MQTT.js, which has no
// in-flight limit, sending everything at once as a client resending its backlog does. A subscriber
// that stays stuck is let go after the longest hold, and the publisher goes on.
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_HOLD_MS } from '../../../broker/session/backlog.ts';
import { stallableSubscriber } from '../../support/stallable-subscriber.ts';
import { eventually } from '../../support/wait.ts';
import { sleep, startTestBroker } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

const QUEUE_LIMIT = 100;
let tb: TestBroker | undefined;
const clients: MqttClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await tb?.stop();
});

async function connect(clientId: string, clean = true): Promise<MqttClient> {
  const c = await mqtt.connectAsync({ host: '127.0.0.1', port: tb!.port, clientId, clean, reconnectPeriod: 0 });
  clients.push(c);
  return c;
}

describe('back-pressure on publishers', () => {
  it('a burst of 10× the queue limit to a subscriber that stalls: the publisher waits, everything arrives once, in order, none dropped', async () => {
    tb = await startTestBroker((c) => {
      c.limits.maxQueuedMessages = QUEUE_LIMIT;
    });
    const sub = await stallableSubscriber(await connect('bp-sub', false), 'bp/burst');
    sub.stall();
    const pub = await connect('bp-pub');
    const n = QUEUE_LIMIT * 10;
    const acked = Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync('bp/burst', String(i), { qos: 1 })));
    await sleep(500);
    expect(tb.broker.metrics.publishersHeld).toBeGreaterThan(0);
    sub.unstall();
    await acked;
    await eventually(`${n} messages`, () => Promise.resolve(sub.inbox.length >= n), 20_000, 20);
    await sleep(200); // late duplicates
    expect(sub.inbox).toEqual(Array.from({ length: n }, (_, i) => String(i)));
    expect(tb.broker.metrics.drops.get('queue-full') ?? 0).toBe(0);
    expect(pub.connected).toBe(true);
  }, 30_000);

  it('a client that gets its own burst is not held (its PUBACKs come on the socket a hold would stop)', async () => {
    tb = await startTestBroker((c) => {
      c.limits.maxQueuedMessages = QUEUE_LIMIT;
    });
    const self = await stallableSubscriber(await connect('bp-self', false), 'bp/self');
    const t0 = performance.now();
    await Promise.all(Array.from({ length: QUEUE_LIMIT * 3 }, (_, i) => self.c.publishAsync('bp/self', String(i), { qos: 1 })));
    await eventually('its own messages', () => Promise.resolve(self.inbox.length >= QUEUE_LIMIT), 10_000, 20);
    expect(tb.broker.metrics.publishersHeld).toBe(0);
    expect(performance.now() - t0).toBeLessThan(MAX_HOLD_MS);
  }, 30_000);

  it('a subscriber that stays stuck is let go after the longest hold: the publisher goes on, the stuck one drops at its limit', async () => {
    tb = await startTestBroker((c) => {
      c.limits.maxQueuedMessages = QUEUE_LIMIT;
    });
    const stuck = await stallableSubscriber(await connect('bp-stuck', false), 'bp/stuck');
    const healthy = await stallableSubscriber(await connect('bp-ok', false), 'bp/ok');
    stuck.stall();
    const pub = await connect('bp-pub2');
    const t0 = performance.now();
    await Promise.all(Array.from({ length: QUEUE_LIMIT * 4 }, (_, i) => pub.publishAsync('bp/stuck', String(i), { qos: 1 })));
    await Promise.all(Array.from({ length: 50 }, (_, i) => pub.publishAsync('bp/ok', String(i), { qos: 1 })));
    await eventually('the healthy subscriber\'s 50', () => Promise.resolve(healthy.inbox.length >= 50), 10_000, 20);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(MAX_HOLD_MS * 0.95); // it was held, once
    expect(healthy.inbox).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    expect(tb.broker.metrics.drops.get('queue-full') ?? 0).toBeGreaterThan(0);
    expect(tb.broker.backlog.slowConsumers).toBe(1);
  }, 30_000);
});
