// A session that ends while Redis is unreachable (its client disconnects, or its expiry runs out)
// cannot be deleted then; Redis, back with its data (a managed Redis on a volume keeps it), must not
// keep it forever: the replica deletes it once the link is up again. A private redis-server whose
// password the test changes to cut the replica off (its connections killed, its reconnects refused)
// and changes back; a real broker process.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../support/process.ts';
import { sleep } from '../../support/wait.ts';
import { startReplicas } from './broker-replicas.ts';
import type { BrokerReplica } from './broker-replicas.ts';
import { adminClient, PrivateRedis, testPrefix, until } from './replicas.ts';

let dir: string;
let server: PrivateRedis;
const replicas: BrokerReplica[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'review-outage-end-'));
  server = new PrivateRedis(join(dir, 'redis'), await freePort());
  await server.start();
});
afterAll(async () => {
  await Promise.all(replicas.map((r) => r.close()));
  await server.kill();
  await rm(dir, { recursive: true, force: true });
});

describe('a session that ends while Redis is unreachable', () => {
  it('is deleted once Redis is back with its data: no key of it is left', async () => {
    const prefix = testPrefix('review-outage-end');
    const [r] = await startReplicas(['cut-0'], { redis: server.address, keyPrefix: prefix });
    replicas.push(r!);
    const clean = await mqtt.connectAsync({ host: '127.0.0.1', port: r!.port, clientId: 'clean-dev', protocolVersion: 5, clean: true, reconnectPeriod: 0 });
    const admin = adminClient(server.address);
    expect(await admin.exists(`${prefix}s:clean-dev`)).toBe(1);
    // Cut off: a new password refuses the replica's reconnects, its connections are killed.
    const { password } = server.address;
    await admin.config('SET', 'requirepass', `${password}-cut`);
    await admin.call('CLIENT', 'KILL', 'TYPE', 'normal').catch(() => undefined);
    admin.disconnect();
    await until(async () => (await r!.metric('enclave_state_backend_up')) === 0, 10_000, 'the replica sees Redis down');
    await clean.endAsync(); // the session ends now: its delete cannot reach Redis
    await sleep(500);
    const back = adminClient({ ...server.address, password: `${password}-cut` });
    await back.config('SET', 'requirepass', password);
    back.disconnect();
    await until(async () => (await r!.metric('enclave_state_backend_up')) === 1, 15_000, 'the replica sees Redis up');
    const check = adminClient(server.address);
    await until(async () => (await check.exists(`${prefix}s:clean-dev`)) === 0, 5_000, 'the ended session deleted').catch(() => undefined);
    expect(await check.keys(`${prefix}s:*`)).toEqual([]);
    expect(await check.smembers(`${prefix}owned:cut-0`)).toEqual([]);
    check.disconnect();
  });
});
