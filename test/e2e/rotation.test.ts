// Scenario 6, rotation: change a user's password in the referenced Secret and in a database row,
// and rotate the server certificate (re-issue by changing the TlsCertificate). Clients connected
// before stay connected and keep working, the broker process is not restarted (the config hash
// does not change), new connections need the new password and are served the new certificate.
import { connect as tlsConnect } from 'node:tls';
import bcrypt from 'bcryptjs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl, world } from '../support/world.ts';
import { API, apply, brokerOf, connect, deleteAndWait, eventually, refusal, sleep, startEnclave, subscriber, type Enclave, SECRET_OPT_IN } from './support/harness.ts';

const NS = 'e2e-rotation';
const DB = 'e2e_rotation';
let e: Enclave;

const usersSecret = (password: string) => ({
  apiVersion: 'v1', kind: 'Secret', metadata: { name: 'users', namespace: NS, labels: SECRET_OPT_IN },
  stringData: { 'users.yaml': `users:\n  - username: alice\n    password_hash: '${bcrypt.hashSync(password, 8)}'\nacl:\n  - username: alice\n    permission: allow\n    action: all\n    topic: 'r/#'\n` },
});
const serverCert = (dnsNames: string[]) => ({
  apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'server', namespace: NS },
  spec: { issue: { commonName: 'broker.e2e-rotation', dnsNames, ipAddresses: ['127.0.0.1'] } },
});

/** A client of the test's own database (EMQX 5 `mqtt_user` / `mqtt_acl`, read by the default queries). */
function database(name = DB): pg.Client {
  const info = world().postgres;
  return new pg.Client({ host: info.host, port: info.port, user: info.user, password: info.password, database: name });
}

