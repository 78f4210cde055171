// Scenario 2, HiveMQ ESE on PostgreSQL (seed 001): the role model of examples/auth-schemas in a real
// database, declared as a postgres AuthSource with its queries; denyAction disconnect. superuser /
// frontendclient / backendservice hold exactly their roles (topics, publish/subscribe, QoS), an
// unauthorized publish disconnects the client, a denied subscription is refused in its SUBACK, and
// the broker's access log (its JSON log) shows each decision: connect, subscribe, publish.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl, world } from '../support/world.ts';
import { API, REPO, apply, brokerOf, connect, deleteAndWait, eventually, mosquitto, refusal, sleep, startEnclave, suback, subscriber, within, type Enclave, SECRET_OPT_IN } from './support/harness.ts';

const NS = 'e2e-seed001';
const DB = 'e2e_seed001';
const schemas = join(REPO, 'examples/auth-schemas/postgres-role-model');
let e: Enclave;
let port: number;
let logFile: string;
let url: string;

beforeAll(async () => {
  const info = world().postgres;
  const admin = new pg.Client({ host: info.host, port: info.port, user: info.user, password: info.password, database: info.database });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB}`);
  await admin.query(`CREATE DATABASE ${DB}`);
  await admin.end();
  const db = new pg.Client({ host: info.host, port: info.port, user: info.user, password: info.password, database: DB });
  await db.connect();
  await db.query(await readFile(join(schemas, 'schema.sql'), 'utf8'));
  await db.query(await readFile(join(schemas, 'seed-001.sql'), 'utf8'));
  await db.end();

  e = await startEnclave('seed001', [NS]);
  await apply([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'auth-db', namespace: NS, labels: SECRET_OPT_IN }, stringData: { username: info.user, password: info.password } },
    {
      apiVersion: API, kind: 'AuthSource', metadata: { name: 'hivemq-ese', namespace: NS },
      spec: {
        type: 'postgres',
        postgres: {
          host: info.host, port: info.port, database: DB, credentialsSecretRef: { name: 'auth-db' },
          authQuery: (await readFile(join(schemas, 'auth-query.sql'), 'utf8')).trim(),
          aclQuery: (await readFile(join(schemas, 'acl-query.sql'), 'utf8')).trim(),
        },
        passwordHash: { algorithm: 'bcrypt' }, egress: [{ cidr: '127.0.0.1/32', port: info.port }],
      },
    },
    {
      apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'broker', namespace: NS },
      spec: {
        listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 1883 }],
        authentication: { chain: [{ name: 'hivemq-ese' }] },
        authorization: { chain: [{ name: 'hivemq-ese' }], noMatch: 'deny', denyAction: 'disconnect' },
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

/** The broker's access-log lines (JSON, msg "auth decision") matching `fields`. */
async function decisions(fields: Record<string, unknown>): Promise<Record<string, unknown>[]> {
  const lines = (await readFile(logFile, 'utf8')).split('\n').filter((l) => l.startsWith('{'));
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((o) => o.msg === 'auth decision' && Object.entries(fields).every(([k, v]) => o[k] === v));
}

const as = (username: string, password: string, clientId: string) => connect(url, { username, password, clientId, protocolVersion: 5 });

describe('seed 001: HiveMQ ESE role model on PostgreSQL', () => {
  it('refuses a wrong password and logs the decision', async () => {
    expect(await refusal(url, { username: 'frontendclient', password: 'nope', protocolVersion: 5 })).toMatch(/Bad user ?name or password|Not authori[sz]ed/i);
    await eventually('the refusal is in the access log', async () => (await decisions({ username: 'frontendclient', result: 'deny' })).length > 0);
  });

  it('frontendclient publishes its own status; backendservice receives it', async () => {
    const be = await as('backendservice', 'backend-secret', 'be-1');
    const got = await subscriber(be, 'topic/+/status');
    const pub = await mosquitto('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', 'frontendclient', '-P', 'frontend-secret', '-i', 'fe-1', '-V', 'mqttv5', '-t', 'topic/fe-1/status', '-m', 'online', '-q', '1']);
    expect(pub.code, pub.stderr).toBe(0);
    await eventually('the status arrives', async () => got.length > 0);
    expect(got).toEqual(['topic/fe-1/status online']);
    await be.endAsync();
    await eventually('allow decisions are logged', async () => (await decisions({ username: 'frontendclient', result: 'allow', action: 'publish', topic: 'topic/fe-1/status' })).length > 0);
    // Each decision of the exchange has its line: both CONNECTs allowed by the database source,
    // the subscription allowed by it too.
    expect(await decisions({ clientId: 'fe-1', username: 'frontendclient', action: 'connect', source: 'hivemq-ese', result: 'allow' })).toHaveLength(1);
    expect(await decisions({ clientId: 'be-1', username: 'backendservice', action: 'connect', source: 'hivemq-ese', result: 'allow' })).toHaveLength(1);
    expect(await decisions({ clientId: 'be-1', action: 'subscribe', topic: 'topic/+/status', source: 'hivemq-ese', result: 'allow' })).toHaveLength(1);
  });

  it('frontendclient may not subscribe, not even to its own status topic: SUBACK 0x87, decision logged', async () => {
    const root = await as('admin', 'admin-secret', 'adm-3');
    const got = await subscriber(root, 'topic/+/status');
    const fe = await as('frontendclient', 'frontend-secret', 'fe-3');
    const feGot: string[] = [];
    fe.on('message', (t, p) => feGot.push(`${t} ${p.toString()}`));
    // denyAction is about PUBLISH (docs/auth-semantics.md): a denied filter is refused in its SUBACK and the
    // connection stays open.
    expect(await suback(fe, 'topic/fe-3/status')).toBe(0x87);
    expect(await suback(fe, 'topic/+/status')).toBe(0x87);
    expect(fe.connected).toBe(true);
    // No subscription was made: its own status, which it may publish, comes back to nobody but the superuser.
    await within('the PUBACK of frontendclient\'s own status', fe.publishAsync('topic/fe-3/status', 'after', { qos: 1 }));
    await eventually('the status reaches the superuser', async () => got.length > 0, 10_000);
    expect(got).toEqual(['topic/fe-3/status after']);
    await sleep(300); // delivered to both at once, had a subscription been made
    expect(feGot).toEqual([]);
    await fe.endAsync();
    await root.endAsync();
    for (const topic of ['topic/fe-3/status', 'topic/+/status']) {
      await eventually(`the subscribe deny of ${topic} is logged`, async () =>
        (await decisions({ clientId: 'fe-3', username: 'frontendclient', action: 'subscribe', topic, source: 'no-match', result: 'deny' })).length > 0, 10_000);
    }
  });

  it('frontendclient publishes its status at QoS 0 and 1 but not 2 (qos_2_allowed is false): the QoS 2 publish disconnects it', async () => {
    const be = await as('backendservice', 'backend-secret', 'be-4');
    const got = await subscriber(be, 'topic/+/status', 2);
    const fe = await as('frontendclient', 'frontend-secret', 'fe-4');
    await fe.publishAsync('topic/fe-4/status', 'qos1', { qos: 1 });
    await fe.publishAsync('topic/fe-4/status', 'qos0', { qos: 0 });
    await eventually('the QoS 0 and 1 publishes arrive', async () => got.length === 2);
    const closed = new Promise<number | undefined>((res) => {
      fe.once('disconnect', (packet) => res(packet.reasonCode));
      fe.once('close', () => res(undefined));
    });
    fe.publish('topic/fe-4/status', 'qos2', { qos: 2 });
    expect(await closed).toBe(0x87);
    fe.end(true);
    const root = await as('admin', 'admin-secret', 'adm-4');
    await root.publishAsync('topic/marker/status', 'end', { qos: 1 });
    await eventually('the marker arrives', async () => got.includes('topic/marker/status end'));
    expect(got).toEqual(['topic/fe-4/status qos1', 'topic/fe-4/status qos0', 'topic/marker/status end']);
    await root.endAsync();
    await be.endAsync();
    expect(await decisions({ clientId: 'fe-4', action: 'publish', topic: 'topic/fe-4/status', result: 'allow' })).not.toHaveLength(0);
    await eventually('the QoS 2 deny is logged', async () =>
      (await decisions({ clientId: 'fe-4', action: 'publish', topic: 'topic/fe-4/status', result: 'deny' })).length > 0);
  });

  it('an unauthorized publish disconnects the client (0x87) and is never delivered', async () => {
    const root = await as('admin', 'admin-secret', 'adm-1');
    const got = await subscriber(root, '#');
    const fe = await as('frontendclient', 'frontend-secret', 'fe-2');
    const closed = new Promise<number | undefined>((res) => {
      fe.once('disconnect', (packet) => res(packet.reasonCode));
      fe.once('close', () => res(undefined));
    });
    fe.publish('topic/fe-1/status', 'spoof', { qos: 1 });
    expect(await closed).toBe(0x87);
    await root.publishAsync('marker/x', 'end', { qos: 1 });
    await eventually('the marker arrives', async () => got.includes('marker/x end'));
    expect(got.some((m) => m.includes('spoof'))).toBe(false);
    await root.endAsync();
    fe.end(true);
    await eventually('the deny decision is logged', async () => (await decisions({ clientId: 'fe-2', result: 'deny', topic: 'topic/fe-1/status' })).length > 0);
  });

  it('backendservice may not publish; the superuser may do anything', async () => {
    const pub = await mosquitto('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', 'backendservice', '-P', 'backend-secret', '-i', 'be-3', '-V', 'mqttv5', '-t', 'topic/be-3/status', '-m', 'x', '-q', '1']);
    expect(pub.code).not.toBe(0);
    const root = await as('admin', 'admin-secret', 'adm-2');
    const got = await subscriber(root, 'any/+/thing');
    await root.publishAsync('any/x/thing', 'root', { qos: 1 });
    await eventually('the superuser round-trips', async () => got.length > 0);
    expect(got).toEqual(['any/x/thing root']);
    await root.endAsync();
  });
});
