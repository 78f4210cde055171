// Cross-replica routing on the world's Redis: three replicas in one process, each with its own
// connections. What one publishes reaches the others in its order and never comes back to itself;
// takeover requests are answered by the owner; a reader that was away resumes without loss.
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

async function replicas(n: number, name: string): Promise<Replica[]> {
  const prefix = testPrefix(name);
  const rs = await Promise.all(Array.from({ length: n }, (_, i) => startReplica(`broker-${i}`, redis, prefix)));
  open.push(...rs);
  return rs;
}

const seqOf = (r: Replica, origin: string): number[] => r.received.filter((e) => e.origin === origin).map((e) => Number(e.payload.toString()));

describe('bus', () => {
  it('delivers every message to every other replica, in each publisher\'s order, never to itself', async () => {
    const [a, b, c] = await replicas(3, 'bus-order');
    const N = 2000;
    // Two publishers interleaved, not awaited one by one: order must come from the one connection.
    const sends: Promise<void>[] = [];
    for (let i = 0; i < N; i++) {
      sends.push(a!.bus.publish(envelopeOf(a!.bus, 't/a', String(i))));
      sends.push(b!.bus.publish(envelopeOf(b!.bus, 't/b', String(i), { qos: 2, properties: { contentType: 'text/plain' } })));
    }
    await Promise.all(sends);
    await until(() => c!.received.length === 2 * N && a!.received.length === N && b!.received.length === N, 15_000, 'all deliveries');
    const inOrder = Array.from({ length: N }, (_, i) => i);
    expect(seqOf(c!, 'broker-0')).toEqual(inOrder);
    expect(seqOf(c!, 'broker-1')).toEqual(inOrder);
    expect(seqOf(b!, 'broker-0')).toEqual(inOrder);
    expect(seqOf(a!, 'broker-1')).toEqual(inOrder);
    expect(a!.received.some((e) => e.origin === 'broker-0')).toBe(false);
    expect(c!.received.find((e) => e.origin === 'broker-1')?.properties).toEqual({ contentType: 'text/plain' });
    expect(c!.bus.counters.gaps).toBe(0);
  });

  it('takeover: the owner is asked and answers released for that epoch; nobody answering times out', async () => {
    const [a, b, c] = await replicas(3, 'bus-takeover');
    b!.connected.add('dev-1'); // b has the client; c does not and stays silent
    const started = Date.now();
    expect(await a!.bus.requestTakeover('dev-1', 7, 2000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(500);
    expect(b!.connected.has('dev-1')).toBe(false);
    expect(b!.takeovers).toEqual(['dev-1@7']);
    // c hears the same control message as b, but nothing orders its delivery before b's answer.
    await until(() => c!.takeovers.length > 0, 2000, 'the takeover request at c');
    expect(c!.takeovers).toEqual(['dev-1@7']);
    expect(await a!.bus.requestTakeover('nobody-owns-me', 8, 300)).toBe(false);
  });

  it('a reader that stopped and started again reads what was published meanwhile (stream, not pub/sub)', async () => {
    const [a, b] = await replicas(2, 'bus-resume');
    await a!.bus.publish(envelopeOf(a!.bus, 't', '0'));
    await until(() => b!.received.length === 1, 5000, 'first message');
    // b's reader connection drops (as on a network blip); a keeps publishing.
    b!.link.reader.disconnect(true);
    for (let i = 1; i <= 100; i++) await a!.bus.publish(envelopeOf(a!.bus, 't', String(i)));
    await until(() => b!.received.length === 101, 10_000, 'messages published while b was away');
    expect(seqOf(b!, 'broker-0')).toEqual(Array.from({ length: 101 }, (_, i) => i));
    expect(b!.bus.counters.gaps).toBe(0);
  });

  it('one turn\'s messages share stream entries of at most 16; a refused publish nobody awaits is no unhandled rejection', async () => {
    const [a, b] = await replicas(2, 'bus-batch');
    const sends = Array.from({ length: 40 }, (_, i) => a!.bus.publish(envelopeOf(a!.bus, 't', String(i))));
    await Promise.all(sends);
    // Redis holds 3 entries (16 + 16 + 8 frames), not 40: fields are `m <frame>` pairs.
    const entries = await a!.link.command.xrange(a!.bus.streamKey, '-', '+');
    expect(entries.map(([, fields]) => fields.length / 2)).toEqual([16, 16, 8]);
    expect(entries.every(([, fields]) => fields.every((f, i) => i % 2 === 1 || f === 'm'))).toBe(true);
    await until(() => b!.received.length === 40, 5000, 'all 40');
    expect(seqOf(b!, 'broker-0')).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(a!.bus.counters.published).toBe(40);
    expect((await a!.bus.since(0)).map((e) => e.payload.toString())).toEqual(Array.from({ length: 40 }, (_, i) => String(i)));

    // A QoS 0 message's promise is dropped by the broker: Redis refusing it must not end the process.
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      await a!.link.close();
      void a!.bus.publish(envelopeOf(a!.bus, 't', 'dropped'));
      const awaited = a!.bus.publish(envelopeOf(a!.bus, 't', 'refused'));
      await expect(awaited).rejects.toMatchObject({ code: expect.stringMatching(/^REDIS_/) as unknown });
      await new Promise((r) => setTimeout(r, 100));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('counts a gap when the stream was trimmed past what a replica missed', async () => {
    const [a, b] = await replicas(2, 'bus-gap');
    await a!.bus.publish(envelopeOf(a!.bus, 't', '0'));
    await until(() => b!.received.length === 1, 5000, 'first message');
    // Entries a replica never read are gone (XTRIM to 0): the sequence shows the hole.
    await b!.bus.stop();
    for (let i = 1; i <= 10; i++) await a!.bus.publish(envelopeOf(a!.bus, 't', String(i)));
    await a!.link.command.xtrim(a!.bus.streamKey, 'MAXLEN', 0);
    b!.bus.start();
    await new Promise((r) => setTimeout(r, 300));
    await a!.bus.publish(envelopeOf(a!.bus, 't', '11'));
    await until(() => b!.received.length === 2, 5000, 'message after the gap');
    expect(b!.bus.counters.gaps).toBe(10);
  });
});
