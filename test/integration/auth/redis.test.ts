// Redis specifics: a Redis that is down at CONNECT time denies fast ("unavailable"), and the same
// chain starts allowing by itself once a Redis appears on that port (ioredis reconnects with
// backoff; the chain's own backoff lets a probe through). Also: ACL values in JSON with qos.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../../broker/auth/password.ts';
import { freePort } from '../../support/process.ts';
import { world } from '../../support/world.ts';
import { attempt, chainOf, clientOf, pub } from '../../unit/auth/helpers.ts';
import { hashConfig } from './fixtures.ts';

let dir: string;
let child: ChildProcess | undefined;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'auth-redis-'));
});
afterAll(async () => {
  child?.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe('redis source', () => {
  it('down at CONNECT → deny fast; recovers by itself when Redis comes up', async () => {
    const port = await freePort();
    const { hook } = await chainOf({ r: { type: 'redis', host: '127.0.0.1', port, passwordHash: hashConfig, timeoutMs: 1000 } }, { authz: [] });
    const a = attempt({ username: 'alice', password: 'alice-pw' });
    const started = Date.now();
    expect(await hook.authenticate(a)).toMatchObject({ outcome: 'deny', reason: 'unavailable', source: 'r' });
    expect(Date.now() - started).toBeLessThan(3000);

    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    const admin = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0, retryStrategy: (n) => Math.min(n * 50, 500) });
    admin.on('error', () => {}); // refused until the server is up
    await expect.poll(async () => admin.ping().then(() => true, () => false), { timeout: 10_000, interval: 100 }).toBe(true);
    await admin.hset('mqtt_user:alice', { password_hash: await hashPassword(hashConfig, 'alice-pw', 'NaCl'), salt: 'NaCl' });
    await expect.poll(async () => (await hook.authenticate(a)).outcome, { timeout: 15_000, interval: 200 }).toBe('allow');
    admin.disconnect();
    await hook.close();
  });

  it('ACL hash values: bitmask, action names and JSON with qos/retain', async () => {
    const info = world().redis;
    const r = new Redis({ host: info.host, port: info.port, password: info.password, db: 8 });
    await r.flushdb();
    await r.hset('mqtt_user:dev', { password_hash: await hashPassword(hashConfig, 'dev-pw', ''), is_superuser: '0' });
    await r.hset('mqtt_acl:dev', { 'q/${clientid}': '{"action":"publish","qos":[0,1],"retain":false}', 'all/#': 'all' });
    await writeFile(join(dir, 'pw'), info.password);
    const { hook } = await chainOf({ r: { type: 'redis', host: info.host, port: info.port, db: 8, passwordFile: join(dir, 'pw'), passwordHash: hashConfig } });
    const a = attempt({ username: 'dev', password: 'dev-pw', clientId: 'k1' });
    const c = clientOf(a, await hook.authenticate(a));
    expect(await hook.authorize(c, pub('q/k1', 1))).toBe(true);
    expect(await hook.authorize(c, pub('q/k1', 2))).toBe(false);
    expect(await hook.authorize(c, pub('q/k1', 0, true))).toBe(false);
    expect(await hook.authorize(c, pub('all/x/y'))).toBe(true);
    r.disconnect();
    await hook.close();
  });
});
