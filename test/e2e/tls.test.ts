// Scenario 3, TLS (seed 000): an `mqtts` listener on 8883 with mutual TLS required and a `wss`
// listener on 8084, both served by a certificate the operator issues from the tenant CA; a
// client-CA TlsCertificate (a device CA made here with openssl) verifies device certificates, and
// an x509 AuthSource turns the certificate's CN into the MQTT identity. Deleting the server
// TlsCertificate takes its listeners out of service (their clients are disconnected, the plain
// listener keeps serving) and the MqttDeployment's status says which listener and why. CRs only.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl } from '../support/world.ts';
import { API, apply, brokerOf, connect, deleteAndWait, eventually, get, mosquitto, refusal, sleep, startEnclave, subscriber, type Enclave } from './support/harness.ts';

const NS = 'e2e-tls';
let e: Enclave;
const dir = mkdtempSync(join(tmpdir(), 'enclave-e2e-tls-'));
const file = (name: string): string => join(dir, name);
const openssl = (...args: string[]): void => {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
};

/** Device CA and one device certificate (CN=device-1), as a customer's PKI would hand them out. */
function makeDevicePki(): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'device-ca.key', '-out', 'device-ca.crt', '-days', '2', '-subj', '/CN=device-ca');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'device-1.key', '-out', 'device-1.csr', '-subj', '/O=Acme/CN=device-1');
  openssl('x509', '-req', '-in', 'device-1.csr', '-CA', 'device-ca.crt', '-CAkey', 'device-ca.key', '-CAcreateserial', '-days', '2', '-out', 'device-1.crt');
  // A certificate from a CA the broker does not trust.
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'rogue.key', '-out', 'rogue.crt', '-days', '2', '-subj', '/CN=device-1');
}

const b64 = (path: string): string => readFileSync(path).toString('base64');

beforeAll(async () => {
  makeDevicePki();
  e = await startEnclave('tls', [NS]);
  await apply([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    {
      apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'device-ca', namespace: NS },
      data: { 'tls.crt': b64(file('device-ca.crt')), 'tls.key': b64(file('device-ca.key')), 'ca.crt': b64(file('device-ca.crt')) },
    },
    {
      apiVersion: 'v1', kind: 'Secret', metadata: { name: 'users', namespace: NS },
      stringData: { 'users.yaml': `users:\n  - username: alice\n    password_hash: '${bcrypt.hashSync('alice-pw', 8)}'\nacl:\n  - username: alice\n    permission: allow\n    action: all\n    topic: 'devices/#'\n  - username: device-1\n    permission: allow\n    action: publish\n    topic: 'devices/device-1/#'\n` },
    },
    { apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'server', namespace: NS }, spec: { issue: { commonName: 'mqtt.e2e-tls', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] } } },
    { apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'device-ca', namespace: NS }, spec: { secretRef: { name: 'device-ca' } } },
    { apiVersion: API, kind: 'AuthSource', metadata: { name: 'device-identity', namespace: NS }, spec: { type: 'x509', x509: { identityFrom: 'cn' } } },
    { apiVersion: API, kind: 'AuthSource', metadata: { name: 'users', namespace: NS }, spec: { type: 'builtin', builtin: { secretRef: { name: 'users', key: 'users.yaml' } }, passwordHash: { algorithm: 'bcrypt' } } },
    {
      apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'broker', namespace: NS },
      spec: {
        listeners: [
          { name: 'mqtt', protocol: 'mqtt', port: 1883 },
          { name: 'mqtts', protocol: 'mqtts', port: 8883, tlsCertificateRef: { name: 'server' }, clientAuth: 'required', clientCaRef: { name: 'device-ca' } },
          { name: 'wss', protocol: 'wss', port: 8084, tlsCertificateRef: { name: 'server' } },
        ],
        authentication: { chain: [{ name: 'device-identity' }, { name: 'users' }] },
        authorization: { chain: [{ name: 'users' }], noMatch: 'deny' },
      },
    },
  ]);
});

afterAll(async () => {
  await deleteAndWait('mqttdeployments.mqtt.enclave.dev', 'broker', NS).catch(() => undefined);
  await e?.stop();
  await kubectl(['delete', 'namespace', NS, '--wait=false', '--ignore-not-found']);
});

