// TlsCertificate and AuthSource controllers against the real control plane: issued certificates are
// renewed at notAfter − renewBefore and reach the runtime namespace without a pod roll; secretRef
// certificates (cert-manager style) are copied and their rotation propagates; AuthSource status
// reports Ready with usedBy, or names the missing Secret.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, describeCertificate, issueLeaf } from '../../../operator/pki.ts';
import { kubectl } from '../../support/world.ts';
import {
  apply, b64, condition, ensureNamespace, eventually, get, installCrds, list, startOperator, unb64,
  type MqttDeploymentObj, type Obj, type TestOperator,
} from './harness.ts';
import { runtimeNamespaceName } from '../../../operator/api/names.ts';

const OPERATOR_NS = 'opit-tls-system';
const API = 'mqtt.enclave.dev/v1alpha1';
let op: TestOperator;

interface CertObj extends Obj {
  status?: { serialNumber?: string; sha256Fingerprint?: string; notAfter?: string; renewalTime?: string; conditions?: { type: string; status: string; reason: string; message: string }[] };
}

const cert = (ns: string, name: string): Promise<CertObj | undefined> => get<CertObj>('tlscertificates.mqtt.enclave.dev', name, ns);

/** Every certificate PEM found in the runtime namespace's Secrets, as fingerprints. */
async function runtimeFingerprints(runtimeNs: string): Promise<string[]> {
  const secrets = (await list('secrets', runtimeNs)) as (Obj & { data?: Record<string, string> })[];
  const out: string[] = [];
  for (const s of secrets) {
    for (const v of Object.values(s.data ?? {})) {
      const text = unb64(v);
      if (text.startsWith('-----BEGIN CERTIFICATE-----')) out.push(describeCertificate(text).sha256Fingerprint);
    }
  }
  return out;
}

async function podTemplateHash(runtimeNs: string): Promise<string | undefined> {
  const d = await get<Obj & { spec: { template: { metadata: { annotations?: Record<string, string> } } } }>('deployment', 'broker', runtimeNs);
  return d?.spec.template.metadata.annotations?.['mqtt.enclave.dev/config-hash'];
}

beforeAll(async () => {
  await installCrds();
  await ensureNamespace(OPERATOR_NS);
  op = await startOperator(OPERATOR_NS, 'opit-tls-operator');
});

afterAll(async () => {
  await op?.stop();
});

describe('TlsCertificate issue mode', () => {
  it('renews at notAfter − renewBefore and the new certificate reaches the broker without a pod roll', async () => {
    const ns = 'opit-renew';
    await ensureNamespace(ns);
    await apply([
      { apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'short', namespace: ns }, spec: { issue: { commonName: 'broker', dnsNames: ['broker.local'], duration: '40s', renewBefore: '30s' } } },
      { apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'm', namespace: ns }, spec: { listeners: [{ name: 'mqtts', protocol: 'mqtts', tlsCertificateRef: { name: 'short' } }] } },
    ]);
    const first = await eventually('first certificate', async () => (await cert(ns, 'short'))?.status?.sha256Fingerprint ? cert(ns, 'short') : undefined);
    const runtimeNs = runtimeNamespaceName(ns, 'm');
    await eventually('first certificate in the runtime namespace', async () => (await runtimeFingerprints(runtimeNs)).includes(first.status!.sha256Fingerprint!));
    const hash = await podTemplateHash(runtimeNs);
    expect(hash).toBeTruthy();

    // Renewal is due 10 s after issuance.
    const renewed = await eventually('renewed certificate', async () => {
      const c = await cert(ns, 'short');
      return c?.status?.serialNumber && c.status.serialNumber !== first.status!.serialNumber ? c : undefined;
    }, 60_000);
    expect(Date.parse(renewed.status!.notAfter!)).toBeGreaterThan(Date.parse(first.status!.notAfter!));
    await eventually('renewed certificate in the runtime namespace', async () => (await runtimeFingerprints(runtimeNs)).includes(renewed.status!.sha256Fingerprint!));
    expect(await podTemplateHash(runtimeNs)).toBe(hash);
    await kubectl(['delete', 'mqttdeployment', 'm', '-n', ns, '--wait=false']);
  });
});

