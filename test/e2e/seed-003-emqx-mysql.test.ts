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
import { API, REPO, apply, brokerOf, connect, deleteAndWait, eventually, mosquitto, refusal, startEnclave, suback, subscriber, type Enclave, SECRET_OPT_IN } from './support/harness.ts';

const NS = 'e2e-seed003';
const DB = 'e2e_seed003';
let e: Enclave;
let url: string;
let port: number;
let logFile: string;

beforeAll(async () => {
  const info = world().mariadb;
  const c = await mysql.createConnection({ host: info.host, port: info.port, user: info.user, password: info.password, multipleStatements: true });
  await c.query(`DROP DATABASE IF EXISTS ${DB}; CREATE DATABASE ${DB}; USE ${DB};`);
  await c.query(await readFile(join(REPO, 'examples/auth-schemas/mysql-emqx4/schema.sql'), 'utf8'));
  await c.query(await readFile(join(REPO, 'examples/auth-schemas/mysql-emqx4/seed-003.sql'), 'utf8'));
  // Not a seed row: a login for the `dashboard` the seed's ACL names, to show its rule is shadowed.
  await c.query(`INSERT INTO mqtt_user (username, password, salt, is_superuser) VALUES ('dashboard', SHA2('dashboard-pw', 256), NULL, 0)`);
  await c.end();

  e = await startEnclave('seed003', [NS]);
  // ops may also read $SYS/e2e/#, to observe the publish seed row 4 allows from 127.0.0.1.
  const builtin = `users:\n  - username: ops\n    password_hash: '${bcrypt.hashSync('ops-pw', 8)}'\nacl:\n  - username: ops\n    permission: allow\n    action: all\n    topic: 'ops/#'\n  - username: ops\n    permission: allow\n    action: subscribe\n    topic: '$SYS/e2e/#'\n`;
  await apply([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'ops-users', namespace: NS, labels: SECRET_OPT_IN }, stringData: { 'users.yaml': builtin } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'emqx-db', namespace: NS, labels: SECRET_OPT_IN }, stringData: { username: info.user, password: info.password } },
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
  logFile = b.broker.logFile;
});

afterAll(async () => {
  await deleteAndWait('mqttdeployments.mqtt.enclave.dev', 'broker', NS).catch(() => undefined);
  await e?.stop();
  await kubectl(['delete', 'namespace', NS, '--wait=false', '--ignore-not-found']);
});

const emqx = (clientId: string) => connect(url, { username: 'emqx', password: 'public', clientId, protocolVersion: 4 });

/** The broker's access-log lines (JSON, msg "auth decision") matching `fields`. */
async function decisions(fields: Record<string, unknown>): Promise<Record<string, unknown>[]> {
  const lines = (await readFile(logFile, 'utf8')).split('\n').filter((l) => l.startsWith('{'));
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((o) => o.msg === 'auth decision' && Object.entries(fields).every(([k, v]) => o[k] === v));
}

