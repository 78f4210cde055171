// The one data set every auth backend is loaded with (same users, same rules), and the code that
// loads it into each real backend: PostgreSQL and MariaDB tables in seed 003's EMQX 4 shape, Redis
// hashes, a builtin users file, an HTTP auth service on 127.0.0.1, JWTs signed with jose, and
// client certificates made with openssl. Each factory returns a ConformanceFixture.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import type { AuthSourceConfig, PasswordHashConfig } from '../../../broker/auth/config.ts';
import { hashPassword } from '../../../broker/auth/password.ts';
import type { DatabaseInfo } from '../../support/databases.ts';
import { createTestPki, type AttemptInput } from '../../unit/auth/helpers.ts';

export type UserName = 'alice' | 'admin' | 'emqx';

export const hashConfig: PasswordHashConfig = { algorithm: 'sha256', saltPosition: 'prefix' };

/** Users of the shared data set. `emqx`/`public` is seed 003's sample row (sha256, no salt). */
export const people: Record<UserName, { password: string; salt: string; superuser: boolean }> = {
  alice: { password: 'alice-pw', salt: 's4lt', superuser: false },
  admin: { password: 'admin-pw', salt: 'adm1n', superuser: true },
  emqx: { password: 'public', salt: '', superuser: false },
};

export const seed003EmqxHash = 'efa1f375d76194fa51a3556a97e641e61685f914d446979da50a551a4333ffd7';

/** alice's rules, allow-only (Redis cannot say deny): everything else falls to noMatch = deny. */
export const aliceRules = [
  { permission: 'allow', action: 'publish', topic: 'topic/${clientid}/status' },
  { permission: 'allow', action: 'subscribe', topic: 'topic/+/status' },
] as const;

export interface ConformanceFixture {
  sources: Record<string, AuthSourceConfig>;
  authn: string[];
  authz: string[];
  good(user: UserName, clientId: string): AttemptInput;
  wrong(user: UserName, clientId: string): AttemptInput;
  /** `user`'s valid credential presented under another username (identity injection). */
  asUsername(user: UserName, username: string, clientId: string): AttemptInput;
  /** Row-level truth: rows/keys in the backend, to prove hostile input changed nothing. */
  rowCount?(): Promise<number>;
  /** Called once with every (user, client id) the suite will use (JWT signs its tokens here). */
  prepare?(pairs: [UserName, string][]): Promise<void>;
  close(): Promise<void>;
}

const passwordFixture = (extra: Partial<ConformanceFixture> & Pick<ConformanceFixture, 'sources' | 'close'>): ConformanceFixture => ({
  authn: Object.keys(extra.sources),
  authz: Object.keys(extra.sources),
  good: (user, clientId) => ({ username: user, password: people[user].password, clientId }),
  wrong: (user, clientId) => ({ username: user, password: `${people[user].password}x`, clientId }),
  asUsername: (user, username, clientId) => ({ username, password: people[user].password, clientId }),
  ...extra,
});

async function storedHash(user: UserName): Promise<string> {
  return user === 'emqx' ? seed003EmqxHash : hashPassword(hashConfig, people[user].password, people[user].salt);
}

async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `auth-${prefix}-`));
}

// ---- SQL (seed 003's EMQX 4 tables, as they are) --------------------------------------------

export const emqx4Tables = {
  postgres: [
    `CREATE TABLE mqtt_user (id serial PRIMARY KEY, username varchar(100) UNIQUE, password varchar(100), salt varchar(35),
       is_superuser smallint DEFAULT 0, created timestamp DEFAULT now())`,
    `CREATE TABLE mqtt_acl (id serial PRIMARY KEY, allow int, ipaddr varchar(60), username varchar(100), clientid varchar(100),
       access int NOT NULL, topic varchar(100) NOT NULL DEFAULT '')`,
  ],
  mysql: [
    `CREATE TABLE mqtt_user (id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, username varchar(100) UNIQUE, password varchar(100),
       salt varchar(35), is_superuser tinyint(1) DEFAULT 0, created datetime DEFAULT NULL)`,
    `CREATE TABLE mqtt_acl (id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, allow int(1) DEFAULT 1, ipaddr varchar(60),
       username varchar(100), clientid varchar(100), access int(2) NOT NULL, topic varchar(100) NOT NULL DEFAULT '')`,
  ],
};