describe('TlsCertificate secretRef mode', () => {
  it('copies a kubernetes.io/tls Secret and follows its rotation', async () => {
    const ns = 'opit-secretref';
    await ensureNamespace(ns);
    const now = new Date();
    const ca = await createCa({ commonName: 'external ca', now });
    const one = await issueLeaf({ ca, now, spec: { commonName: 'one' } });
    const two = await issueLeaf({ ca, now, spec: { commonName: 'two' } });
    const tlsSecret = (leaf: typeof one): unknown => ({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'from-cert-manager', namespace: ns, labels: { 'mqtt.enclave.dev/allow-reference': 'true' } }, data: { 'tls.crt': b64(leaf.certPem), 'tls.key': b64(leaf.keyPem), 'ca.crt': b64(ca.certPem) } });
    await apply([
      tlsSecret(one),
      { apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'external', namespace: ns }, spec: { secretRef: { name: 'from-cert-manager' } } },
      { apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'm', namespace: ns }, spec: { listeners: [{ name: 'mqtts', protocol: 'mqtts', tlsCertificateRef: { name: 'external' } }] } },
    ]);
    const runtimeNs = runtimeNamespaceName(ns, 'm');
    await eventually('status shows the first certificate', async () => (await cert(ns, 'external'))?.status?.sha256Fingerprint === one.sha256Fingerprint);
    await eventually('first certificate copied', async () => (await runtimeFingerprints(runtimeNs)).includes(one.sha256Fingerprint));
    const hash = await podTemplateHash(runtimeNs);

    await apply([tlsSecret(two)]);
    await eventually('status shows the rotated certificate', async () => (await cert(ns, 'external'))?.status?.sha256Fingerprint === two.sha256Fingerprint);
    await eventually('rotated certificate copied, old one gone', async () => {
      const fps = await runtimeFingerprints(runtimeNs);
      return fps.includes(two.sha256Fingerprint) && !fps.includes(one.sha256Fingerprint);
    });
    expect(await podTemplateHash(runtimeNs)).toBe(hash);
    await kubectl(['delete', 'mqttdeployment', 'm', '-n', ns, '--wait=false']);
  });
});

describe('AuthSource status', () => {
  it('is Ready with usedBy, or names the missing Secret', async () => {
    const ns = 'opit-sources';
    await ensureNamespace(ns);
    await apply([
      { apiVersion: API, kind: 'AuthSource', metadata: { name: 'certs', namespace: ns }, spec: { type: 'x509', x509: { identityFrom: 'cn' } } },
      { apiVersion: API, kind: 'AuthSource', metadata: { name: 'pg', namespace: ns }, spec: { type: 'postgres', postgres: { host: '10.0.0.5', database: 'mqtt', credentialsSecretRef: { name: 'pg-creds' } }, passwordHash: { algorithm: 'bcrypt' } } },
      { apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'user-a', namespace: ns }, spec: { authentication: { chain: [{ name: 'certs' }] } } },
    ]);
    const source = (name: string) => get<MqttDeploymentObj & { status?: { usedBy?: string[] } }>('authsources.mqtt.enclave.dev', name, ns);
    const ready = await eventually('certs Ready with usedBy', async () => {
      const s = await source('certs');
      return condition(s, 'Ready')?.status === 'True' && s?.status?.usedBy?.includes('user-a') ? s : undefined;
    });
    expect(ready.status?.usedBy).toEqual(['user-a']);
    const broken = await eventually('pg not Ready', async () => {
      const s = await source('pg');
      return condition(s, 'Ready')?.status === 'False' ? s : undefined;
    });
    expect(condition(broken, 'Ready')?.message).toContain('pg-creds');
    await apply([{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pg-creds', namespace: ns, labels: { 'mqtt.enclave.dev/allow-reference': 'true' } }, stringData: { username: 'u', password: 'p' } }]);
    await eventually('pg Ready once its Secret exists', async () => condition(await source('pg'), 'Ready')?.status === 'True');
    await kubectl(['delete', 'mqttdeployment', 'user-a', '-n', ns, '--wait=false']);
  });
});
