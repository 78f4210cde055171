// Scenario 5, purge (seeds 000 and 004): a deployment with credentials, an issued server certificate
// and a retained message is deleted; nothing labeled with its UID remains anywhere in the cluster
// (every kind the operator writes, namespaced and cluster-scoped); re-created under the same name it
// has a new CA (fingerprint), new rendered credentials Secret, and no old retained message.
import { X509Certificate } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OWNED_KINDS } from '../../operator/api/owned-kinds.ts';
import { kubectl } from '../support/world.ts';
import { API, OPERATOR_NS, apply, brokerOf, connect, deleteAndWait, eventually, get, list, startEnclave, subscriber, type Enclave, SECRET_OPT_IN } from './support/harness.ts';

const NS = 'e2e-purge';
const MD = 'mqttdeployments.mqtt.enclave.dev';
let e: Enclave;

const objects = (): unknown[] => [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
  {
    apiVersion: 'v1', kind: 'Secret', metadata: { name: 'users', namespace: NS, labels: SECRET_OPT_IN },
    stringData: { 'users.yaml': `users:\n  - username: device\n    password_hash: '${bcrypt.hashSync('device-pw', 8)}'\nacl:\n  - username: device\n    permission: allow\n    action: all\n    topic: '#'\n` },
  },
  { apiVersion: API, kind: 'AuthSource', metadata: { name: 'users', namespace: NS }, spec: { type: 'builtin', builtin: { secretRef: { name: 'users', key: 'users.yaml' } }, passwordHash: { algorithm: 'bcrypt' } } },
  { apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'server', namespace: NS }, spec: { issue: { commonName: 'broker.e2e-purge', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] } } },
  {
    apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'broker', namespace: NS },
    spec: {
      listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 1883 }, { name: 'mqtts', protocol: 'mqtts', port: 8883, tlsCertificateRef: { name: 'server' } }],
      authentication: { chain: [{ name: 'users' }] }, authorization: { chain: [{ name: 'users' }], noMatch: 'deny' },
    },
  },
];

/** SHA-256 fingerprint of the certificate the broker presents on `port`. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()?.fingerprint256 ?? '');
      s.destroy();
    });
    s.once('error', reject);
  });
}

async function caFingerprint(): Promise<string> {
  const ca = await eventually('tenant CA Secret exists', () => get('secret', `enclave-ca-${NS}`, OPERATOR_NS));
  return new X509Certificate(Buffer.from(ca.data!['ca.crt']!, 'base64')).fingerprint256;
}

/** Everything labeled with `uid`, over every kind the operator writes (namespaced: all namespaces). */
async function leftovers(uid: string): Promise<string[]> {
  const found: string[] = [];
  for (const k of OWNED_KINDS) {
    if (k.plural.includes('/')) continue;
    const resource = k.group ? `${k.plural}.${k.group}` : k.plural;
    for (const o of await list(resource, undefined, `mqtt.enclave.dev/owner-uid=${uid}`)) found.push(`${k.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`);
  }
  return found;
}

beforeAll(async () => {
  e = await startEnclave('purge', [NS]);
});

afterAll(async () => {
  await deleteAndWait(MD, 'broker', NS).catch(() => undefined);
  await e?.stop();
  await kubectl(['delete', 'namespace', NS, '--wait=false', '--ignore-not-found']);
});

describe('purge and re-create', () => {
  it('leaves nothing behind and starts over with fresh CA, credentials and no retained messages', async () => {
    await apply(objects());
    const first = await brokerOf(e, NS, 'broker');
    const uid = first.md.metadata.uid;
    const runtimeNs = first.md.status!.namespace!;
    const oldCa = await caFingerprint();
    const oldServed = await eventually('mqtts serves the issued certificate', async () => servedFingerprint(first.port('mqtts')));
    const oldConfig = await get('secret', 'broker-config', runtimeNs);

    const pub = await connect(`mqtt://127.0.0.1:${first.port('mqtt')}`, { username: 'device', password: 'device-pw' });
    await pub.publishAsync('state/door', 'open', { qos: 1, retain: true });
    await pub.endAsync();
    const check = await connect(`mqtt://127.0.0.1:${first.port('mqtt')}`, { username: 'device', password: 'device-pw' });
    const retained = await subscriber(check, 'state/#');
    await eventually('the retained message is delivered', async () => retained.length === 1);
    await check.endAsync();
    expect(await leftovers(uid)).not.toEqual([]);

    await deleteAndWait(MD, 'broker', NS);
    expect(await leftovers(uid)).toEqual([]);
    expect(await get('namespace', runtimeNs)).toBeUndefined();
    // The tenant CA is retired with its last deployment (the tenant's TlsCertificates re-issue from a new one).
    const caNow = await get('secret', `enclave-ca-${NS}`, OPERATOR_NS);
    if (caNow) expect(new X509Certificate(Buffer.from(caNow.data!['ca.crt']!, 'base64')).fingerprint256).not.toBe(oldCa);
    await eventually('the local broker is stopped', async () => !e.kubelet.brokers().some((b) => b.namespace === runtimeNs));

    await apply(objects());
    const second = await brokerOf(e, NS, 'broker', (b) => b.starts >= 1);
    expect(second.md.metadata.uid).not.toBe(uid);
    expect(second.md.status!.namespace).toBe(runtimeNs);
    const newCa = await caFingerprint();
    expect(newCa).not.toBe(oldCa);
    const newServed = await eventually('mqtts serves a certificate from the new CA', async () => {
      const f = await servedFingerprint(second.port('mqtts'));
      return f !== oldServed ? f : undefined;
    });
    expect(newServed).not.toBe(oldServed);
    const newConfig = await get('secret', 'broker-config', runtimeNs);
    expect(newConfig!.metadata.uid).not.toBe(oldConfig!.metadata.uid);
    expect(newConfig!.metadata.labels!['mqtt.enclave.dev/owner-uid']).toBe(second.md.metadata.uid);

    const sub = await connect(`mqtt://127.0.0.1:${second.port('mqtt')}`, { username: 'device', password: 'device-pw' });
    const got = await subscriber(sub, 'state/#');
    await sub.publishAsync('state/marker', 'after-recreate', { qos: 1 });
    await eventually('the marker arrives', async () => got.includes('state/marker after-recreate'));
    expect(got).toEqual(['state/marker after-recreate']);
    await sub.endAsync();
  });
});
