// Real clients over every listener kind: Debian's mosquitto_pub/mosquitto_sub over TCP and TLS with
// client certificates, MQTT.js over WebSocket and secure WebSocket, and certificate hot reload via a
// Secret-style `..data` symlink swap. Certificates are made with openssl in a temp dir.
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthHook, ConnectAttempt } from '../../../broker/auth/hook.ts';
import { sleep, startTestBroker } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

const run = promisify(execFile);
let dir: string;
let tb: TestBroker;
const attempts: ConnectAttempt[] = [];

/** A static-users hook: alice/secret, or any client with a verified certificate. */
const staticUsers: AuthHook = {
  async authenticate(a) {
    attempts.push(a);
    if (a.certificate !== undefined) return { outcome: 'allow', superuser: false, acl: undefined, expiresAt: undefined, source: 'x509' };
    if (a.username === 'alice' && a.password?.toString() === 'secret') {
      return { outcome: 'allow', superuser: false, acl: undefined, expiresAt: undefined, source: 'static' };
    }
    return { outcome: 'deny', reason: 'bad-credentials', source: 'static' };
  },
  async authorize(_client, req) {
    return !req.topic.startsWith('forbidden/');
  },
  async close() {},
};

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

function makeLeaf(name: string, subj: string, extFile: string, into = dir): void {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(into, `${name}.key`), '-out', join(dir, `${name}.csr`), '-subj', subj);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', join(into, `${name}.crt`), '-extfile', join(dir, extFile));
}

/** Waits until a new subscription exists (the subscriber process got its SUBACK). */
async function subscribed(before: number): Promise<void> {
  while (tb.broker.subscriptionCount <= before) await sleep(20);
}

function port(name: string): number {
  return tb.broker.addresses().find((a) => a.name === name)!.port;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'broker-tls-'));
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Test CA');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  writeFileSync(join(dir, 'server2.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  writeFileSync(join(dir, 'client.ext'), 'subjectAltName=DNS:device-1.example,email:dev@example.com\nextendedKeyUsage=clientAuth\n');
  // Secret-style layout: secret/..data -> ..v1/, secret/tls.crt -> ..data/tls.crt
  const secret = join(dir, 'secret');
  mkdirSync(join(secret, '..v1'), { recursive: true });
  makeLeaf('server', '/CN=broker-v1', 'server.ext');
  execFileSync('cp', [join(dir, 'server.crt'), join(secret, '..v1', 'tls.crt')]);
  execFileSync('cp', [join(dir, 'server.key'), join(secret, '..v1', 'tls.key')]);
  symlinkSync('..v1', join(secret, '..data'));
  symlinkSync('..data/tls.crt', join(secret, 'tls.crt'));
  symlinkSync('..data/tls.key', join(secret, 'tls.key'));
  makeLeaf('client', '/CN=device-1/O=Acme', 'client.ext');
  const tls = { certFile: join(secret, 'tls.crt'), keyFile: join(secret, 'tls.key'), clientCaFile: join(dir, 'ca.crt') };
  tb = await startTestBroker((c) => {
    c.listeners = [
      { name: 'tcp', protocol: 'mqtt', host: '127.0.0.1', port: 0 },
      { name: 'tls-required', protocol: 'mqtts', host: '127.0.0.1', port: 0, tls: { ...tls, clientAuth: 'required' } },
      { name: 'tls-optional', protocol: 'mqtts', host: '127.0.0.1', port: 0, tls: { ...tls, clientAuth: 'optional' } },
      { name: 'ws', protocol: 'ws', host: '127.0.0.1', port: 0 },
      { name: 'wss', protocol: 'wss', host: '127.0.0.1', port: 0, tls: { ...tls, clientAuth: 'optional' } },
    ];
    c.authorization.noMatch = 'deny';
  }, staticUsers);
});

