// examples/auth-schemas work as documented, on the real databases: seed 001's role model with
// PostgreSQL queries alone, and seed 003's EMQX 4 MySQL tables with the default queries.
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthHook } from '../../../broker/auth/hook.ts';
import { repoRoot } from '../../support/paths.ts';
import { world } from '../../support/world.ts';
import { attempt, chainOf, clientOf, pub, sub } from '../../unit/auth/helpers.ts';

const examples = join(repoRoot, 'examples', 'auth-schemas');
const read = (p: string): Promise<string> => readFile(join(examples, p), 'utf8');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'auth-schemas-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function loginAs(hook: AuthHook, username: string, password: string, clientId: string, peerHost = '10.0.0.9') {
  const a = attempt({ username, password, clientId, peerHost });
  const r = await hook.authenticate(a);
  return clientOf(a, r);
}

describe('postgres-role-model (seed 001)', () => {
  let hook: AuthHook;
  beforeAll(async () => {
    const info = world().postgres;
    const admin = new pg.Client({ host: info.host, port: info.port, user: info.user, password: info.password, database: info.database });
    await admin.connect();
    await admin.query('DROP DATABASE IF EXISTS auth_role_model');
    await admin.query('CREATE DATABASE auth_role_model');
    await admin.end();
    const db = new pg.Client({ host: info.host, port: info.port, user: info.user, password: info.password, database: 'auth_role_model' });
    await db.connect();
    await db.query(await read('postgres-role-model/schema.sql'));
    await db.query(await read('postgres-role-model/seed-001.sql'));
    await db.end();
    await writeFile(join(dir, 'pg-password'), info.password);
    hook = (
      await chainOf({
        db: {
          type: 'postgres', host: info.host, port: info.port, database: 'auth_role_model', username: info.user, passwordFile: join(dir, 'pg-password'),
          passwordHash: { algorithm: 'bcrypt' },
          authQuery: (await read('postgres-role-model/auth-query.sql')).trim(),
          aclQuery: (await read('postgres-role-model/acl-query.sql')).trim(),
        },
      })
    ).hook;
  });
  afterAll(async () => {
    await hook?.close();
  });

  it('passwords and the superuser flag', async () => {
    expect(await hook.authenticate(attempt({ username: 'admin', password: 'admin-secret' }))).toMatchObject({ outcome: 'allow', superuser: true });
    expect(await hook.authenticate(attempt({ username: 'frontendclient', password: 'frontend-secret' }))).toMatchObject({ outcome: 'allow', superuser: false });
    expect(await hook.authenticate(attempt({ username: 'frontendclient', password: 'admin-secret' }))).toMatchObject({ outcome: 'deny', reason: 'bad-credentials' });
  });

  it('the scenario: superuser anything; frontend publishes its own status only; backend subscribes to all statuses only', async () => {
    const admin = await loginAs(hook, 'admin', 'admin-secret', 'admin-1');
    const fe = await loginAs(hook, 'frontendclient', 'frontend-secret', 'fe-17');
    const be = await loginAs(hook, 'backendservice', 'backend-secret', 'be-1');
    const worker = await loginAs(hook, 'worker', 'worker-secret', 'w-1');
    const cases: [string, typeof fe, ReturnType<typeof pub>, boolean][] = [
      ['superuser publishes anywhere', admin, pub('anything/at/all', 2, true), true],
      ['superuser subscribes to #', admin, sub('#'), true],
      ['frontend: own status', fe, pub('topic/fe-17/status', 1), true],
      ['frontend: own status, retained allowed', fe, pub('topic/fe-17/status', 0, true), true],
      ['frontend: QoS 2 not granted', fe, pub('topic/fe-17/status', 2), false],
      ["frontend: another client's status", fe, pub('topic/fe-18/status'), false],
      ['frontend: elsewhere', fe, pub('topic/fe-17/other'), false],
      ['frontend: may not subscribe', fe, sub('topic/+/status'), false],
      ['backend: all statuses', be, sub('topic/+/status', 2), true],
      ['backend: one status', be, sub('topic/fe-17/status'), true],
      ['backend: broader filter', be, sub('topic/#'), false],
      ['backend: may not publish', be, pub('topic/be-1/status'), false],
      ['backend: no shared subscription', be, sub('$share/g/topic/+/status'), false],
      ['worker: shared in its group', worker, sub('$share/backend/jobs/#', 1), true],
      ['worker: shared in another group', worker, sub('$share/other/jobs/#'), false],
      ['worker: plain subscription', worker, sub('jobs/a', 1), true],
      ['worker: QoS 2 not granted', worker, sub('jobs/a', 2), false],
    ];
    for (const [what, c, req, want] of cases) expect({ what, allowed: await hook.authorize(c, req) }).toEqual({ what, allowed: want });
  });

  it('a frontend client id with wildcards gets nothing', async () => {
    const fe = await loginAs(hook, 'frontendclient', 'frontend-secret', '#');
    expect(await hook.authorize(fe, pub('topic/#/status'))).toBe(false);
    expect(await hook.authorize(fe, pub('topic/x/status'))).toBe(false);
  });
});

describe('mysql-emqx4 (seed 003) with the default queries', () => {
  let hook: AuthHook;
  beforeAll(async () => {
    const info = world().mariadb;
    const c = await mysql.createConnection({ host: info.host, port: info.port, user: info.user, password: info.password, multipleStatements: true });
    await c.query('DROP DATABASE IF EXISTS auth_emqx4_example; CREATE DATABASE auth_emqx4_example; USE auth_emqx4_example;');
    await c.query(await read('mysql-emqx4/schema.sql'));
    await c.query(await read('mysql-emqx4/seed-003.sql'));
    await c.end();
    await writeFile(join(dir, 'my-password'), info.password);
    hook = (
      await chainOf({
        db: {
          type: 'mysql', host: info.host, port: info.port, database: 'auth_emqx4_example', username: info.user, passwordFile: join(dir, 'my-password'),
          passwordHash: { algorithm: 'sha256', saltPosition: 'disable' },
        },
      })
    ).hook;
  });
  afterAll(async () => {
    await hook?.close();
  });

  it('emqx / public; $all denied $SYS/#; the IP-scoped allow; /smarthome/%c/temperature', async () => {
    expect(await hook.authenticate(attempt({ username: 'emqx', password: 'nope' }))).toMatchObject({ outcome: 'deny' });
    const remote = await loginAs(hook, 'emqx', 'public', 'kitchen');
    const local = await loginAs(hook, 'emqx', 'public', 'local-1', '127.0.0.1');
    expect(await hook.authorize(remote, sub('$SYS/brokers/+/uptime'))).toBe(false);
    expect(await hook.authorize(remote, sub('#'))).toBe(false);
    expect(await hook.authorize(remote, pub('$SYS/x'))).toBe(false);
    expect(await hook.authorize(local, pub('$SYS/x'))).toBe(true);
    expect(await hook.authorize(remote, pub('home/lights'))).toBe(true);
    expect(await hook.authorize(remote, sub('/smarthome/kitchen/temperature'))).toBe(true);
    expect(await hook.authorize(remote, sub('/smarthome/garage/temperature'))).toBe(false);
  });
});