/** Which source decided `clientId`'s `action` on `topic` (the access log's `source` field). */
async function decidedBy(clientId: string, action: string, topic: string): Promise<string> {
  const found = await eventually(`the ${action} ${topic} decision of ${clientId} is logged`, async () => {
    const d = await decisions({ clientId, action, topic });
    return d.length > 0 ? d : undefined;
  });
  return found.map((d) => `${String(d.source)}:${String(d.result)}`).join(' ');
}

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

  it('/smarthome/%c/temperature with mosquitto_sub: a client reads its own topic, and only its own', async () => {
    // Seed row 1 ($all publishes #) lets any client write the bedroom's reading; retained, so the
    // subscriber started afterwards gets it at once.
    const pub = await emqx('bedroom-sensor');
    await pub.publishAsync('/smarthome/bedroom/temperature', '19.0', { qos: 1, retain: true });
    await pub.endAsync();
    const sub = await mosquitto('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-u', 'emqx', '-P', 'public', '-i', 'bedroom', '-V', 'mqttv311', '-t', '/smarthome/bedroom/temperature', '-q', '1', '-v', '-C', '1', '-W', '8']);
    expect(sub.stderr).toBe('');
    expect(sub.code).toBe(0);
    expect(sub.stdout).toBe('/smarthome/bedroom/temperature 19.0\n');
    // The same subscription under another client id has no rule (%c is the client id): refused.
    const other = await mosquitto('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-u', 'emqx', '-P', 'public', '-i', 'attic', '-V', 'mqttv311', '-t', '/smarthome/bedroom/temperature', '-q', '1', '-C', '1', '-W', '3']);
    // (mosquitto_sub then disconnects and exits 0: the refusal shows in what it says and receives.)
    expect(other.stdout).toBe('');
    expect(other.stderr).toBe('All subscription requests were denied.\n');
    expect(await decidedBy('attic', 'subscribe', '/smarthome/bedroom/temperature')).toBe('no-match:deny');
  });

  it('denies subscribing to $SYS/# and to the literal # by the seed\'s $all rows, and another client\'s topic by noMatch', async () => {
    const c = await emqx('hall');
    for (const topic of ['$SYS/#', '#', '/smarthome/kitchen/temperature']) {
      expect(await suback(c, topic), topic).toBe(128);
    }
    expect(await suback(c, '/smarthome/hall/temperature')).toBe(1);
    await c.endAsync();
    // The deny rows decide, not the fallback: the seed's own rules hold even with noMatch allow.
    expect(await decidedBy('hall', 'subscribe', '$SYS/#')).toBe('emqx-mysql:deny');
    expect(await decidedBy('hall', 'subscribe', '#')).toBe('emqx-mysql:deny');
    expect(await decidedBy('hall', 'subscribe', '/smarthome/kitchen/temperature')).toBe('no-match:deny');
    expect(await decidedBy('hall', 'subscribe', '/smarthome/hall/temperature')).toBe('emqx-mysql:allow');
  });

  it('the literal-# deny ("eq #") is literal: another wildcard filter is not decided by it but falls to noMatch', async () => {
    // /smarthome/+/temperature is not the literal '#', and no rule allows it for this client: noMatch decides.
    const c = await emqx('cellar');
    expect(await suback(c, '/smarthome/+/temperature')).toBe(128);
    await c.endAsync();
    expect(await decidedBy('cellar', 'subscribe', '/smarthome/+/temperature')).toBe('no-match:deny');
  });

  it('dashboard may not subscribe to $SYS/#: its allow row is shadowed by the $all deny before it', async () => {
    const dash = await connect(url, { username: 'dashboard', password: 'dashboard-pw', clientId: 'dash-1', protocolVersion: 4 });
    expect(await suback(dash, '$SYS/#')).toBe(128);
    await dash.endAsync();
    expect(await decidedBy('dash-1', 'subscribe', '$SYS/#')).toBe('emqx-mysql:deny');
    // The refusal is the subscription's, not the user's: dashboard may publish like every client ($all).
    const pub = await mosquitto('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', 'dashboard', '-P', 'dashboard-pw', '-i', 'dash-2', '-t', 'ops/from-dashboard', '-m', 'x', '-q', '1']);
    expect(pub.code, pub.stderr).toBe(0);
    expect(await decidedBy('dash-2', 'publish', 'ops/from-dashboard')).toBe('emqx-mysql:allow');
  });

  // Seed row 4 (ipaddr 127.0.0.1 may publish $SYS/#) is the one row Enclave does not honour, on
  // purpose: `$SYS/` carries the broker's own statistics, and no client may forge them, whatever an
  // ACL says (issue 3: "clients may read, never publish to $-topics"; docs/hostile-inputs.md #8, #24).
  // Inside a Kubernetes pod 127.0.0.1 is the pod itself, so the row had no client to serve anyway.
  it('nobody publishes into $SYS, not even 127.0.0.1 (ipaddr row): the broker owns that namespace', async () => {
    const ops = await connect(url, { username: 'ops', password: 'ops-pw', clientId: 'ops-sys' });
    const got = await subscriber(ops, '$SYS/e2e/#');
    // From 127.0.0.2 only the $all rows would apply, and `#` does not cover a $-topic [MQTT-4.7.2-1].
    const remote = await mosquitto('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-A', '127.0.0.2', '-u', 'emqx', '-P', 'public', '-i', 'remote-sys', '-V', 'mqttv5', '-t', '$SYS/e2e/remote', '-m', 'spoof', '-q', '1']);
    expect(remote.stderr).toMatch(/not authori[sz]ed/i);
    // From 127.0.0.1 too: PUBACK 0x87 and nothing delivered.
    const local = await connect(url, { username: 'emqx', password: 'public', clientId: 'local-sys', protocolVersion: 5 });
    await expect(local.publishAsync('$SYS/e2e/local', 'from localhost', { qos: 1 })).rejects.toThrow(/Not authorized|135/i);
    // The session still works: a permitted publish right after goes through.
    await local.publishAsync('anything/after', 'ok', { qos: 1 });
    await local.endAsync();
    await new Promise((r) => setTimeout(r, 500));
    expect(got).toEqual([]);
    await ops.endAsync();
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
