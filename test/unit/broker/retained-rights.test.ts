// A retained message is handed out only while its publisher may still publish it: when the auth
// data changes (or the decision cache TTL passed) the right is asked again before a new subscriber
// gets the message, and a message whose publisher lost the right is removed from the store.
// A real auth chain over a builtin users file; assertions on the bytes subscribers receive.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthHook } from '../../../broker/auth/hook.ts';
import { RawClient, connectPacket, publish, sleep, startUsersFileBroker, subscribe } from './helpers.ts';
import type { TestBroker, UsersData, UsersFileBroker } from './helpers.ts';

let ub: UsersFileBroker;
let hook: AuthHook;
let tb: TestBroker;

/** `reader` may subscribe to everything under r/; `writer` may publish to r/a always and to r/b while `writerOnB`. */
function aclData(writerOnB: boolean): UsersData {
  const users = [{ username: 'reader', password_hash: 'reader-pw' }, { username: 'writer', password_hash: 'writer-pw' }];
  const acl = [
    { username: 'reader', permission: 'allow', action: 'subscribe', topic: 'r/#' },
    { username: 'writer', permission: 'allow', action: 'publish', topic: 'r/a' },
    ...(writerOnB ? [{ username: 'writer', permission: 'allow', action: 'publish', topic: 'r/b' }] : []),
  ];
  return { users, acl };
}

const writeAcl = (writerOnB: boolean): Promise<void> => ub.write(aclData(writerOnB));

beforeAll(async () => {
  ub = await startUsersFileBroker('retained-rights', aclData(true));
  tb = ub;
  hook = ub.hook;
});
afterAll(async () => {
  await ub.stop();
});

async function login(clientId: string, username: string): Promise<RawClient> {
  const c = await RawClient.connect(tb.port);
  c.send(connectPacket({ level: 4, clientId, username, password: `${username}-pw` }));
  expect(await c.packetHex()).toBe('20020000');
  return c;
}

/** Topics of the retained messages a new subscriber to r/# gets. */
async function retainedTopics(clientId: string): Promise<string[]> {
  const c = await login(clientId, 'reader');
  c.send(subscribe(1, 'r/#', 0));
  expect(await c.packetHex()).toBe('9003000100');
  c.send('c000');
  const topics: string[] = [];
  for (let p = await c.packet(); p !== undefined && p[0] !== 0xd0; p = await c.packet()) {
    topics.push(p.subarray(4, 4 + p.readUInt16BE(2)).toString());
  }
  c.end();
  return topics.sort();
}

async function writerMayPublishB(allowed: boolean): Promise<void> {
  const writer = { attempt: { clientId: 'probe', username: 'writer', peerHost: '127.0.0.1', listener: 'default', protocolVersion: 4 as const, certificate: undefined }, superuser: false, acl: undefined };
  for (let i = 0; i < 100; i++) {
    if ((await hook.authorize(writer, { action: 'publish', topic: 'r/b', qos: 0, retain: true })) === allowed) return;
    await sleep(20);
  }
  throw new Error('ACL never changed');
}

describe('retained messages and the rights of their publisher', () => {
  it('a retained message whose publisher lost the right is not handed out, and is removed; the others still are', async () => {
    const writer = await login('rr-writer', 'writer');
    writer.send(publish('r/a', 'A', 0, 0, true));
    writer.send(publish('r/b', 'B', 0, 0, true));
    writer.send('c000');
    expect(await writer.packetHex()).toBe('d000');
    writer.end();
    expect(await retainedTopics('rr-reader-1')).toEqual(['r/a', 'r/b']);

    await writeAcl(false); // writer may no longer publish to r/b
    await writerMayPublishB(false);
    expect(await retainedTopics('rr-reader-2')).toEqual(['r/a']);
    expect(tb.broker.retained.size).toBe(1);

    await writeAcl(true); // the right back does not bring the removed message back
    await writerMayPublishB(true);
    expect(await retainedTopics('rr-reader-3')).toEqual(['r/a']);
  });
});
