// The auth conformance suite (aedes-persistence `abstract.js` style): one function, called once per
// backend with a factory that loads the shared data set (fixtures.ts) into that backend. Every
// backend must give the same decisions for the same users, rules and hostile inputs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthHook } from '../../../broker/auth/hook.ts';
import { attempt, chainOf, clientOf, pub, sub, type AttemptInput } from '../../unit/auth/helpers.ts';
import type { ConformanceFixture, UserName } from './fixtures.ts';

const injections = [
  "alice' OR '1'='1",
  "alice'--",
  "x'; DROP TABLE mqtt_user; --",
  'alice" OR "1"="1',
  'alice\\',
  "'; DELETE FROM mqtt_acl; SELECT '",
];
const hostileClientIds = ['#', '+', 'a/b', "c'; DELETE FROM mqtt_acl; --", 'c1 OR 1=1'];

export function authConformanceSuite(name: string, makeFixture: () => Promise<ConformanceFixture>): void {
  describe(`auth conformance: ${name}`, () => {
    let f: ConformanceFixture;
    let hook: AuthHook;
    let anonymous: AuthHook;
    let rowsBefore: number | undefined;

    beforeAll(async () => {
      f = await makeFixture();
      const pairs: [UserName, string][] = [
        ['alice', 'c1'], ['admin', 'adm'], ['emqx', 'e1'],
        ...hostileClientIds.map((c) => ['alice', c] as [UserName, string]),
      ];
      await f.prepare?.(pairs);
      hook = (await chainOf(f.sources, { authn: f.authn, authz: f.authz })).hook;
      anonymous = (await chainOf(f.sources, { authn: f.authn, authz: f.authz, allowAnonymous: true })).hook;
      rowsBefore = await f.rowCount?.();
    });
    afterAll(async () => {
      await hook?.close();
      await anonymous?.close();
      await f?.close();
    });

    const login = async (input: AttemptInput) => {
      const a = attempt(input);
      return { a, r: await hook.authenticate(a) };
    };

    it('allows alice with her credential; not a superuser', async () => {
      const { r } = await login(f.good('alice', 'c1'));
      expect(r).toMatchObject({ outcome: 'allow', superuser: false });
    });
    it('denies alice with a wrong credential', async () => {
      expect((await login(f.wrong('alice', 'c1'))).r.outcome).toBe('deny');
    });
    it('allows admin as a superuser, who may then do anything', async () => {
      const { a, r } = await login(f.good('admin', 'adm'));
      expect(r).toMatchObject({ outcome: 'allow', superuser: true });
      const c = clientOf(a, r);
      expect(await hook.authorize(c, pub('$SYS/broker/x', 2, true))).toBe(true);
      expect(await hook.authorize(c, sub('#'))).toBe(true);
    });
    it("accepts seed 003's sample user emqx/public", async () => {
      expect((await login(f.good('emqx', 'e1'))).r).toMatchObject({ outcome: 'allow', superuser: false });
    });
    it('unknown user: nobody answers → deny; with allowAnonymous → anonymous allow', async () => {
      const ghost = attempt({ username: 'ghost', password: 'ghost-pw', clientId: 'g1' });
      expect(await hook.authenticate(ghost)).toMatchObject({ outcome: 'deny', reason: 'not-authorized', source: undefined });
      expect(await anonymous.authenticate(ghost)).toMatchObject({ outcome: 'allow', superuser: false, source: 'anonymous' });
    });
    it.each(injections)('identity injection in username %j is denied', async (username) => {
      expect((await login(f.asUsername('alice', username, 'c1'))).r.outcome).toBe('deny');
    });
    it.each(['#', '+', 'alice/#', '+/+'])('wildcard username %j is not a way in', async (username) => {
      expect((await login(f.asUsername('alice', username, 'c1'))).r.outcome).toBe('deny');
    });
    it('oversized credentials are denied without errors', async () => {
      const big = 'A'.repeat(65_535);
      expect((await login({ username: big, password: big, clientId: 'big' })).r.outcome).toBe('deny');
      expect((await login(f.asUsername('alice', big, 'c1'))).r.outcome).toBe('deny');
      // Sources that check a password must refuse a huge one (x509 does not look at passwords).
      const good = f.good('alice', 'c1');
      if (good.password !== undefined) expect((await login({ ...good, password: Buffer.alloc(65_535, 0xff) })).r.outcome).toBe('deny');
    });

    it('alice: own status topic, subscribe to all statuses, nothing else', async () => {
      const { a, r } = await login(f.good('alice', 'c1'));
      const c = clientOf(a, r);
      const cases: [ReturnType<typeof pub>, boolean][] = [
        [pub('topic/c1/status'), true],
        [pub('topic/c1/status', 1), true],
        [pub('topic/c2/status'), false],
        [pub('topic/c1/other'), false],
        [pub('elsewhere'), false],
        [sub('topic/+/status'), true],
        [sub('topic/c7/status'), true],
        [sub('topic/#'), false],
        [sub('#'), false],
        [sub('$SYS/#'), false],
        [pub('topic/+/status'), false],
      ];
      for (const [req, want] of cases) {
        expect({ req, allowed: await hook.authorize(c, req) }).toEqual({ req, allowed: want });
      }
    });
    it.each(hostileClientIds)('client id %j cannot reach beyond its own topic', async (clientId) => {
      const { a, r } = await login(f.good('alice', clientId));
      expect(r.outcome).toBe('allow');
      const c = clientOf(a, r);
      expect(await hook.authorize(c, pub('topic/x/status'))).toBe(false);
      expect(await hook.authorize(c, pub('topic/c1/status'))).toBe(false);
      expect(await hook.authorize(c, sub('topic/#'))).toBe(false);
      const safe = !/[+#/]/.test(clientId);
      expect(await hook.authorize(c, pub(`topic/${clientId}/status`))).toBe(safe);
    });
    it('hostile input changed no rows in the backend', async () => {
      if (rowsBefore === undefined) return;
      expect(await f.rowCount!()).toBe(rowsBefore);
    });
  });
}
