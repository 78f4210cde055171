// Limits on the wire: maxConnections before authentication, maxSessions, maxSubscriptionsPerClient,
// maxRetainedBytes. Each broker is small and sized so the limit is reached within the test.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createAuthChain } from '../../../broker/auth/chain.ts';
import { embeddedDefaultConfig, validateBrokerConfig } from '../../../broker/config.ts';
import type { BrokerConfig } from '../../../broker/config.ts';
import { RawClient, connect311, connect5, connectPacket, frame, hex, publish, startTestBroker, str, subscribe } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'broker-limits-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function connack(port: number, bytes: Buffer): Promise<{ client: RawClient; ack: string | undefined }> {
  const client = await RawClient.connect(port);
  client.send(bytes);
  return { client, ack: await client.packetHex() };
}

async function withBroker(patch: (c: BrokerConfig) => void, body: (tb: TestBroker) => Promise<void>): Promise<void> {
  const tb = await startTestBroker(patch);
  try {
    await body(tb);
  } finally {
    await tb.stop();
  }
}

describe('maxConnections', () => {
  it('is checked before authentication: a client over the limit costs no password check', async () => {
    const usersFile = join(dir, 'users.yaml');
    await writeFile(usersFile, stringify({ users: [{ username: 'u', password_hash: await bcrypt.hash('pw', 4) }] }));
    const patch = (c: BrokerConfig): void => {
      c.limits.maxConnections = 1;
      c.sources = { file: { type: 'builtin', dataFile: usersFile, passwordHash: { algorithm: 'bcrypt' } } };
      c.authentication = { chain: ['file'], allowAnonymous: false };
      c.authorization = { chain: ['file'], noMatch: 'allow', denyAction: 'ignore', cache: { enabled: true, maxSize: 32, ttlSeconds: 60 } };
      c.listeners[0]!.allowAnonymous = false;
    };
    const config = embeddedDefaultConfig('127.0.0.1', 0);
    patch(config);
    const hook = await createAuthChain(validateBrokerConfig(config), { logger: pino({ level: 'silent' }) });
    const tb = await startTestBroker(patch, hook);
    const authentications = async (): Promise<number> =>
      (await tb.broker.metrics.authDecisions.get()).values.filter((v) => v.labels.action === 'connect').reduce((n, v) => n + v.value, 0);
    try {
      const login = (id: string): Buffer => connectPacket({ level: 4, clientId: id, username: 'u', password: 'pw' });
      const a = await connack(tb.port, login('mc-a'));
      expect(a.ack).toBe('20020000');
      expect(await authentications()).toBe(1);
      for (const id of ['mc-b', 'mc-c', 'mc-d']) {
        const over = await connack(tb.port, login(id));
        expect(over.ack).toBe('20020003'); // server unavailable
        await over.client.closedPromise;
      }
      expect(await authentications()).toBe(1); // none of the three was authenticated
      a.client.end();
    } finally {
      await tb.stop();
    }
  });
});

describe('maxSessions', () => {
  it('a new persistent session over the limit is refused; resuming, clean sessions and replacing are not', async () => {
    await withBroker((c) => {
      c.limits.maxSessions = 2;
    }, async (tb) => {
      const open: RawClient[] = [];
      for (const id of ['ms-a', 'ms-b']) {
        const r = await connack(tb.port, connect311(id, 0x00));
        expect(r.ack).toBe('20020000');
        open.push(r.client);
      }
      const v3 = await connack(tb.port, connect311('ms-c', 0x00));
      expect(v3.ack).toBe('20020003'); // 3.1.1: server unavailable
      const v5 = await connack(tb.port, connect5('ms-d', 0x02, hex('11 0000003c'))); // Session Expiry 60 s
      expect(v5.ack).toBe('2003009700'); // quota exceeded
      const clean = await connack(tb.port, connect5('ms-e', 0x02)); // expiry 0: not persistent
      expect(clean.ack?.slice(0, 8)).toBe('20' + clean.ack!.slice(2, 4) + '0000');
      open[0]!.send('e000');
      await open[0]!.closedPromise;
      const resumed = await connack(tb.port, connect311('ms-a', 0x00));
      expect(resumed.ack).toBe('20020100'); // session present: resuming does not need room
      // ms-b replaces its persistent session with a clean one: that frees a place
      open[1]!.end();
      const replaced = await connack(tb.port, connect311('ms-b', 0x02));
      expect(replaced.ack).toBe('20020000');
      const now = await connack(tb.port, connect5('ms-d', 0x02, hex('11 0000003c')));
      expect(now.ack?.slice(0, 8)).toBe('20' + now.ack!.slice(2, 4) + '0000');
      for (const c of [clean, resumed, replaced, now]) c.client.end();
    });
  });
});

