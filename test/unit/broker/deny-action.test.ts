// `denyAction: disconnect` closes the connection on a denied PUBLISH only; a denied SUBSCRIBE
// filter is answered in SUBACK (0x87 on v5, 0x80 on 3.1.1) and the connection stays
// (docs/auth-semantics.md). A real auth chain over a builtin users file, bytes on the wire.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createAuthChain } from '../../../broker/auth/chain.ts';
import { embeddedDefaultConfig, validateBrokerConfig } from '../../../broker/config.ts';
import type { BrokerConfig } from '../../../broker/config.ts';
import { RawClient, connectPacket, frame, publish, str, subscribe, startTestBroker } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

let dir: string;
let tb: TestBroker;

const patch = (usersFile: string) => (c: BrokerConfig): void => {
  c.sources = { file: { type: 'builtin', dataFile: usersFile, passwordHash: { algorithm: 'plain' } } };
  c.authentication = { chain: ['file'], allowAnonymous: false };
  c.authorization = { chain: ['file'], noMatch: 'deny', denyAction: 'disconnect', cache: { enabled: true, maxSize: 32, ttlSeconds: 60 } };
  c.listeners[0]!.allowAnonymous = false;
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'deny-action-'));
  const usersFile = join(dir, 'users.yaml');
  await writeFile(usersFile, stringify({
    users: [{ username: 'alice', password_hash: 'alice-pw' }],
    acl: [{ username: 'alice', permission: 'allow', action: 'all', topic: 'alerts/#' }],
  }));
  const config = embeddedDefaultConfig('127.0.0.1', 0);
  patch(usersFile)(config);
  const hook = await createAuthChain(validateBrokerConfig(config), { logger: pino({ level: 'silent' }), fileWatchIntervalMs: 1000 });
  tb = await startTestBroker(patch(usersFile), hook);
});

afterAll(async () => {
  await tb.stop();
  await rm(dir, { recursive: true, force: true });
});

async function login(level: 4 | 5, clientId: string): Promise<RawClient> {
  const c = await RawClient.connect(tb.port);
  c.send(connectPacket({ level, clientId, username: 'alice', password: 'alice-pw' }));
  const connack = await c.packet();
  expect(connack?.[0]).toBe(0x20);
  expect(connack?.[3]).toBe(0); // Reason Code / return code: accepted
  return c;
}

/** SUBSCRIBE with several filters at QoS 1 (v5: empty property list). */
function subscribeMany(id: number, filters: string[], v5: boolean): Buffer {
  return frame(0x82, Buffer.from([id >> 8, id & 0xff]), v5 ? '00' : '', ...filters.flatMap((f) => [str(f), '01']));
}

describe('denyAction: disconnect', () => {
  it('v5: a denied filter gets 0x87 in SUBACK next to the granted one; the connection stays and delivers', async () => {
    const c = await login(5, 'deny-sub-v5');
    c.send(subscribeMany(1, ['alerts/#', 'news/#'], true));
    expect(await c.packetHex()).toBe('9005000100' + '0187');
    // Still connected: PINGRESP, and the granted subscription delivers.
    c.send('c000');
    expect(await c.packetHex()).toBe('d000');
    c.send(publish('alerts/a', 'A', 0, 0, false, true));
    expect(await c.packetHex()).toBe('300c' + '0008616c657274732f61' + '00' + '41');
    expect(c.closed).toBe(false);
    c.end();
  });

  it('3.1.1: a denied filter gets 0x80 in SUBACK; the connection stays', async () => {
    const c = await login(4, 'deny-sub-v3');
    c.send(subscribe(1, 'news/#', 1));
    expect(await c.packetHex()).toBe('9003000180');
    c.send('c000');
    expect(await c.packetHex()).toBe('d000');
    c.end();
  });

  it('a denied PUBLISH closes the connection (v5 DISCONNECT 0x87), no PUBACK', async () => {
    const c = await login(5, 'deny-pub-v5');
    c.send(publish('news/a', 'N', 1, 7, false, true));
    expect(await c.untilClosed()).toEqual(['e0028700']);
  });
});
