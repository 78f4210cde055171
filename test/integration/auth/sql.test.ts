// PostgreSQL and MariaDB specifics, on the real databases: seed 003's EMQX 4 sample ACL rows under
// the default query, the EMQX 5 table shape under custom queries, a superuser query, a database
// that is down at CONNECT time, and credential files rotated while the chain runs.
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthSourceConfig } from '../../../broker/auth/config.ts';
import { hashPassword } from '../../../broker/auth/password.ts';
import { freePort } from '../../support/process.ts';
import { world } from '../../support/world.ts';
import { attempt, chainOf, clientOf, pub, sub } from '../../unit/auth/helpers.ts';
import { emqx4Tables, hashConfig, seed003EmqxHash, sqlAdmin, type SqlAdmin } from './fixtures.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'auth-sql-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

for (const kind of ['postgres', 'mysql'] as const) {
  describe(`${kind}`, () => {
    const info = () => (kind === 'postgres' ? world().postgres : world().mariadb);
    const p = kind === 'postgres' ? (i: number) => `$${i}` : () => '?';
    let admin4: SqlAdmin;
    let admin5: SqlAdmin;
    let passwordFile: string;
    const source = (db: string, extra: Record<string, unknown> = {}): AuthSourceConfig =>
      ({ type: kind, host: info().host, port: info().port, database: db, username: info().user, passwordFile, passwordHash: hashConfig, timeoutMs: 2000, ...extra });

    beforeAll(async () => {
      passwordFile = join(dir, `${kind}-password`);
      await writeFile(passwordFile, info().password);
      // Seed 003: EMQX 4 tables and EMQX's shipped sample rows, in id order.
      admin4 = await sqlAdmin(kind, info(), 'auth_seed003');
      for (const stmt of emqx4Tables[kind]) await admin4.query(stmt);
      await admin4.query(`INSERT INTO mqtt_user (username, password, salt, is_superuser) VALUES ('emqx', ${p(1)}, NULL, 0), ('dashboard', ${p(2)}, '', 0), ('root', ${p(3)}, '', 1)`, [
        seed003EmqxHash, seed003EmqxHash, seed003EmqxHash,
      ]);
      await admin4.query(`INSERT INTO mqtt_acl (allow, ipaddr, username, clientid, access, topic) VALUES
        (1, NULL, '$all', NULL, 2, '#'),
        (0, NULL, '$all', NULL, 1, '$SYS/#'),
        (0, NULL, '$all', NULL, 1, 'eq #'),
        (1, '127.0.0.1', NULL, NULL, 2, '$SYS/#'),
        (1, '127.0.0.1', NULL, NULL, 2, '#'),
        (1, NULL, 'dashboard', NULL, 1, '$SYS/#'),
        (1, NULL, '$all', NULL, 3, '/smarthome/%c/temperature')`);
      // EMQX 5 documented shape.
      admin5 = await sqlAdmin(kind, info(), 'auth_emqx5');
      const bool = kind === 'postgres' ? 'boolean' : 'tinyint(1)';
      await admin5.query(`CREATE TABLE mqtt_user (id ${kind === 'postgres' ? 'serial' : 'int AUTO_INCREMENT'} PRIMARY KEY, username varchar(100) UNIQUE,
        password_hash varchar(100), salt varchar(35), is_superuser ${bool} DEFAULT false)`);
      await admin5.query(`CREATE TABLE mqtt_acl (id ${kind === 'postgres' ? 'serial' : 'int AUTO_INCREMENT'} PRIMARY KEY, ipaddress varchar(60), username varchar(100),
        clientid varchar(100), action varchar(9) NOT NULL, permission varchar(5) NOT NULL, topic varchar(100) NOT NULL, qos smallint, retain smallint)`);
      await admin5.query(`INSERT INTO mqtt_user (username, password_hash, salt, is_superuser) VALUES ('dev', ${p(1)}, 'pep', false), ('ops', ${p(2)}, 'x', true)`, [
        await hashPassword({ algorithm: 'pbkdf2', macFun: 'sha256', iterations: 1000 }, 'dev-pw', 'pep'),
        await hashPassword({ algorithm: 'pbkdf2', macFun: 'sha256', iterations: 1000 }, 'ops-pw', 'x'),
      ]);
      await admin5.query(`INSERT INTO mqtt_acl (username, action, permission, topic, qos, retain) VALUES
        ('dev', 'publish', 'deny', 'dev/\${clientid}/admin', NULL, NULL),
        ('dev', 'publish', 'allow', 'dev/\${clientid}/#', 1, 0),
        ('dev', 'subscribe', 'allow', 'cmd/\${username}', NULL, NULL)`);
    });
    afterAll(async () => {
      await admin4?.close();
      await admin5?.close();
    });

    it("seed 003's sample ACL under the default query", async () => {
      const { hook } = await chainOf({ db: source('auth_seed003') });
      const login = async (username: string, peerHost: string, clientId = 'c1') => {
        const a = attempt({ username, password: 'public', peerHost, clientId });
        return clientOf(a, await hook.authenticate(a));
      };
      const remote = await login('emqx', '10.0.0.5', 'sensor-1');
      const local = await login('emqx', '127.0.0.1');
      const dashboard = await login('dashboard', '10.0.0.6');
      const cases: [string, typeof remote, ReturnType<typeof pub>, boolean][] = [
        ['$all may publish anything', remote, pub('a/b'), true],
        ['$all denied subscribe $SYS/#', remote, sub('$SYS/brokers'), false],
        ['$all denied the literal filter #', remote, sub('#'), false],
        ['remote may not publish $SYS', remote, pub('$SYS/x'), false],
        ['127.0.0.1 may publish $SYS', local, pub('$SYS/x'), true],
        ['dashboard: the $all deny comes first', dashboard, sub('$SYS/brokers'), false],
        ['own temperature (%c)', remote, sub('/smarthome/sensor-1/temperature'), true],
        ["another client's temperature", remote, sub('/smarthome/sensor-2/temperature'), false],
      ];
      for (const [what, c, req, want] of cases) expect({ what, allowed: await hook.authorize(c, req) }).toEqual({ what, allowed: want });
      const root = attempt({ username: 'root', password: 'public' });
      expect(await hook.authenticate(root)).toMatchObject({ outcome: 'allow', superuser: true });
      await hook.close();
    });

    it('EMQX 5 tables with custom queries, pbkdf2 and a superuser query', async () => {
      const { hook } = await chainOf({
        db: source('auth_emqx5', {
          passwordHash: { algorithm: 'pbkdf2', macFun: 'sha256', iterations: 1000 },
          authQuery: 'SELECT password_hash, salt FROM mqtt_user WHERE username = ${username} LIMIT 1',
          superuserQuery: 'SELECT is_superuser FROM mqtt_user WHERE username = ${username} LIMIT 1',
          aclQuery: 'SELECT permission, action, topic, qos, retain FROM mqtt_acl WHERE username = ${username} ORDER BY id',
        }),
      });
      const a = attempt({ username: 'dev', password: 'dev-pw', clientId: 'd1' });
      const r = await hook.authenticate(a);
      expect(r).toMatchObject({ outcome: 'allow', superuser: false });
      expect(await hook.authenticate(attempt({ username: 'ops', password: 'ops-pw' }))).toMatchObject({ outcome: 'allow', superuser: true });
      expect(await hook.authenticate(attempt({ username: 'dev', password: 'DEV-pw' }))).toMatchObject({ outcome: 'deny', reason: 'bad-credentials' });
      const dev = clientOf(a, r);
      expect(await hook.authorize(dev, pub('dev/d1/temp', 1))).toBe(true);
      expect(await hook.authorize(dev, pub('dev/d1/temp', 2))).toBe(false);
      expect(await hook.authorize(dev, pub('dev/d1/temp', 1, true))).toBe(false);
      expect(await hook.authorize(dev, pub('dev/d1/admin', 1))).toBe(false);
      expect(await hook.authorize(dev, sub('cmd/dev'))).toBe(true);
      expect(await hook.authorize(dev, sub('cmd/ops'))).toBe(false);
      await hook.close();
    });

    it('database down at CONNECT: deny (unavailable), fast, reported; ignore policy falls through', async () => {
      const port = await freePort();
      const down = (extra: Record<string, unknown> = {}) => ({ ...source('nowhere'), port, timeoutMs: 1000, ...extra }) as AuthSourceConfig;
      const { hook, logs, registry } = await chainOf({ db: down() });
      const started = Date.now();
      expect(await hook.authenticate(attempt({ username: 'emqx', password: 'public' }))).toMatchObject({ outcome: 'deny', reason: 'unavailable', source: 'db' });
      expect(Date.now() - started).toBeLessThan(3000);
      // While backing off, the next CONNECTs are refused without touching the database.
      expect(await hook.authenticate(attempt({ username: 'emqx', password: 'public' }))).toMatchObject({ outcome: 'deny', reason: 'unavailable' });
      expect(logs.join('')).toContain('auth source failed');
      expect(await registry.getSingleMetricAsString('enclave_auth_decisions_total')).toMatch(/source="db",stage="authn",result="error"} [12]/);
      await hook.close();
      const fallthrough = await chainOf({ db: down({ onBackendFailure: 'ignore' }) }, { allowAnonymous: true });
      expect(await fallthrough.hook.authenticate(attempt({ username: 'emqx', password: 'public' }))).toMatchObject({ outcome: 'allow', source: 'anonymous' });
      await fallthrough.hook.close();
    });

    it('a rotated password file is picked up: the pool reconnects with the new credentials', async () => {
      const rotating = join(dir, `${kind}-rotating`);
      await writeFile(rotating, 'not-the-password');
      const { hook } = await chainOf({ db: source('auth_seed003', { passwordFile: rotating }) });
      const emqx = attempt({ username: 'emqx', password: 'public' });
      expect(await hook.authenticate(emqx)).toMatchObject({ outcome: 'deny', reason: 'unavailable' });
      await writeFile(rotating, `${info().password}\n`);
      await expect.poll(async () => (await hook.authenticate(emqx)).outcome, { timeout: 15_000, interval: 200 }).toBe('allow');
      await hook.close();
    });
  });
}