afterAll(async () => {
  await tb.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('mosquitto_pub / mosquitto_sub', () => {
  for (const version of ['mqttv311', 'mqttv5', 'mqttv31']) {
    it(`TCP with username/password (${version})`, async () => {
      const before = tb.broker.subscriptionCount;
      const sub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port('tcp')), '-V', version, '-u', 'alice', '-P', 'secret', '-t', `m/${version}`, '-C', '1', '-q', '1', '-W', '10']);
      await subscribed(before);
      await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port('tcp')), '-V', version, '-u', 'alice', '-P', 'secret', '-t', `m/${version}`, '-m', `hello ${version}`, '-q', '1']);
      expect((await sub).stdout.trim()).toBe(`hello ${version}`);
    });
  }

  it('wrong password is refused (mosquitto_pub exits non-zero)', async () => {
    await expect(run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port('tcp')), '-u', 'alice', '-P', 'wrong', '-t', 'x', '-m', 'y'])).rejects.toThrow();
  });

  it('TLS with a client certificate: the hook sees the verified certificate', async () => {
    const args = ['-h', '127.0.0.1', '-p', String(port('tls-required')), '--cafile', join(dir, 'ca.crt'), '--cert', join(dir, 'client.crt'), '--key', join(dir, 'client.key')];
    const before = tb.broker.subscriptionCount;
    const sub = run('mosquitto_sub', [...args, '-t', 'tls/t', '-C', '1', '-W', '10', '-i', 'tls-sub']);
    await subscribed(before);
    await run('mosquitto_pub', [...args, '-t', 'tls/t', '-m', 'over tls', '-i', 'tls-pub']);
    expect((await sub).stdout.trim()).toBe('over tls');
    const cert = attempts.find((a) => a.clientId === 'tls-pub')!.certificate!;
    expect(cert.commonName).toBe('device-1');
    expect(cert.subject).toBe('CN=device-1,O=Acme');
    expect(cert.dnsNames).toEqual(['device-1.example']);
    expect(cert.emails).toEqual(['dev@example.com']);
    const x509 = new X509Certificate(readFileSync(join(dir, 'client.crt')));
    expect(cert.sha256Fingerprint).toBe(x509.fingerprint256.replaceAll(':', '').toLowerCase());
  });

  it('TLS clientAuth required: no client certificate, no connection', async () => {
    await expect(run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port('tls-required')), '--cafile', join(dir, 'ca.crt'), '-u', 'alice', '-P', 'secret', '-t', 'x', '-m', 'y'])).rejects.toThrow();
  });

  it('TLS clientAuth optional: password login without a certificate works', async () => {
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port('tls-optional')), '--cafile', join(dir, 'ca.crt'), '-u', 'alice', '-P', 'secret', '-t', 'opt/t', '-m', 'y', '-i', 'opt-pub']);
    expect(attempts.find((a) => a.clientId === 'opt-pub')!.certificate).toBeUndefined();
  });
});

describe('WebSocket', () => {
  it('ws and wss (subprotocol mqtt) carry MQTT both ways', async () => {
    const sub = await mqtt.connectAsync(`ws://127.0.0.1:${port('ws')}/mqtt`, { username: 'alice', password: 'secret', reconnectPeriod: 0 });
    await sub.subscribeAsync('ws/t', { qos: 1 });
    const got = new Promise<string>((r) => sub.once('message', (_t, p) => r(String(p))));
    const pub = await mqtt.connectAsync(`wss://127.0.0.1:${port('wss')}/mqtt`, {
      ca: readFileSync(join(dir, 'ca.crt')), cert: readFileSync(join(dir, 'client.crt')), key: readFileSync(join(dir, 'client.key')),
      reconnectPeriod: 0, protocolVersion: 5,
    });
    await pub.publishAsync('ws/t', 'over wss', { qos: 1 });
    expect(await got).toBe('over wss');
    await Promise.all([sub.endAsync(), pub.endAsync()]);
  });

  it('authorization applies: a denied QoS 1 publish gets PUBACK 0x87 (v5)', async () => {
    const c = await mqtt.connectAsync(`ws://127.0.0.1:${port('ws')}/mqtt`, { username: 'alice', password: 'secret', reconnectPeriod: 0, protocolVersion: 5 });
    await expect(c.publishAsync('forbidden/x', 'no', { qos: 1 })).rejects.toThrow(/135|Not authorized/i);
    await c.endAsync(true);
  });
});

describe('certificate hot reload', () => {
  it('a symlink swap of the mounted Secret changes the served certificate; open connections stay up', async () => {
    const served = (): Promise<string> => new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: port('tls-optional'), ca: readFileSync(join(dir, 'ca.crt')) }, () => {
        const cn = s.getPeerX509Certificate()!.subject;
        s.destroy();
        resolve(cn);
      });
      s.on('error', reject);
    });
    expect(await served()).toBe('CN=broker-v1');
    const kept = await mqtt.connectAsync(`mqtts://127.0.0.1:${port('tls-optional')}`, { ca: readFileSync(join(dir, 'ca.crt')), username: 'alice', password: 'secret', reconnectPeriod: 0 });
    const secret = join(dir, 'secret');
    mkdirSync(join(secret, '..v2'));
    makeLeaf('server2', '/CN=broker-v2', 'server2.ext', join(secret, '..v2'));
    renameSync(join(secret, '..v2', 'server2.crt'), join(secret, '..v2', 'tls.crt'));
    renameSync(join(secret, '..v2', 'server2.key'), join(secret, '..v2', 'tls.key'));
    symlinkSync('..v2', join(secret, '..data_tmp'));
    renameSync(join(secret, '..data_tmp'), join(secret, '..data')); // atomic swap, as the kubelet does
    let subject = '';
    for (let i = 0; i < 50 && subject !== 'CN=broker-v2'; i++) {
      await sleep(100);
      subject = await served();
    }
    expect(subject).toBe('CN=broker-v2');
    expect(kept.connected).toBe(true);
    await kept.publishAsync('reload/t', 'still here', { qos: 1 });
    await kept.endAsync();
  });
});