describe('maxSubscriptionsPerClient', () => {
  it('filters beyond the limit get 0x80 (3.1.1) or 0x97 (v5); replacing one does not count', async () => {
    await withBroker((c) => {
      c.limits.maxSubscriptionsPerClient = 2;
    }, async (tb) => {
      const v3 = (await connack(tb.port, connect311('sq-3'))).client;
      v3.send(frame(0x82, '0001', str('a'), '00', str('b'), '00', str('c'), '00'));
      expect(await v3.packetHex()).toBe('9005' + '0001' + '000080');
      v3.send(subscribe(2, 'a', 1)); // replaces "a"
      expect(await v3.packetHex()).toBe('9003000201');
      v3.send(subscribe(3, 'c', 0));
      expect(await v3.packetHex()).toBe('9003000380');
      const v5 = (await connack(tb.port, connect5('sq-5'))).client;
      v5.send(frame(0x82, '0001', '00', str('a'), '00', str('b'), '00', str('c'), '00'));
      expect(await v5.packetHex()).toBe('9006' + '0001' + '00' + '000097');
      v3.end();
      v5.end();
    });
  });
});

describe('maxRetainedBytes', () => {
  it('a retained message over the budget is delivered live but not kept, and counted', async () => {
    // One message here counts 209 bytes: 6 payload + 3 topic + 200 per-message overhead.
    await withBroker((c) => {
      c.limits.maxRetainedBytes = 300;
    }, async (tb) => {
      const watcher = (await connack(tb.port, connect311('rb-watch'))).client;
      watcher.send(subscribe(1, 'r/#', 0));
      expect(await watcher.packetHex()).toBe('9003000100');
      const pub = (await connack(tb.port, connect311('rb-pub'))).client;
      pub.send(publish('r/a', 'aaaaaa', 0, 0, true)); // 209 bytes: kept
      pub.send(publish('r/b', 'bbbbbb', 0, 0, true)); // 209 more: over 300, not kept
      expect(await watcher.packetHex()).toBe('300b' + '0003722f61' + '616161616161');
      expect(await watcher.packetHex()).toBe('300b' + '0003722f62' + '626262626262'); // still delivered live
      expect(tb.broker.retained.bytes).toBe(209);
      expect(await tb.broker.metrics.registry.getSingleMetricAsString('enclave_broker_retained_not_stored_total')).toMatch(/ 1$/m);

      const late = (await connack(tb.port, connect311('rb-late'))).client;
      late.send(subscribe(1, 'r/#', 0));
      expect(await late.packetHex()).toBe('9003000100');
      expect(await late.packetHex()).toBe('310b' + '0003722f61' + '616161616161'); // only r/a, retain flag set
      late.send('c000');
      expect(await late.packetHex()).toBe('d000');

      // A replacement that does not fit removes the superseded value instead of serving it as current.
      pub.send(publish('r/a', 'x'.repeat(100), 0, 0, true)); // 303 bytes
      expect(await watcher.packetHex()).toBe('3069' + '0003722f61' + '78'.repeat(100));
      expect(tb.broker.retained.bytes).toBe(0);
      const later = (await connack(tb.port, connect311('rb-later'))).client;
      later.send(subscribe(1, 'r/#', 0));
      expect(await later.packetHex()).toBe('9003000100');
      later.send('c000');
      expect(await later.packetHex()).toBe('d000');
      for (const c of [watcher, pub, late, later]) c.end();
    });
  });

  it('counts every byte a retained message holds: 1,000 one-byte payloads under 200-byte topics do not fit in 64 KiB', async () => {
    await withBroker((c) => {
      c.limits.maxRetainedBytes = 64 * 1024;
    }, async (tb) => {
      const pub = (await connack(tb.port, connect311('rb-topics'))).client;
      const prefix = `long/${'t'.repeat(190)}/`;
      pub.send(Buffer.concat(Array.from({ length: 1000 }, (_, i) => publish(`${prefix}${String(i).padStart(4, '0')}`, 'v', 0, 0, true))));
      pub.send('c000');
      expect(await pub.packetHex()).toBe('d000');
      const reader = (await connack(tb.port, connect311('rb-reader'))).client;
      reader.send(subscribe(1, 'long/#', 0));
      expect(await reader.packetHex()).toBe('9003000100');
      reader.send('c000');
      let retained = 0;
      for (let p = await reader.packetHex(); p !== 'd000' && p !== undefined; p = await reader.packetHex()) retained++;
      // 65,536 / (1 + 200 + 200 overhead) = 163. Counting payload only, all 1,000 were kept (~400 KB held).
      expect(retained).toBe(Math.floor(64 * 1024 / (1 + 200 + 200)));
      expect(tb.broker.retained.bytes).toBeLessThanOrEqual(64 * 1024);
      pub.end();
      reader.end();
    });
  });
});
