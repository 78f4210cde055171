// Scenario 6, rotation: change a user's password in the referenced Secret and rotate the server
// certificate (re-issue by changing the TlsCertificate). Clients connected before stay connected and
// keep working, the broker process is not restarted (the config hash does not change), new
// connections need the new password and are served the new certificate.
import { connect as tlsConnect } from 'node:tls';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl } from '../support/world.ts';
import { API, apply, brokerOf, connect, deleteAndWait, eventually, refusal, startEnclave, subscriber, type Enclave } from './support/harness.ts';

const NS = 'e2e-rotation';
let e: Enclave;

const usersSecret = (password: string) => ({
  apiVersion: 'v1', kind: 'Secret', metadata: { name: 'users', namespace: NS },
  stringData: { 'users.yaml': `users:\n  - username: alice\n    password_hash: '${bcrypt.hashSync(password, 8)}'\nacl:\n  - username: alice\n    permission: allow\n    action: all\n    topic: 'r/#'\n` },
});
const serverCert = (dnsNames: string[]) => ({
  apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'server', namespace: NS },
  spec: { issue: { commonName: 'broker.e2e-rotation', dnsNames, ipAddresses: ['127.0.0.1'] } },
});

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
  e = await startEnclave('rotation', [NS]);
  await apply([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    usersSecret('old-pw'),
    serverCert(['localhost']),
    { apiVersion: API, kind: 'AuthSource', metadata: { name: 'users', namespace: NS }, spec: { type: 'builtin', builtin: { secretRef: { name: 'users', key: 'users.yaml' } }, passwordHash: { algorithm: 'bcrypt' } } },
    {
      apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'broker', namespace: NS },
      spec: {
        listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 1883 }, { name: 'mqtts', protocol: 'mqtts', port: 8883, tlsCertificateRef: { name: 'server' } }],
        authentication: { chain: [{ name: 'users' }] }, authorization: { chain: [{ name: 'users' }], noMatch: 'deny' },
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
});