/** Runs statements as the superuser in a fresh database `db`; returns a query function on it. */
export interface SqlAdmin {
  query(sql: string, values?: unknown[]): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export async function sqlAdmin(kind: 'postgres' | 'mysql', info: DatabaseInfo, db: string): Promise<SqlAdmin> {
  if (kind === 'postgres') {
    const admin = new pg.Client({ host: info.host, port: info.port, user: info.user, password: info.password, database: info.database });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${db}`);
    await admin.query(`CREATE DATABASE ${db}`);
    await admin.end();
    const c = new pg.Client({ host: info.host, port: info.port, user: info.user, password: info.password, database: db });
    await c.connect();
    return { query: async (sql, values) => (await c.query(sql, values)).rows as Record<string, unknown>[], close: () => c.end() };
  }
  const c = await mysql.createConnection({ host: info.host, port: info.port, user: info.user, password: info.password, multipleStatements: false });
  await c.query(`DROP DATABASE IF EXISTS ${db}`);
  await c.query(`CREATE DATABASE ${db}`);
  await c.query(`USE ${db}`);
  return { query: async (sql, values) => (await c.query(sql, values))[0] as Record<string, unknown>[], close: () => c.end() };
}

export async function sqlFixture(kind: 'postgres' | 'mysql', info: DatabaseInfo, db: string, extra: Partial<AuthSourceConfig> = {}): Promise<ConformanceFixture> {
  const admin = await sqlAdmin(kind, info, db);
  for (const stmt of emqx4Tables[kind]) await admin.query(stmt);
  const p = kind === 'postgres' ? (i: number) => `$${i}` : () => '?';
  for (const user of Object.keys(people) as UserName[]) {
    await admin.query(`INSERT INTO mqtt_user (username, password, salt, is_superuser) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)})`, [
      user, await storedHash(user), people[user].salt, people[user].superuser ? 1 : 0,
    ]);
  }
  await admin.query(`INSERT INTO mqtt_acl (allow, username, access, topic) VALUES (1, 'alice', 2, 'topic/%c/status'), (1, 'alice', 1, 'topic/+/status')`);
  const dir = await tempDir(kind);
  await writeFile(join(dir, 'password'), `${info.password}\n`);
  return passwordFixture({
    sources: {
      [kind]: { type: kind, host: info.host, port: info.port, database: db, username: info.user, passwordFile: join(dir, 'password'), passwordHash: hashConfig, timeoutMs: 3000, ...extra } as AuthSourceConfig,
    },
    rowCount: async () => {
      const [u] = await admin.query('SELECT count(*) AS n FROM mqtt_user');
      const [a] = await admin.query('SELECT count(*) AS n FROM mqtt_acl');
      return Number(u?.n) + Number(a?.n);
    },
    close: async () => {
      await admin.close();
      await rm(dir, { recursive: true, force: true });
    },
  });
}

// ---- Redis -------------------------------------------------------------------------------------

export async function redisFixture(info: DatabaseInfo, db: number): Promise<ConformanceFixture> {
  const r = new Redis({ host: info.host, port: info.port, password: info.password, db });
  await r.flushdb();
  await r.hset('mqtt_user:alice', { password_hash: await storedHash('alice'), salt: people.alice.salt });
  await r.hset('mqtt_user:admin', { password_hash: await storedHash('admin'), salt: people.admin.salt, is_superuser: '1' });
  await r.hset('mqtt_user:emqx', { password: seed003EmqxHash }); // EMQX 4 field name
  await r.hset('mqtt_acl:alice', { 'topic/${clientid}/status': 'publish', 'topic/+/status': '1' });
  const dir = await tempDir('redis');
  await writeFile(join(dir, 'password'), info.password);
  return passwordFixture({
    sources: { redis: { type: 'redis', host: info.host, port: info.port, db, passwordFile: join(dir, 'password'), passwordHash: hashConfig, timeoutMs: 3000 } },
    rowCount: () => r.dbsize(),
    close: async () => {
      r.disconnect();
      await rm(dir, { recursive: true, force: true });
    },
  });
}

// ---- builtin file --------------------------------------------------------------------------------

export async function builtinData(): Promise<string> {
  return stringify({
    users: await Promise.all(
      (Object.keys(people) as UserName[]).map(async (u) => ({ username: u, password_hash: await storedHash(u), salt: people[u].salt, is_superuser: people[u].superuser })),
    ),
    acl: aliceRules.map((r) => ({ ...r, username: 'alice' })),
  });
}

export async function builtinFixture(): Promise<ConformanceFixture> {
  const dir = await tempDir('builtin');
  await writeFile(join(dir, 'users.yaml'), await builtinData());
  return passwordFixture({
    sources: { file: { type: 'builtin', dataFile: join(dir, 'users.yaml'), passwordHash: hashConfig } },
    close: () => rm(dir, { recursive: true, force: true }),
  });
}

// ---- HTTP auth service ---------------------------------------------------------------------------

function body(req: IncomingMessage): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    let s = '';
    req.on('data', (c: Buffer) => (s += c.toString()));
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(s))));
    req.on('error', reject);
  });
}

/** The tenant's own auth service: plain comparisons in its own code, form-encoded requests. */
export async function httpFixture(): Promise<ConformanceFixture & { server: Server; requests: Record<string, string>[] }> {
  const dir = await tempDir('http');
  await writeFile(join(dir, 'token'), 'service-token-123\n');
  const requests: Record<string, string>[] = [];
  const server = createServer((req, res) => {
    void body(req).then((b) => {
      requests.push({ ...b, authorization: req.headers.authorization ?? '' });
      if (req.headers.authorization !== 'Bearer service-token-123') {
        res.statusCode = 401;
        res.end();
        return;
      }
      res.setHeader('content-type', 'application/json');
      if (req.url === '/mqtt/auth') {
        const user = people[b.username as UserName] as (typeof people)[UserName] | undefined;
        if (!user || !Object.hasOwn(people, b.username ?? '')) res.end(JSON.stringify({ result: 'ignore' }));
        else if (user.password !== b.password) res.end(JSON.stringify({ result: 'deny' }));
        else if (user.superuser) res.end(JSON.stringify({ result: 'allow', is_superuser: true }));
        else {
          res.statusCode = 204;
          res.end();
        }
      } else if (req.url === '/mqtt/acl') {
        const own = `topic/${b.clientid}/status`;
        const safeId = b.clientid !== undefined && !/[+#/]/.test(b.clientid);
        const allowed =
          b.username === 'alice' &&
          ((b.action === 'publish' && safeId && b.topic === own) ||
            (b.action === 'subscribe' && /^topic\/[^/#]+\/status$/.test(b.topic ?? '')));
        res.end(JSON.stringify({ result: allowed ? 'allow' : 'ignore' }));
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    ...passwordFixture({
      sources: {
        svc: {
          type: 'http', method: 'POST', bodyFormat: 'form', url: `${url}/mqtt/auth`, aclUrl: `${url}/mqtt/acl`,
          bearerTokenFile: join(dir, 'token'), timeoutMs: 3000,
        },
      },
      close: async () => {
        await new Promise((r) => server.close(r));
        await rm(dir, { recursive: true, force: true });
      },
    }),
    server,
    requests,
  };
}

// ---- JWT -----------------------------------------------------------------------------------------

export async function jwtFixture(): Promise<ConformanceFixture> {
  const dir = await tempDir('jwt');
  const secret = 'jwt-conformance-secret-0123456789abcdef';
  await writeFile(join(dir, 'secret'), secret);
  const sign = (claims: Record<string, unknown>, key = secret): Promise<string> =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer('enclave-test').setExpirationTime('10m').sign(Buffer.from(key));
  const token = (user: UserName, clientId: string, key?: string): Promise<string> =>
    sign({ username: user, clientid: clientId, is_superuser: people[user].superuser, ...(user === 'alice' ? { acl: aliceRules } : {}) }, key);
  // Tokens are made ahead (good() is synchronous): sign lazily through a small cache per (user, clientId, key).
  const made = new Map<string, string>();
  const pre = async (user: UserName, clientId: string, key?: string): Promise<void> => {
    made.set(`${user}|${clientId}|${key ?? ''}`, await token(user, clientId, key));
  };
  const get = (user: UserName, clientId: string, key?: string): string => {
    const t = made.get(`${user}|${clientId}|${key ?? ''}`);
    if (t === undefined) throw new Error(`jwt fixture: no token prepared for ${user}/${clientId}`);
    return t;
  };
  return {
    sources: {
      jwt: { type: 'jwt', from: 'password', secretFile: join(dir, 'secret'), issuer: 'enclave-test', verifyClaims: { clientid: '${clientid}', username: '${username}' } },
    },
    authn: ['jwt'],
    authz: [],
    good: (user, clientId) => ({ username: user, password: get(user, clientId), clientId }),
    wrong: (user, clientId) => ({ username: user, password: get(user, clientId, 'another-secret-another-secret-xx'), clientId }),
    asUsername: (user, username, clientId) => ({ username, password: get(user, clientId), clientId }),
    close: () => rm(dir, { recursive: true, force: true }),
    prepare: async (pairs: [UserName, string][]) => {
      for (const [u, c] of pairs) {
        await pre(u, c);
        await pre(u, c, 'another-secret-another-secret-xx');
      }
    },
  };
}

// ---- x509 ----------------------------------------------------------------------------------------

export async function x509Fixture(): Promise<ConformanceFixture> {
  const dir = await tempDir('x509');
  const pki = await createTestPki(dir);
  const certs = new Map<UserName, Awaited<ReturnType<typeof pki.issue>>>();
  for (const u of Object.keys(people) as UserName[]) certs.set(u, await pki.issue(u));
  await writeFile(join(dir, 'acl.yaml'), stringify({ acl: aliceRules.map((r) => ({ ...r, username: 'alice' })) }));
  const cert = (u: UserName) => certs.get(u)!.verified;
  return {
    sources: {
      cert: { type: 'x509', identityFrom: 'cn', superusers: ['admin'] },
      acl: { type: 'builtin', dataFile: join(dir, 'acl.yaml'), passwordHash: hashConfig },
    },
    authn: ['cert'],
    authz: ['acl'],
    good: (user, clientId) => ({ username: user, certificate: cert(user), clientId }),
    // A valid certificate presented for another identity.
    wrong: (user, clientId) => ({ username: user === 'alice' ? 'admin' : 'alice', certificate: cert(user), clientId }),
    asUsername: (user, username, clientId) => ({ username, certificate: cert(user), clientId }),
    close: () => rm(dir, { recursive: true, force: true }),
  };
}
