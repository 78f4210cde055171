// Scenario 1, EMQX Cloud on MySQL (seed 003): MariaDB holds EMQX 4's `mqtt_user` / `mqtt_acl` with the
// seed's default rows; the tenant declares it as an AuthSource next to a builtin one and chains
// builtin → mysql for both authentication and authorization, then noMatch deny. Every allow/deny
// the seed lists holds through the broker the operator rendered.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl, world } from '../support/world.ts';
import { API, REPO, apply, brokerOf, connect, deleteAndWait, eventually, mosquitto, refusal, startEnclave, suback, subscriber, type Enclave } from './support/harness.ts';

const NS = 'e2e-seed003';
const DB = 'e2e_seed003';
let e: Enclave;
let url: string;
let port: number;

beforeAll(async () => {
  const info = world().mariadb;
  const c = await mysql.createConnection({ host: info.host, port: info.port, user: info.user, password: info.password, multipleStatements: true });
  await c.query(`DROP DATABASE IF EXISTS ${DB}; CREATE DATABASE ${DB}; USE ${DB};`);
  await c.query(await readFile(join(REPO, 'examples/auth-schemas/mysql-emqx4/schema.sql'), 'utf8'));
  await c.query(await readFile(join(REPO, 'examples/auth-schemas/mysql-emqx4/seed-003.sql'), 'utf8'));
  await c.end();

  e = await startEnclave('seed003', [NS]);
  const builtin = `users:\n  - username: ops\n    password_hash: '${bcrypt.hashSync('ops-pw', 8)}'\nacl:\n  - username: ops\n    permission: allow\n    action: all\n    topic: 'ops/#'\n`;
  await apply([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'ops-users', namespace: NS }, stringData: { 'users.yaml': builtin } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'emqx-db', namespace: NS }, stringData: { username: info.user, password: info.password } },
    { apiVersion: API, kind: 'AuthSource', metadata: { name: 'ops', namespace: NS }, spec: { type: 'builtin', builtin: { secretRef: { name: 'ops-users', key: 'users.yaml' } }, passwordHash: { algorithm: 'bcrypt' } } },
    {
      apiVersion: API, kind: 'AuthSource', metadata: { name: 'emqx-mysql', namespace: NS },
      spec: {
        type: 'mysql', mysql: { host: info.host, port: info.port, database: DB, credentialsSecretRef: { name: 'emqx-db' } },
        passwordHash: { algorithm: 'sha256', saltPosition: 'disable' }, egress: [{ cidr: '127.0.0.1/32', port: info.port }],
      },
    },
    {
      apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'broker', namespace: NS },
      spec: {
        listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 1883 }],
        authentication: { chain: [{ name: 'ops' }, { name: 'emqx-mysql' }] },
        authorization: { chain: [{ name: 'ops' }, { name: 'emqx-mysql' }], noMatch: 'deny' },
      },
    },
  ]);
  const b = await brokerOf(e, NS, 'broker');
  port = b.port('mqtt');
  url = `mqtt://127.0.0.1:${port}`;
});

afterAll(async () => {
  await deleteAndWait('mqttdeployments.mqtt.enclave.dev', 'broker', NS).catch(() => undefined);
  await e?.stop();
  await kubectl(['delete', 'namespace', NS, '--wait=false', '--ignore-not-found']);
});

const emqx = (clientId: string) => connect(url, { username: 'emqx', password: 'public', clientId, protocolVersion: 4 });

describe('seed 003: builtin → mysql (EMQX 4 tables) → noMatch deny', () => {
  it('authenticates the builtin user and the seed\'s emqx/public row; refuses wrong passwords', async () => {
    expect(await refusal(url, { username: 'ops', password: 'ops-pw' })).toBe('');
    expect(await refusal(url, { username: 'emqx', password: 'public' })).toBe('');
    expect(await refusal(url, { username: 'emqx', password: 'wrong' })).toMatch(/Bad user ?name or password|Not authori[sz]ed/i);
    expect(await refusal(url, { username: 'nobody', password: 'public' })).toMatch(/Bad user ?name or password|Not authori[sz]ed/i);
  });

  it('/smarthome/%c/temperature: a client subscribes to and publishes its own topic (mosquitto_pub)', async () => {
    const kitchen = await emqx('kitchen');
    const got = await subscriber(kitchen, '/smarthome/kitchen/temperature');
    const pub = await mosquitto('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', 'emqx', '-P', 'public', '-i', 'kitchen-pub', '-V', 'mqttv311', '-t', '/smarthome/kitchen/temperature', '-m', '21.5', '-q', '1']);
    expect(pub.code, pub.stderr).toBe(0);
    await eventually('the reading arrives', async () => got.length > 0);
    expect(got).toEqual(['/smarthome/kitchen/temperature 21.5']);
    await kitchen.endAsync();
  });

  it('denies subscribing to $SYS/#, to the literal #, and to another client\'s topic (noMatch deny)', async () => {
    const c = await emqx('hall');
    for (const topic of ['$SYS/#', '#', '/smarthome/kitchen/temperature']) {
      expect(await suback(c, topic), topic).toBe(128);
    }
    expect(await suback(c, '/smarthome/hall/temperature')).toBe(1);
    await c.endAsync();
  });

  it('$all may publish anything; the builtin user is authorized by its own rules first', async () => {
    const ops = await connect(url, { username: 'ops', password: 'ops-pw', clientId: 'ops-1' });
    const got = await subscriber(ops, 'ops/#');
    const c = await emqx('anywhere');
    await c.publishAsync('ops/alerts', 'from-emqx', { qos: 1 });
    await eventually('ops receives the publish of the mysql user', async () => got.length > 0);
    expect(got).toEqual(['ops/alerts from-emqx']);
    // ops has no rule for /smarthome/...: builtin says nothing, mysql's $all rule does not name ops'
    // client id topic, so the subscription falls to noMatch deny.
    expect(await suback(ops, '/smarthome/kitchen/temperature')).toBe(128);
    await c.endAsync();
    await ops.endAsync();
  });
});
