// A replica that won a dead replica's session (the compare-and-set on the owner) but could not
// install it, because Redis failed on the way, tries again at its next look. Before, the session
// stayed owned by the winner in Redis and held by nobody: no other replica adopts a session it does
// not see as the dead one's, so the dead client's will never went out. The dead replica is a real
// broker process (SIGKILL); the survivor runs in this process so the test can make its first load
// of that session fail, as a dropped Redis connection would at that moment.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { LinkError } from '../../../broker/cluster/link.ts';
import { embeddedDefaultConfig, validateBrokerConfig } from '../../../broker/config.ts';
import { createBroker } from '../../../broker/server.ts';
import type { Broker } from '../../../broker/server.ts';
import { sleep } from '../../support/wait.ts';
import { replicaFixture, startReplicas } from './broker-replicas.ts';
import { adminClient, testPrefix, until } from './replicas.ts';

const { redis, replicas } = replicaFixture();
const dir = mkdtempSync(join(tmpdir(), 'adoption-retry-'));
let survivor: Broker | undefined;
afterAll(async () => {
  await survivor?.stop(200);
  rmSync(dir, { recursive: true, force: true });
});

describe('an adoption that fails after the compare-and-set', () => {
  it('is tried again: the dead replica\'s client\'s will goes out once and the session is held by the winner', async () => {
    const prefix = testPrefix('adopt-retry');
    const [doomed] = await startReplicas(['retry-doomed'], { redis: redis(), keyPrefix: prefix });
    replicas.push(doomed!);
    const passwordFile = join(dir, 'redis-password');
    writeFileSync(passwordFile, redis().password, { mode: 0o600 });
    const config = embeddedDefaultConfig('127.0.0.1', 0);
    config.admin.port = 0;
    const parsed = validateBrokerConfig({ ...config, state: { backend: 'redis', redis: { host: redis().host, port: redis().port, passwordFile, keyPrefix: prefix } } });
    const broker = survivor = createBroker({ config: parsed, logger: pino({ level: 'silent' }), sysIntervalMs: 0, replicaId: 'retry-survivor' });
    await broker.start();
    const store = broker.replication!.cluster.sessions;
    const load = store.load.bind(store);
    let loads = 0;
    store.load = async (clientId) => {
      if (clientId === 'retry-dev' && loads++ === 0) throw new LinkError('ECONNRESET', 'in-flight write: connection reset (injected)');
      return await load(clientId);
    };
    const mqtt = (await import('mqtt')).default;
    const watcher = await mqtt.connectAsync({ host: '127.0.0.1', port: broker.addresses()[0]!.port, clientId: 'retry-watcher', reconnectPeriod: 0 });
    const wills: string[] = [];
    watcher.on('message', (_t, payload) => wills.push(payload.toString()));
    await watcher.subscribeAsync('will/#', { qos: 1 });
    const dev = await mqtt.connectAsync({
      host: '127.0.0.1', port: doomed!.port, clientId: 'retry-dev', protocolVersion: 5, clean: false, reconnectPeriod: 0,
      properties: { sessionExpiryInterval: 300 }, will: { topic: 'will/retry', payload: Buffer.from('retry gone'), qos: 1, retain: false },
    });
    await sleep(500); // the will is in Redis
    await doomed!.kill();
    dev.end(true);
    await until(() => wills.length >= 1, 40_000, 'the will of the dead replica\'s client');
    await sleep(2_500); // a second copy would have come by now
    expect(wills).toEqual(['retry gone']);
    expect(loads).toBeGreaterThanOrEqual(2); // failed once, installed on the next look
    expect(broker.sessions.has('retry-dev')).toBe(true);
    const admin = adminClient(redis());
    expect(await admin.hget(`${prefix}s:retry-dev`, 'owner')).toBe('retry-survivor');
    admin.disconnect();
    await watcher.endAsync(true);
  }, 60_000);
});
