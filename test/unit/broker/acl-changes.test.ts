// An ACL that changes takes effect on subscriptions a session already holds (docs/hostile-inputs.md #32):
// on resume of a persistent session, and for connected clients when the auth source reloads its
// data. A real auth chain over a builtin users file that the tests rewrite, bytes on the wire.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthHook } from '../../../broker/auth/hook.ts';
import { RawClient, connectPacket, publish, sleep, startUsersFileBroker, subscribe } from './helpers.ts';
import type { TestBroker, UsersData, UsersFileBroker } from './helpers.ts';

let ub: UsersFileBroker;
let hook: AuthHook;
let tb: TestBroker;

/** alice may use alerts/# and, while `newsAllowed`, news/#; pub may publish anywhere. */
function aclData(newsAllowed: boolean): UsersData {
  const acl = [
    { username: 'alice', permission: 'allow', action: 'all', topic: 'alerts/#' },
    ...(newsAllowed ? [{ username: 'alice', permission: 'allow', action: 'all', topic: 'news/#' }] : []),
    { username: 'pub', permission: 'allow', action: 'publish', topic: '#' },
  ];
  const users = [{ username: 'alice', password_hash: 'alice-pw' }, { username: 'pub', password_hash: 'pub-pw' }];
  return { users, acl };
}

const writeAcl = (newsAllowed: boolean): Promise<void> => ub.write(aclData(newsAllowed));

/** Waits until the chain has read the file (its answer for alice on news/# is `allowed`). */
async function aclInForce(allowed: boolean): Promise<void> {
  const alice = { attempt: { clientId: 'probe', username: 'alice', peerHost: '127.0.0.1', listener: 'default', protocolVersion: 4 as const, certificate: undefined }, superuser: false, acl: undefined };
  for (let i = 0; i < 100; i++) {
    if ((await hook.authorize(alice, { action: 'subscribe', topic: 'news/#', qos: 1, retain: false })) === allowed) return;
    await sleep(20);
  }
  throw new Error(`ACL for news/# never became ${allowed ? 'allow' : 'deny'}`);
}

beforeAll(async () => {
  ub = await startUsersFileBroker('acl-changes', aclData(true));
  tb = ub;
  hook = ub.hook;
});
afterAll(async () => {
  await ub.stop();
});

async function login(clientId: string, username: string, flags: number, sessionPresent = false): Promise<RawClient> {
  const c = await RawClient.connect(tb.port);
  c.send(connectPacket({ level: 4, clientId, username, password: `${username}-pw`, flags }));
  expect(await c.packetHex()).toBe(sessionPresent ? '20020100' : '20020000');
  return c;
}

/** The PINGRESP proves every packet before it was processed (and anything due was written first). */
async function ping(c: RawClient): Promise<void> {
  c.send('c000');
  expect(await c.packetHex()).toBe('d000');
}

describe('a resumed persistent session keeps only what the ACL allows now', () => {
  it('a revoked subscription is gone on reconnect, and what was queued for it is not delivered', async () => {
    await writeAcl(true);
    await aclInForce(true);
    const alice = await login('acl-resume', 'alice', 0x00);
    alice.send(subscribe(1, 'news/#', 1));
    expect(await alice.packetHex()).toBe('9003000101');
    alice.send(subscribe(2, 'alerts/#', 1));
    expect(await alice.packetHex()).toBe('9003000201');
    alice.send('e000');
    await alice.closedPromise;

    const pub = await login('acl-pub', 'pub', 0x02);
    pub.send(publish('news/a', 'N', 1, 1));
    expect(await pub.packetHex()).toBe('40020001');
    pub.send(publish('alerts/a', 'A', 1, 2));
    expect(await pub.packetHex()).toBe('40020002');

    await writeAcl(false);
    await aclInForce(false);
    const back = await login('acl-resume', 'alice', 0x00, true);
    // Only the alert queued while offline arrives; the news one was queued for a revoked subscription.
    expect(await back.packetHex()).toBe('320d' + '0008616c657274732f61' + '0001' + '41');
    back.send('40020001');
    await ping(back);
    // Live: news/b is not delivered, alerts/b (published after it) is.
    pub.send(publish('news/b', 'N', 0));
    pub.send(publish('alerts/b', 'B', 0));
    expect(await back.packetHex()).toBe('300b' + '0008616c657274732f62' + '42');
    back.send('e000');
    pub.end();
  });
});

describe('an auth source reload re-checks the subscriptions of connected clients', () => {
  it('a subscription the reloaded ACL denies is removed; the others keep delivering', async () => {
    await writeAcl(true);
    await aclInForce(true);
    const alice = await login('acl-live', 'alice', 0x02);
    alice.send(subscribe(1, 'news/#', 0));
    expect(await alice.packetHex()).toBe('9003000100');
    alice.send(subscribe(2, 'alerts/#', 0));
    expect(await alice.packetHex()).toBe('9003000200');
    const before = tb.broker.subscriptionCount;

    await writeAcl(false);
    for (let i = 0; i < 100 && tb.broker.subscriptionCount === before; i++) await sleep(20);
    expect(tb.broker.subscriptionCount).toBe(before - 1);

    const pub = await login('acl-pub2', 'pub', 0x02);
    pub.send(publish('news/c', 'N', 0));
    pub.send(publish('alerts/c', 'C', 0));
    expect(await alice.packetHex()).toBe('300b' + '0008616c657274732f63' + '43');
    await ping(alice);
    alice.end();
    pub.end();
  });
});
