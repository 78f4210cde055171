// Policy SecretReferenceOptIn against the real API server: a Secret is used by an AuthSource or a
// TlsCertificate only once its owner labelled it mqtt.enclave.dev/allow-reference=true. Before
// that its value never reaches a runtime namespace, status names the policy, and status reads the
// same whether the Secret exists or not (nothing learned about Secrets one cannot read).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl } from '../../support/world.ts';
import { createCa, issueLeaf } from '../../../operator/pki.ts';
import { runtimeNamespaceName } from '../../../operator/api/names.ts';
import { apply, b64, condition, ensureNamespace, eventually, get, installCrds, list, startOperator, unb64, type MqttDeploymentObj, type Obj, type TestOperator } from './harness.ts';

const OPERATOR_NS = 'srit-system';
const API = 'mqtt.enclave.dev/v1alpha1';
const OPT_IN = { 'mqtt.enclave.dev/allow-reference': 'true' };
const TOKEN = 'srit-bearer-token-value';
let op: TestOperator;

type WithStatus = MqttDeploymentObj & { status?: MqttDeploymentObj['status'] & { sha256Fingerprint?: string } };
const cr = (kind: string, name: string, ns: string): Promise<WithStatus | undefined> => get<WithStatus>(`${kind}.mqtt.enclave.dev`, name, ns);
const httpSource = (ns: string, name: string, secret: string): unknown => ({
  apiVersion: API, kind: 'AuthSource', metadata: { name, namespace: ns },
  spec: { type: 'http', http: { url: 'http://auth.example:8080/auth', bearerTokenSecretRef: { name: secret, key: 'token' } }, egress: [{ cidr: '10.77.0.0/16', port: 8080 }] },
});

beforeAll(async () => {
  await installCrds();
  await ensureNamespace(OPERATOR_NS);
  op = await startOperator(OPERATOR_NS, 'srit-operator');
});

afterAll(async () => {
  await op?.stop();
});

describe('SecretReferenceOptIn', () => {
  it('an AuthSource naming a Secret without the label gets nothing from it, and status names the policy', async () => {
    const ns = 'srit-token';
    await ensureNamespace(ns);
    await apply([
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'cluster-token', namespace: ns }, stringData: { token: TOKEN } },
      httpSource(ns, 'exfil', 'cluster-token'),
      { apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'm', namespace: ns }, spec: { authentication: { chain: [{ name: 'exfil' }] } } },
    ]);
    const md = await eventually('MqttDeployment refused the reference', async () => {
      const m = await cr('mqttdeployments', 'm', ns);
      return condition(m, 'Ready')?.reason === 'InvalidReference' ? m : undefined;
    });
    expect(condition(md, 'Ready')?.message).toContain('policy SecretReferenceOptIn');
    const source = await eventually('AuthSource refused the reference', async () => {
      const s = await cr('authsources', 'exfil', ns);
      return condition(s, 'Ready')?.status === 'False' ? s : undefined;
    });
    expect(condition(source, 'Ready')?.message).toContain('mqtt.enclave.dev/allow-reference: "true"');
    // Nothing was rendered, so the token is nowhere in the runtime namespace.
    const runtimeNs = runtimeNamespaceName(ns, 'm');
    const copies = await list('secrets', runtimeNs).catch(() => [] as Obj[]);
    expect(copies.flatMap((s) => Object.values((s as Obj & { data?: Record<string, string> }).data ?? {})).map(unb64).join()).not.toContain(TOKEN);

    // The Secret's owner opts in: now, and only now, the token is copied.
    await kubectl(['label', 'secret', 'cluster-token', '-n', ns, 'mqtt.enclave.dev/allow-reference=true']);
    const config = await eventually('token copied after the opt-in', async () => {
      const s = await get<Obj & { data?: Record<string, string> }>('secret', 'broker-config', runtimeNs);
      return s?.data?.['source-exfil-token'] ? s : undefined;
    });
    expect(unb64(config.data!['source-exfil-token'])).toBe(TOKEN);
    await kubectl(['delete', 'mqttdeployment', 'm', '-n', ns, '--wait=false']);
  });

  it('AuthSource status reads the same for a Secret that exists without the label, with the key or without, and one that does not exist', async () => {
    const ns = 'srit-oracle';
    await ensureNamespace(ns);
    await apply([
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'has-key', namespace: ns }, stringData: { token: TOKEN } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'no-key', namespace: ns }, stringData: { other: 'x' } },
      httpSource(ns, 'probe-has-key', 'has-key'),
      httpSource(ns, 'probe-no-key', 'no-key'),
      httpSource(ns, 'probe-never-made', 'never-made'),
    ]);
    const messages = await Promise.all(['has-key', 'no-key', 'never-made'].map((secret) => eventually(`probe-${secret} reported`, async () => {
      const s = await cr('authsources', `probe-${secret}`, ns);
      const ready = condition(s, 'Ready');
      return ready?.status === 'False' ? `${ready.reason}: ${ready.message.replaceAll(secret, '<secret>')}` : undefined;
    })));
    expect(new Set(messages).size).toBe(1);
    expect(messages[0]).not.toContain('key token');

    // Opted in, a missing key is the owner's own business to hear about.
    await apply([{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'no-key', namespace: ns, labels: OPT_IN }, stringData: { other: 'x' } }]);
    await eventually('missing key named once opted in', async () => condition(await cr('authsources', 'probe-no-key', ns), 'Ready')?.message.includes('Secret no-key key token'));
  });

  it('a TlsCertificate secretRef to a Secret without the label reports the policy and no certificate facts', async () => {
    const ns = 'srit-tls';
    await ensureNamespace(ns);
    const now = new Date();
    const ca = await createCa({ commonName: 'srit ca', now });
    const leaf = await issueLeaf({ ca, now, spec: { commonName: 'someone-elses' } });
    await apply([
      { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'ingress-cert', namespace: ns }, data: { 'tls.crt': b64(leaf.certPem), 'tls.key': b64(leaf.keyPem) } },
      { apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'borrowed', namespace: ns }, spec: { secretRef: { name: 'ingress-cert' } } },
    ]);
    const cert = await eventually('TlsCertificate refused', async () => {
      const c = await cr('tlscertificates', 'borrowed', ns);
      return condition(c, 'Ready')?.status === 'False' ? c : undefined;
    });
    expect(condition(cert, 'Ready')?.message).toContain('policy SecretReferenceOptIn');
    expect(cert.status?.sha256Fingerprint).toBeUndefined();
  });

  it('issue mode never overwrites a tenant Secret of the same name that the cache does not hold', async () => {
    const ns = 'srit-issue';
    await ensureNamespace(ns);
    await apply([{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'server-tls', namespace: ns }, stringData: { precious: 'keep me' } }]);
    const before = await get('secret', 'server-tls', ns);
    await apply([{ apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'server', namespace: ns }, spec: { issue: { commonName: 'broker' } } }]);
    await eventually('OwnershipConflict reported', async () => condition(await cr('tlscertificates', 'server', ns), 'Ready')?.reason === 'OwnershipConflict');
    expect((await get('secret', 'server-tls', ns))?.metadata.resourceVersion).toBe(before?.metadata.resourceVersion);
  });
});