describe('TLS listeners with an issued certificate, mutual TLS and x509 identity', () => {
  it('serves mqtts and wss, requires a device certificate, authenticates by CN', async () => {
    const b = await brokerOf(e, NS, 'broker');
    const mqtts = b.port('mqtts');
    const wss = b.port('wss');
    // The issued leaf and its CA, as the operator stored them for the tenant.
    const issued = await eventually('the server certificate is issued', async () => get('secrets', 'server-tls', NS));
    const serverCa = Buffer.from(String((issued.data as Record<string, string>)['ca.crt']), 'base64');

    // wss: server verified against the tenant CA, password user.
    const alice = await eventually('wss accepts alice', async () =>
      connect(`wss://127.0.0.1:${wss}/mqtt`, { username: 'alice', password: 'alice-pw', clientId: 'alice', ca: serverCa }).catch(() => undefined));
    const got = await subscriber(alice, 'devices/#');

    // mqtts without a client certificate: the handshake is refused, no CONNACK.
    expect(await refusal(`mqtts://127.0.0.1:${mqtts}`, { username: 'alice', password: 'alice-pw', ca: serverCa })).not.toBe('');
    // A certificate from an untrusted CA is refused too, whatever its CN says.
    expect(await refusal(`mqtts://127.0.0.1:${mqtts}`, { ca: serverCa, cert: readFileSync(file('rogue.crt')), key: readFileSync(file('rogue.key')) })).not.toBe('');

    // mosquitto_pub with the device certificate and no password: identity device-1 from the CN.
    const pub = await mosquitto('mosquitto_pub', [
      '-h', '127.0.0.1', '-p', String(mqtts), '-i', 'dev1', '-q', '1', '--cafile', writeTemp('server-ca.crt', serverCa),
      '--cert', file('device-1.crt'), '--key', file('device-1.key'), '-t', 'devices/device-1/temp', '-m', '21.5',
    ]);
    expect(pub.stderr).toBe('');
    expect(pub.code).toBe(0);
    await eventually('the device message reaches the wss subscriber', async () => got.length > 0);
    expect(got).toEqual(['devices/device-1/temp 21.5']);

    // The CN is the identity the ACL sees: device-1 may not publish as another device.
    const device = await connect(`mqtts://127.0.0.1:${mqtts}`, {
      clientId: 'dev1-v5', protocolVersion: 5, ca: serverCa, cert: readFileSync(file('device-1.crt')), key: readFileSync(file('device-1.key')),
    });
    await expect(device.publishAsync('devices/device-2/temp', 'spoof', { qos: 1 })).rejects.toThrow();
    await device.endAsync();

    // Deleting the TlsCertificate: the broker stops serving what it signed. The wss client is cut
    // off, both TLS listeners are gone, the plain listener still serves, and status says why.
    const aliceClosed = new Promise<void>((res) => alice.once('close', () => res()));
    await kubectl(['delete', 'tlscertificates.mqtt.enclave.dev', 'server', '-n', NS]);
    const ready = await eventually('Ready=False names the disabled listeners and the certificate', async () => {
      const md = await get('mqttdeployments.mqtt.enclave.dev', 'broker', NS);
      const c = md?.status?.conditions?.find((x) => x.type === 'Ready');
      return c?.status === 'False' && c.reason === 'ListenerDisabled' ? c : undefined;
    });
    expect(ready.message).toBe('Not serving listener mqtts (TlsCertificate server not found), listener wss (TlsCertificate server not found): '
      + 'its clients were disconnected. Re-create the TlsCertificate or remove the listener.');
    await eventually('the wss client is disconnected', async () => Promise.race([aliceClosed.then(() => true), sleep(250).then(() => false)]), 30_000);
    const after = await brokerOf(e, NS, 'broker', (x) => x.endpoints.every((ep) => ep.name === 'mqtt'));
    expect(after.broker.endpoints.map((ep) => ep.name)).toEqual(['mqtt']);
    const md = (await get('mqttdeployments.mqtt.enclave.dev', 'broker', NS))!;
    expect((md.status?.endpoints as { listener: string }[]).map((ep) => ep.listener)).toEqual(['mqtt']);
    const svc = (await get('services', 'broker', md.status!.namespace))!;
    expect((svc.spec as { ports: { name: string }[] }).ports.map((p) => p.name)).toEqual(['mqtt']);
    // Nothing the deleted certificate signed is left in the rendered Secret.
    const config = (await get('secrets', 'broker-config', md.status!.namespace))!;
    expect(Object.keys(config.data!).filter((k) => k.startsWith('tls-'))).toEqual([]);
    expect(await refusal(`wss://127.0.0.1:${wss}/mqtt`, { username: 'alice', password: 'alice-pw', ca: serverCa, connectTimeout: 2_000 })).not.toBe('');
    const plain = await connect(`mqtt://127.0.0.1:${after.port('mqtt')}`, { username: 'alice', password: 'alice-pw', clientId: 'alice-plain' });
    await plain.endAsync();
  });
});

function writeTemp(name: string, content: Buffer): string {
  const path = file(name);
  execFileSync('tee', [path], { input: content, stdio: ['pipe', 'ignore', 'ignore'] });
  return path;
}
