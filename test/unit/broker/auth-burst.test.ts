// Bursts of authorization calls: one SUBSCRIBE with many filters, a persistent session with many
// subscriptions resumed, an auth source reload re-checking them. The per-source cap on calls in
// flight (auth/circuit.ts) must make calls wait their turn, never answer "deny" for a local reason.
// A real auth chain over a builtin users file; assertions on SUBACK bytes and delivered messages.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, connectPacket, frame, publish, sleep, startUsersFileBroker, str } from './helpers.ts';
import type { TestBroker, UsersData, UsersFileBroker } from './helpers.ts';

const FILTERS = 200;
let ub: UsersFileBroker;
let tb: TestBroker;

/** The users file; `generation` adds an unrelated user, so a rewrite is a change the source reloads. */
function usersData(generation = 0): UsersData {
  const users = [{ username: 'dev', password_hash: 'dev-pw' }, { username: 'pub', password_hash: 'pub-pw' }, { username: `other-${generation}`, password_hash: 'x' }];
  const acl = [
    { username: 'dev', permission: 'allow', action: 'all', topic: 'dev/#' },
    { username: 'pub', permission: 'allow', action: 'publish', topic: '#' },
  ];
  return { users, acl };
}

const writeUsers = (generation = 0): Promise<void> => ub.write(usersData(generation));

beforeAll(async () => {
  ub = await startUsersFileBroker('auth-burst', usersData());
  tb = ub;
});
afterAll(async () => {
  await ub.stop();
});

async function login(clientId: string, username: string, flags: number): Promise<{ client: RawClient; connack: string | undefined }> {
  const client = await RawClient.connect(tb.port);
  client.send(connectPacket({ level: 4, clientId, username, password: `${username}-pw`, flags }));
  return { client, connack: await client.packetHex() };
}

/** One SUBSCRIBE (3.1.1) with the filters dev/0/t .. dev/N-1/t at QoS 1. */
function subscribeMany(id: number): Buffer {
  const parts: Buffer[] = [Buffer.from([id >> 8, id & 0xff])];
  for (let i = 0; i < FILTERS; i++) parts.push(str(`dev/${i}/t`), Buffer.from([1]));
  return frame(0x82, ...parts);
}

/** Publishes one QoS 0 message to each of the N topics; returns how many `sub` received. */
async function deliveredTo(sub: RawClient): Promise<number> {
  const { client: pub } = await login(`burst-pub-${Math.random()}`, 'pub', 0x02);
  pub.send(Buffer.concat(Array.from({ length: FILTERS }, (_, i) => publish(`dev/${i}/t`, String(i)))));
  pub.send('c000');
  expect(await pub.packetHex()).toBe('d000'); // all routed
  pub.end();
  let got = 0;
  const done = (async () => {
    for (;;) {
      const p = await sub.packet();
      if (p === undefined) return;
      if ((p[0]! & 0xf0) === 0x30) got++;
      if (got === FILTERS) return;
    }
  })();
  await Promise.race([done, sleep(2000)]);
  return got;
}

async function subscribeAuthorizations(): Promise<number> {
  const values = (await tb.broker.metrics.authDecisions.get()).values;
  return values.filter((v) => v.labels.action === 'subscribe').reduce((n, v) => n + v.value, 0);
}

describe('authorization bursts above the per-source in-flight cap', () => {
  it(`one SUBSCRIBE with ${FILTERS} allowed filters: all granted`, async () => {
    const { client, connack } = await login('burst-one', 'dev', 0x02);
    expect(connack).toBe('20020000');
    client.send(subscribeMany(1));
    const suback = await client.packet();
    expect(suback?.subarray(0, 1).toString('hex')).toBe('90');
    expect([...suback!.subarray(-FILTERS)]).toEqual(Array.from({ length: FILTERS }, () => 1));
    expect(await deliveredTo(client)).toBe(FILTERS);
    client.end();
  });

  it(`a resumed persistent session keeps all ${FILTERS} subscriptions, and so does a reload of the auth source`, async () => {
    const first = await login('burst-resume', 'dev', 0x00);
    first.client.send(subscribeMany(1));
    expect([...(await first.client.packet())!.subarray(-FILTERS)].every((c) => c === 1)).toBe(true);
    first.client.end();
    await first.client.closedPromise;
    await sleep(50);

    const back = await login('burst-resume', 'dev', 0x00);
    expect(back.connack).toBe('20020100'); // session present: re-authorized on resume
    expect(await deliveredTo(back.client)).toBe(FILTERS);

    const before = await subscribeAuthorizations();
    await writeUsers(1); // dev's rights unchanged: the source reloads and connected clients are re-checked
    for (let i = 0; i < 100 && (await subscribeAuthorizations()) < before + FILTERS; i++) await sleep(20);
    expect(await subscribeAuthorizations()).toBeGreaterThanOrEqual(before + FILTERS);
    await sleep(50);
    expect(await deliveredTo(back.client)).toBe(FILTERS);
    back.client.end();
  });
});