async function seedDatabase(): Promise<void> {
  const admin = database('postgres');
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB}`);
  await admin.query(`CREATE DATABASE ${DB}`);
  await admin.end();
  const db = database();
  await db.connect();
  await db.query(`CREATE TABLE mqtt_user (id serial PRIMARY KEY, username text UNIQUE NOT NULL, password_hash text NOT NULL, salt text NOT NULL DEFAULT '', is_superuser boolean NOT NULL DEFAULT false)`);
  await db.query(`CREATE TABLE mqtt_acl (id serial PRIMARY KEY, ipaddr text, username text, clientid text, permission text NOT NULL, action text NOT NULL, topic text NOT NULL)`);
  await db.query('INSERT INTO mqtt_user (username, password_hash) VALUES ($1, $2)', ['bob', bcrypt.hashSync('db-old-pw', 8)]);
  await db.query(`INSERT INTO mqtt_acl (username, permission, action, topic) VALUES ('bob', 'allow', 'all', 'db/#')`);
  await db.end();
}

async function setDatabasePassword(username: string, password: string): Promise<number> {
  const db = database();
  await db.connect();
  try {
    const r = await db.query('UPDATE mqtt_user SET password_hash = $1 WHERE username = $2', [bcrypt.hashSync(password, 8), username]);
    return r.rowCount ?? 0;
  } finally {
    await db.end();
  }
}

function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()?.fingerprint256 ?? '');
      s.destroy();
    });
    s.once('error', reject);
  });
}

beforeAll(async () => {
  await seedDatabase();
  const pgInfo = world().postgres;
  e = await startEnclave('rotation', [NS]);
  await apply([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    usersSecret('old-pw'),
    serverCert(['localhost']),
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'auth-db', namespace: NS, labels: SECRET_OPT_IN }, stringData: { username: pgInfo.user, password: pgInfo.password } },
    { apiVersion: API, kind: 'AuthSource', metadata: { name: 'users', namespace: NS }, spec: { type: 'builtin', builtin: { secretRef: { name: 'users', key: 'users.yaml' } }, passwordHash: { algorithm: 'bcrypt' } } },
    {
      apiVersion: API, kind: 'AuthSource', metadata: { name: 'db-users', namespace: NS },
      spec: {
        type: 'postgres', postgres: { host: pgInfo.host, port: pgInfo.port, database: DB, credentialsSecretRef: { name: 'auth-db' } },
        passwordHash: { algorithm: 'bcrypt' }, egress: [{ cidr: '127.0.0.1/32', port: pgInfo.port }],
      },
    },
    {
      apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'broker', namespace: NS },
      spec: {
        listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 1883 }, { name: 'mqtts', protocol: 'mqtts', port: 8883, tlsCertificateRef: { name: 'server' } }],
        authentication: { chain: [{ name: 'users' }, { name: 'db-users' }] }, authorization: { chain: [{ name: 'users' }, { name: 'db-users' }], noMatch: 'deny' },
      },
    },
  ]);
});

afterAll(async () => {
  await deleteAndWait('mqttdeployments.mqtt.enclave.dev', 'broker', NS).catch(() => undefined);
  await e?.stop();
  await kubectl(['delete', 'namespace', NS, '--wait=false', '--ignore-not-found']);
});

describe('credential and certificate rotation', () => {
  it('keeps connected clients, requires the new password and serves the new certificate', async () => {
    const b = await brokerOf(e, NS, 'broker');
    const mqttUrl = `mqtt://127.0.0.1:${b.port('mqtt')}`;
    const mqttsUrl = `mqtts://127.0.0.1:${b.port('mqtts')}`;
    const oldCert = await eventually('mqtts serves the issued certificate', async () => servedFingerprint(b.port('mqtts')));
    const plain = await connect(mqttUrl, { username: 'alice', password: 'old-pw', clientId: 'plain' });
    const secure = await connect(mqttsUrl, { username: 'alice', password: 'old-pw', clientId: 'secure', rejectUnauthorized: false });
    const got = await subscriber(plain, 'r/#');

    await apply([usersSecret('new-pw'), serverCert(['localhost', 'rotated.local'])]);

    await eventually('the new password is accepted', async () => (await refusal(mqttUrl, { username: 'alice', password: 'new-pw' })) === '');
    expect(await refusal(mqttUrl, { username: 'alice', password: 'old-pw' })).toMatch(/Bad user ?name or password|Not authori[sz]ed/i);
    const newCert = await eventually('mqtts serves the re-issued certificate', async () => {
      const f = await servedFingerprint(b.port('mqtts'));
      return f !== oldCert ? f : undefined;
    });
    expect(newCert).not.toBe(oldCert);

    // Same process (no restart), and both earlier connections still carry traffic.
    const now = e.kubelet.brokers().find((x) => x.namespace === b.broker.namespace);
    expect(now?.starts).toBe(1);
    expect(plain.connected && secure.connected).toBe(true);
    await secure.publishAsync('r/after', 'still here', { qos: 1 });
    await eventually('the message over the old TLS connection arrives', async () => got.length > 0);
    expect(got).toEqual(['r/after still here']);
    await plain.endAsync();
    await secure.endAsync();
  });

  it('keeps a connected client when its password row changes in the database; new connections need the new password', async () => {
    const b = await brokerOf(e, NS, 'broker');
    const url = `mqtt://127.0.0.1:${b.port('mqtt')}`;
    const badCredentials = /Bad user ?name or password|Not authori[sz]ed/i;
    expect(await refusal(url, { username: 'bob', password: 'db-new-pw' })).toMatch(badCredentials);
    const kept = await connect(url, { username: 'bob', password: 'db-old-pw', clientId: 'db-kept' });
    const got = await subscriber(kept, 'db/#');
    const closed = new Promise<true>((res) => kept.once('close', () => res(true)));

    // The row is the only thing that changes: no CR, no Secret, nothing the operator sees.
    expect(await setDatabasePassword('bob', 'db-new-pw')).toBe(1);

    // The database is read on every CONNECT: the change holds for the very next connection.
    expect(await refusal(url, { username: 'bob', password: 'db-old-pw' })).toMatch(badCredentials);
    const fresh = await connect(url, { username: 'bob', password: 'db-new-pw', clientId: 'db-fresh' });
    await fresh.publishAsync('db/from-fresh', 'new password', { qos: 1 });
    await kept.publishAsync('db/from-kept', 'old session', { qos: 1 });
    await eventually('both messages reach the client connected with the old password', async () => got.length === 2);
    expect([...got].sort()).toEqual(['db/from-fresh new password', 'db/from-kept old session']);
    expect(kept.connected).toBe(true);
    expect(await Promise.race([closed, sleep(500).then(() => false)])).toBe(false);
    // Same broker process all along: a row change is not a config change.
    expect(e.kubelet.brokers().find((x) => x.namespace === b.broker.namespace)?.starts).toBe(1);
    await fresh.endAsync();
    await kept.endAsync();
  });
});
