// Redis memory per persistent session (offline, one subscription) and per queued QoS 1 message
// (64-byte payload), for our session store and for Aedes with aedes-persistence-redis. Measured as
// the growth of Redis' used_memory over many sessions/messages (after a warm-up, so loaded scripts
// and first-use structures are not counted), so per-key overhead is included.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { RedisLink } from '../../broker/cluster/link.ts';
import { SessionStore } from '../../broker/cluster/session-store.ts';
import type { Envelope } from '../../broker/cluster/envelope.ts';
import { freePort } from '../../test/support/process.ts';
import { BenchClient } from '../broker/client.ts';
import type { PrivateRedis } from './run.ts';

const here = dirname(fileURLToPath(import.meta.url));

async function usedMemory(r: Redis): Promise<number> {
  const info = await r.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? NaN);
}

const message = (topic: string): Envelope => ({
  origin: 'bench-0', seq: 1, senderId: 'pub', topic, payload: Buffer.alloc(64), qos: 1, retain: false, expiresAt: 0, properties: undefined, sharedPicks: undefined,
});

async function ours(redis: PrivateRedis, sessions: number, queued: number): Promise<[number, number]> {
  await redis.client.flushall();
  const link = new RedisLink({ host: '127.0.0.1', port: redis.port, password: redis.password, keyPrefix: 'enclave:mem:' });
  await link.whenUp(5000);
  const store = new SessionStore(link, 'bench-0');
  // Warm-up: scripts loaded and a first queue made before the baseline, so they are not counted.
  const warm = await store.claim('warm-up', true);
  await store.enqueue('warm-up', warm.epoch, message('warm'), { maxMessages: 10, maxBytes: 10_000, overflow: 'drop-oldest' });
  const m0 = await usedMemory(redis.client);
  const epochs: number[] = [];
  for (let i = 0; i < sessions; i++) {
    const id = `device-${String(i).padStart(6, '0')}`;
    const c = await store.claim(id, true);
    epochs.push(c.epoch);
    await store.setSubscription(id, c.epoch, `devices/${i}/cmd/#`, { filter: `devices/${i}/cmd/#`, group: undefined, options: { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, identifier: undefined } });
    await store.goOffline(id, c.epoch, 3600);
  }
  const m1 = await usedMemory(redis.client);
  const limits = { maxMessages: 1_000_000, maxBytes: 1 << 30, overflow: 'drop-oldest' as const };
  for (let i = 0; i < queued; i++) await store.enqueue('device-000000', epochs[0]!, message('devices/0/cmd/set'), limits);
  const m2 = await usedMemory(redis.client);
  await link.close();
  return [(m1 - m0) / sessions, (m2 - m1) / queued];
}

async function publishAll(port: number, topic: string, count: number): Promise<void> {
  const pub = await BenchClient.connect(port, 'mem-pub');
  await new Promise<void>((resolve) => {
    let acked = 0;
    pub.onAck = () => {
      if (++acked === count) resolve();
    };
    for (let i = 0; i < count; i++) pub.publish(topic, Buffer.alloc(64), 1, (i % 65535) + 1);
  });
  pub.end();
}

async function aedes(redis: PrivateRedis, sessions: number, queued: number): Promise<[number, number]> {
  await redis.client.flushall();
  const port = await freePort();
  const proc = spawn(process.execPath, [join(here, 'aedes-redis.ts'), String(port), String(redis.port), redis.password], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise((r) => proc.stdout.once('data', r));
  try {
    const warm = await BenchClient.connect(port, 'warm-up', false);
    await warm.subscribe('warm/#', 1);
    warm.end();
    await publishAll(port, 'warm/x', 1);
    await new Promise((r) => setTimeout(r, 300));
    const m0 = await usedMemory(redis.client);
    for (let i = 0; i < sessions; i++) {
      const c = await BenchClient.connect(port, `device-${String(i).padStart(6, '0')}`, false);
      await c.subscribe(`devices/${i}/cmd/#`, 1);
      c.end();
    }
    await new Promise((r) => setTimeout(r, 500));
    const m1 = await usedMemory(redis.client);
    await publishAll(port, 'devices/0/cmd/set', queued);
    await new Promise((r) => setTimeout(r, 500));
    const m2 = await usedMemory(redis.client);
    return [(m1 - m0) / sessions, (m2 - m1) / queued];
  } finally {
    proc.kill('SIGKILL');
  }
}

/** The memory table, as text. */
export async function measureRedisMemory(redis: PrivateRedis, n: number): Promise<string> {
  const [oursSession, oursMessage] = await ours(redis, n, n);
  const [aedesSession, aedesMessage] = await aedes(redis, n, n);
  return [
    `Redis memory (used_memory growth over ${n} offline persistent sessions with one subscription each, then ${n} queued QoS 1 messages of 64 bytes)`,
    `| store                   | B per session | B per queued message |`,
    `|-------------------------|---------------|----------------------|`,
    `| ours (session-store.ts) | ${oursSession.toFixed(0).padStart(13)} | ${oursMessage.toFixed(0).padStart(20)} |`,
    `| aedes-persistence-redis | ${aedesSession.toFixed(0).padStart(13)} | ${aedesMessage.toFixed(0).padStart(20)} |`,
  ].join('\n');
}
