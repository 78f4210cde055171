// Scenario 3, TLS (seed 000): an `mqtts` listener on 8883 with mutual TLS required and a `wss`
// listener on 8084, both served by a certificate the operator issues from the tenant CA; a
// client-CA TlsCertificate (a device CA made here with openssl) verifies device certificates, and
// an x509 AuthSource turns the certificate's CN into the MQTT identity. Deleting the server
// TlsCertificate takes its listeners out of service (their clients are disconnected, the plain
// listener keeps serving) and the MqttDeployment's status says which listener and why. CRs only.
import { execFileSync } from 'node:child_process';
import { connect as tlsConnect } from 'node:tls';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl } from '../support/world.ts';
import { API, apply, brokerOf, connect, deleteAndWait, eventually, get, mosquitto, refusal, sleep, startEnclave, subscriber, type Enclave, SECRET_OPT_IN } from './support/harness.ts';

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
      apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'device-ca', namespace: NS, labels: SECRET_OPT_IN },
      data: { 'tls.crt': b64(file('device-ca.crt')), 'tls.key': b64(file('device-ca.key')), 'ca.crt': b64(file('device-ca.crt')) },
    },
    {
      apiVersion: 'v1', kind: 'Secret', metadata: { name: 'users', namespace: NS, labels: SECRET_OPT_IN },
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
  rmSync(dir, { recursive: true, force: true });
});

// The scenario's steps share the broker, the wss subscriber and the server CA; each step is its own
// test so that one failing promise does not hide whether the others hold.
let mqtts: number;
let wss: number;
let serverCa: Buffer;
let alice: MqttClient;
let got: string[];
const deviceCert = (): { cert: Buffer; key: Buffer } => ({ cert: readFileSync(file('device-1.crt')), key: readFileSync(file('device-1.key')) });

