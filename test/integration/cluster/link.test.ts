// The link and the cluster facade at their edges: a replica that starts while Redis is not there
// starts degraded (start() resolves false, nothing throws) and recovers by itself when Redis
// appears; a wrong password keeps the link down with a reason that does not contain it; the
// proposed `state` config section validates and maps to the link.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../../broker/cluster/cluster.ts';
import { linkConfig, replicaId, stateConfigSchema } from '../../../broker/cluster/config.ts';
import type { RedisStateConfig } from '../../../broker/cluster/config.ts';
import { backoffDelay, RedisLink } from '../../../broker/cluster/link.ts';
import { freePort } from '../../support/process.ts';
import { PrivateRedis, testPrefix, until } from './replicas.ts';

let dir: string;
const servers: PrivateRedis[] = [];
const clusters: Cluster[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cluster-link-'));
});
afterAll(async () => {
  await Promise.all(clusters.map((c) => c.stop().catch(() => undefined)));
  for (const s of servers) await s.kill();
  await rm(dir, { recursive: true, force: true });
});

function cluster(port: number, password: string, events: string[]): Cluster {
  const c = new Cluster({
    replicaId: 'broker-0', maxRetainedBytes: 1 << 20,
    link: { host: '127.0.0.1', port, password, keyPrefix: testPrefix('link'), backoffBaseMs: 50, backoffMaxMs: 300, connectTimeoutMs: 500 },
    observer: { up: () => events.push('up'), down: (r) => events.push(`down ${r}`), failure: (r) => events.push(`failure ${r}`) },
  }, { message: () => undefined, retained: () => undefined, takeover: () => Promise.resolve(false), recovered: () => events.push('recovered') });
  clusters.push(c);
  return c;
}

describe('link', () => {
  it('starts degraded without Redis, then recovers by itself when Redis appears on that port', async () => {
    const server = new PrivateRedis(join(dir, 'late'), await freePort());
    servers.push(server);
    const events: string[] = [];
    const c = cluster(server.address.port, server.address.password, events);
    const t0 = Date.now();
    expect(await c.start(500)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(1500);
    await expect(c.sessions.claim('dev-1', true)).rejects.toMatchObject({ code: 'REDIS_UNAVAILABLE' });
    await server.start();
    await until(() => events.includes('recovered'), 15_000, 'recovered');
    expect(c.link.state).toBe('up');
    expect((await c.sessions.claim('dev-1', true)).epoch).toBe(1);
  });

  it('a wrong password keeps it down; no message carries the password', async () => {
    const server = new PrivateRedis(join(dir, 'auth'), await freePort());
    servers.push(server);
    await server.start();
    const events: string[] = [];
    const wrong = 'not-the-password-4f1c';
    const c = cluster(server.address.port, wrong, events);
    expect(await c.start(800)).toBe(false);
    await c.sessions.claim('dev-1', true).catch(() => undefined);
    expect(c.link.state).toBe('down');
    expect(events.length).toBeGreaterThan(0);
    expect(events.join('\n')).not.toContain(wrong);
    expect(events.join('\n')).not.toContain(server.address.password);
  });

  it('a command Redis does not answer fails after the command timeout; the connection stays, later answers match', async () => {
    const server = new PrivateRedis(join(dir, 'stopped'), await freePort());
    servers.push(server);
    await server.start();
    const link = new RedisLink({ host: '127.0.0.1', port: server.address.port, password: server.address.password, keyPrefix: testPrefix('link-timeout'), commandTimeoutMs: 400 });
    try {
      await link.whenUp(5000);
      await link.command.set('k', 'v');
      const pid = Number(/process_id:(\d+)/.exec(await link.command.info('server'))![1]);
      process.kill(pid, 'SIGSTOP'); // Redis hangs: the socket stays open, nothing is answered
      const t0 = Date.now();
      try {
        await expect(link.command.get('k')).rejects.toThrow('Command timed out');
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
      expect(Date.now() - t0).toBeLessThan(1500);
      // The late answer to GET is read and dropped: the next reply belongs to the next command.
      expect(await link.command.ping()).toBe('PONG');
      expect(await link.command.get('k')).toBe('v');
      expect(link.state).toBe('up');
    } finally {
      await link.close();
    }
  });

  it('backoff is capped and jittered', () => {
    const delays = Array.from({ length: 30 }, (_, i) => backoffDelay(i + 1, 100, 5000));
    expect(Math.max(...delays)).toBeLessThanOrEqual(6250);
    expect(delays[0]).toBeGreaterThanOrEqual(75);
    expect(new Set(delays.slice(10)).size).toBeGreaterThan(1);
  });
});

describe('state config (proposed)', () => {
  const validate = new Ajv({ useDefaults: true, allErrors: true, strict: false }).compile(stateConfigSchema);

  it.each([
    [{ backend: 'memory' }, true],
    [{ backend: 'redis', redis: { host: 'r', keyPrefix: 'enclave:u1:' } }, true],
    [{ backend: 'redis' }, false],
    [{ backend: 'redis', redis: { host: 'r', keyPrefix: 'enclave:*:' } }, false],
    [{ backend: 'redis', redis: { host: 'r', keyPrefix: 'x' } }, false],
    [{ backend: 'redis', redis: { host: 'r', keyPrefix: 'enclave:u1:', bogus: 1 } }, false],
    [{ backend: 'etcd' }, false],
  ])('%j → valid %s', (config, ok) => {
    expect(validate(structuredClone(config))).toBe(ok);
  });

  it('fills defaults and maps to the link; the replica id comes from the pod name', async () => {
    const config = { backend: 'redis', redis: { host: 'r', keyPrefix: 'enclave:u1:', passwordFile: join(dir, 'pw') } };
    await writeFile(join(dir, 'pw'), 'secret\n');
    expect(validate(config)).toBe(true);
    const redis = config.redis as unknown as RedisStateConfig;
    expect(redis).toMatchObject({ port: 6379, db: 0, streamMaxEntries: 50_000, takeoverTimeoutMs: 2000 });
    expect(linkConfig(redis)).toEqual({ host: 'r', port: 6379, db: 0, keyPrefix: 'enclave:u1:', password: 'secret', passwordFile: join(dir, 'pw') });
    expect(replicaId({ ENCLAVE_REPLICA_ID: 'broker-7d9f-abc' })).toBe('broker-7d9f-abc');
    expect(() => replicaId({}, '')).toThrow(RangeError);
  });
});
