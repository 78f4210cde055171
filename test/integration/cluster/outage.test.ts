// Redis killed mid-traffic and started again on the same port: no replica crashes, the link says
// `down` then `up`, commands fail fast (nothing waits in an offline queue) while it is down, and
// afterwards the same objects work again without a restart: routing, retained, sessions.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../support/process.ts';
import { envelopeOf, PrivateRedis, startReplica, testPrefix, until } from './replicas.ts';
import type { Replica } from './replicas.ts';

let dir: string;
let server: PrivateRedis;
const open: Replica[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cluster-outage-'));
  server = new PrivateRedis(join(dir, 'redis'), await freePort());
  await server.start();
});
afterAll(async () => {
  await Promise.all(open.map((r) => r.close().catch(() => undefined)));
  await server.kill();
  await rm(dir, { recursive: true, force: true });
});

describe('Redis outage', () => {
  it('down then up, fail-fast meanwhile, state usable again after recovery', async () => {
    const prefix = testPrefix('outage');
    const [a, b] = await Promise.all([startReplica('broker-0', server.address, prefix), startReplica('broker-1', server.address, prefix)]);
    open.push(a, b);
    const failures: string[] = [];
    a.link.observe({ failure: (r) => failures.push(r) });

    // Traffic running when Redis dies.
    let sent = 0;
    let refused = 0;
    let stop = false;
    const traffic = (async () => {
      while (!stop) {
        try {
          await a.bus.publish(envelopeOf(a.bus, 't', String(sent)));
          sent++;
        } catch (err) {
          expect((err as { code: string }).code).toMatch(/^REDIS_/);
          refused++;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    })();
    await a.shared.change('g', 'jobs/#', 1);
    await until(() => b.received.length > 100, 5000, 'traffic before the outage');
    await server.kill();
    await until(() => a.events.some((e) => e.startsWith('down')) && b.events.some((e) => e.startsWith('down')), 5000, 'down events');

    // Fail fast: a session claim during the outage is refused well within a CONNECT's patience.
    const t0 = Date.now();
    await expect(a.sessions.claim('dev-1', false)).rejects.toMatchObject({ code: 'REDIS_UNAVAILABLE' });
    expect(Date.now() - t0).toBeLessThan(200);
    await until(() => refused > 10, 5000, 'publishes refused while down');

    await server.start();
    await until(() => a.link.state === 'up' && b.link.state === 'up', 15_000, 'links up again');
    expect(a.events.filter((e) => e === 'up')).toHaveLength(2);
    const before = b.received.length;
    await until(() => b.received.length > before + 100, 10_000, 'traffic after the outage');
    stop = true;
    await traffic;

    // Redis came back empty (memory only): each replica writes back what only it knows (its shared
    // group members), then state is written and read again normally.
    // The cluster restores it by itself on `up`, then tells the broker (recovered).
    const groupKey = `${prefix}shared:g/jobs/#`;
    await until(() => a.events.includes('recovered'), 5000, 'recovered');
    expect(await a.link.command.hget(groupKey, 'broker-0')).toBe('1');
    await b.shared.reload();
    expect(b.shared.membersOf('g', 'jobs/#').get('broker-0')).toBe(1);
    expect(await a.retained.publish(envelopeOf(a.bus, 'r', 'after', { retain: true }))).toBe(true);
    expect((await b.retained.loadAll()).map((e) => e.payload.toString())).toEqual(['after']);
    const claim = await b.sessions.claim('dev-1', false);
    await b.sessions.enqueue('dev-1', claim.epoch, envelopeOf(b.bus, 't', 'q'), { maxMessages: 10, maxBytes: 10_000, overflow: 'drop-oldest' });
    expect((await a.sessions.load('dev-1'))!.queue).toHaveLength(1);
    expect(a.link.counters.downs).toBe(1);
    expect(a.link.counters.reconnects).toBeGreaterThan(0);
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.join('\n')).not.toContain(server.address.password);
  });
});