describe('TLS listeners with an issued certificate, mutual TLS and x509 identity', () => {
  it('serves wss with the issued certificate; mqtts refuses a client without a certificate or with an untrusted one', async () => {
    const b = await brokerOf(e, NS, 'broker');
    mqtts = b.port('mqtts');
    wss = b.port('wss');
    // The issued leaf and its CA, as the operator stored them for the tenant.
    const issued = await eventually('the server certificate is issued', async () => get('secrets', 'server-tls', NS));
    serverCa = Buffer.from(String((issued.data as Record<string, string>)['ca.crt']), 'base64');

    // wss: server verified against the tenant CA, password user.
    alice = await eventually('wss accepts alice', async () =>
      connect(`wss://127.0.0.1:${wss}/mqtt`, { username: 'alice', password: 'alice-pw', clientId: 'alice', ca: serverCa }).catch(() => undefined));
    got = await subscriber(alice, 'devices/#');

    // mqtts without a client certificate: the TLS handshake is refused with alert 116 (TLS 1.3
    // certificate_required); MQTT.js reports OpenSSL's error, and no MQTT byte comes back.
    expect(await refusal(`mqtts://127.0.0.1:${mqtts}`, { username: 'alice', password: 'alice-pw', ca: serverCa })).toMatch(/alert certificate required.*SSL alert number 116/s);
    const noCert = await tlsExchange(mqtts, { ca: serverCa });
    expect(noCert.error).toMatch(/alert certificate required/);
    expect(noCert.received).toBe('');
    // A certificate from an untrusted CA is refused too, whatever its CN says. Node's TLS server
    // sends no alert for it: it closes the connection right after the handshake, so MQTT.js sees a
    // close before any CONNACK (no MQTT reason code: the refusal is not the MQTT layer's), and on
    // the wire the CONNECT gets no byte back.
    const rogue = { ca: serverCa, cert: readFileSync(file('rogue.crt')), key: readFileSync(file('rogue.key')) };
    expect(await refusal(`mqtts://127.0.0.1:${mqtts}`, rogue)).toBe("Couldn't connect to server");
    const rogueWire = await tlsExchange(mqtts, rogue);
    expect(rogueWire).toMatchObject({ secure: true, serverVerified: true, received: '' });
    expect(rogueWire.error ?? '').toMatch(/^$|ECONNRESET|EPIPE/); // no alert; at most a reset when the CONNECT races the close
    // The same exchange with the trusted device certificate gets its CONNACK (0x20, accepted): the
    // rogue's empty answer is the certificate's doing, not the probe's.
    const trusted = await tlsExchange(mqtts, { ca: serverCa, ...deviceCert() });
    expect(trusted).toMatchObject({ secure: true, serverVerified: true, error: undefined });
    expect(trusted.received.slice(0, 8)).toBe('20020000');
  });

  it('x509: the device certificate\'s CN is the identity the ACL sees, without a username', async () => {
    // mosquitto_pub with the device certificate and no password: identity device-1 from the CN.
    const pub = await mosquitto('mosquitto_pub', [
      '-h', '127.0.0.1', '-p', String(mqtts), '-i', 'dev1', '-q', '1', '--cafile', writeTemp('server-ca.crt', serverCa),
      '--cert', file('device-1.crt'), '--key', file('device-1.key'), '-t', 'devices/device-1/temp', '-m', '21.5',
    ]);
    expect(pub.stderr).toBe('');
    expect(pub.code).toBe(0);
    await eventually('the device message reaches the wss subscriber', async () => got.length > 0, 10_000);
    expect(got).toEqual(['devices/device-1/temp 21.5']);

    // device-1 may not publish as another device (v5: PUBACK 0x87), and may publish its own topics.
    const device = await connect(`mqtts://127.0.0.1:${mqtts}`, { clientId: 'dev1-v5', protocolVersion: 5, ca: serverCa, ...deviceCert() });
    await expect(device.publishAsync('devices/device-2/temp', 'spoof', { qos: 1 })).rejects.toThrow(/Not authorized|135/i);
    await device.publishAsync('devices/device-1/temp', '22.0', { qos: 1 });
    await eventually('the second device message reaches the wss subscriber', async () => got.length > 1);
    expect(got).toEqual(['devices/device-1/temp 21.5', 'devices/device-1/temp 22.0']);
    await device.endAsync();
    got.length = 0;
  });

  it('deleting the TlsCertificate disconnects the mqtts and wss clients; status says which listeners and why', async () => {
    // A device kept connected over mqtts. It names its CN as username (which the x509 source
    // accepts), so this step does not rest on the CN-only identity of the step before.
    const device = await connect(`mqtts://127.0.0.1:${mqtts}`, { clientId: 'dev1-kept', username: 'device-1', protocolVersion: 5, ca: serverCa, ...deviceCert() });
    await device.publishAsync('devices/device-1/kept', 'before', { qos: 1 });
    await eventually('the kept device\'s message reaches the wss subscriber', async () => got.includes('devices/device-1/kept before'));

    // The broker stops serving what the certificate signed: both TLS listeners are gone, their
    // clients cut off, the plain listener still serves.
    const aliceClosed = new Promise<true>((res) => alice.once('close', () => res(true)));
    const deviceClosed = new Promise<true>((res) => device.once('close', () => res(true)));
    await kubectl(['delete', 'tlscertificates.mqtt.enclave.dev', 'server', '-n', NS]);
    const ready = await eventually('Ready=False names the disabled listeners and the certificate', async () => {
      const md = await get('mqttdeployments.mqtt.enclave.dev', 'broker', NS);
      const c = md?.status?.conditions?.find((x) => x.type === 'Ready');
      return c?.status === 'False' && c.reason === 'ListenerDisabled' ? c : undefined;
    });
    expect(ready.message).toBe('Not serving listener mqtts (TlsCertificate server not found), listener wss (TlsCertificate server not found): '
      + 'its clients were disconnected. Re-create the TlsCertificate or remove the listener.');
    const closedWithin = (p: Promise<true>) => Promise.race([p, sleep(30_000).then(() => false as const)]);
    expect(await closedWithin(aliceClosed)).toBe(true);
    expect(await closedWithin(deviceClosed)).toBe(true);
    expect(alice.connected).toBe(false);
    expect(device.connected).toBe(false);
    alice.end(true);
    device.end(true);

    const after = await brokerOf(e, NS, 'broker', (x) => x.endpoints.every((ep) => ep.name === 'mqtt'));
    expect(after.broker.endpoints.map((ep) => ep.name)).toEqual(['mqtt']);
    const md = (await get('mqttdeployments.mqtt.enclave.dev', 'broker', NS))!;
    expect((md.status?.endpoints as { listener: string }[]).map((ep) => ep.listener)).toEqual(['mqtt']);
    const svc = (await get('services', 'broker', md.status!.namespace))!;
    expect((svc.spec as { ports: { name: string }[] }).ports.map((p) => p.name)).toEqual(['mqtt']);
    // Nothing the deleted certificate signed is left in the rendered Secret.
    const config = (await get('secrets', 'broker-config', md.status!.namespace))!;
    expect(Object.keys(config.data!).filter((k) => k.startsWith('tls-'))).toEqual([]);
    // Nothing listens on the TLS ports any more.
    expect(await refusal(`wss://127.0.0.1:${wss}/mqtt`, { username: 'alice', password: 'alice-pw', ca: serverCa, connectTimeout: 2_000 })).toMatch(/ECONNREFUSED/);
    expect(await refusal(`mqtts://127.0.0.1:${mqtts}`, { ca: serverCa, ...deviceCert(), connectTimeout: 2_000 })).toMatch(/ECONNREFUSED/);
    const plain = await connect(`mqtt://127.0.0.1:${after.port('mqtt')}`, { username: 'alice', password: 'alice-pw', clientId: 'alice-plain' });
    await plain.endAsync();
  });
});

/**
 * One raw TLS exchange with a listener: handshake, then an MQTT 3.1.1 CONNECT (client id "probe",
 * clean session); returns what came back, in hex, until the server closed or failed the connection.
 */
function tlsExchange(port: number, opts: { ca: Buffer; cert?: Buffer; key?: Buffer }): Promise<{ secure: boolean; serverVerified: boolean; error: string | undefined; received: string }> {
  const connectPacket = Buffer.from('101100044d5154540402003c000570726f6265', 'hex');
  return new Promise((resolve) => {
    let secure = false;
    let serverVerified = false;
    let error: string | undefined;
    const chunks: Buffer[] = [];
    const s = tlsConnect({ host: '127.0.0.1', port, ...opts }, () => {
      secure = true;
      serverVerified = s.authorized;
      s.write(connectPacket);
    });
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      s.end(); // one answer is enough
    });
    s.on('error', (err: Error) => { error = err.message; });
    s.setTimeout(5_000, () => s.destroy(new Error('no answer and no close within 5 s')));
    s.on('close', () => resolve({ secure, serverVerified, error, received: Buffer.concat(chunks).toString('hex') }));
  });
}

function writeTemp(name: string, content: Buffer): string {
  const path = file(name);
  execFileSync('tee', [path], { input: content, stdio: ['pipe', 'ignore', 'ignore'] });
  return path;
}
