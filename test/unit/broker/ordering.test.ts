// A client that publishes and disconnects at once while the broker is still authorizing (an SQL
// or HTTP source answers asynchronously) must lose nothing: the message is delivered, DISCONNECT
// is honoured (no will), in the order the bytes arrived.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { AuthHook } from '../../../broker/auth/hook.ts';
import { RawClient, connect311, hex, publish, sleep, startTestBroker, subscribe } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

/** Allows everything, but only after a delay, like a database round trip. */
const slowHook: AuthHook = {
  async authenticate() {
    return { outcome: 'allow', superuser: false, acl: undefined, expiresAt: undefined, source: 'slow' };
  },
  async authorize() {
    await sleep(80);
    return true;
  },
  async close() {},
};

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker((c) => {
    c.authorization.chain = [];
    c.authorization.noMatch = 'deny';
  }, slowHook);
});
afterAll(async () => {
  await tb.stop();
});

it('PUBLISH + DISCONNECT + close during async authorization: delivered in order, no will', async () => {
  const sub = await RawClient.connect(tb.port);
  sub.send(connect311('ord-sub'));
  expect(await sub.packetHex()).toBe('20020000');
  sub.send(subscribe(1, 'ord/#', 0));
  expect(await sub.packetHex()).toBe('9003000100');

  const pub = await RawClient.connect(tb.port);
  // CONNECT with a will on ord/will (flags: will flag 0x04 + clean session 0x02)
  const id = Buffer.from('ord-pub');
  const willTopic = Buffer.from('ord/will');
  const body = Buffer.concat([
    hex('00044d5154540406003c'), Buffer.from([0, id.length]), id,
    Buffer.from([0, willTopic.length]), willTopic, hex('00026767'),
  ]);
  pub.send(Buffer.concat([Buffer.from([0x10, body.length]), body]));
  expect(await pub.packetHex()).toBe('20020000');
  pub.socket.end(Buffer.concat([publish('ord/a', 'one'), publish('ord/b', 'two'), hex('e000')]));
  await pub.closedPromise;

  const first = await sub.packet();
  const second = await sub.packet();
  expect(first?.toString('latin1')).toContain('ord/a');
  expect(first?.toString('latin1')).toContain('one');
  expect(second?.toString('latin1')).toContain('ord/b');
  // The will must not follow: DISCONNECT was processed before the close.
  await sleep(300);
  sub.send(hex('c000'));
  expect(await sub.packetHex()).toBe('d000');
  sub.end();
});
