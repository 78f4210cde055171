// The operator against the real control plane: CRs applied with kubectl, assertions on the objects in
// the API server. One operator process for the file (namespace opit-system), killed and restarted
// where the scenario needs it. Tenants are opit-* namespaces.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { validateBrokerConfig } from '../../../broker/config.ts';
import { kubectl } from '../../support/world.ts';
import {
  apply, applyFails, condition, ensureNamespace, eventually, get, installCrds, list, operatorLog, reconcileCount, sleep, startOperator, unb64,
  type MqttDeploymentObj, type Obj, type TestOperator,
} from './harness.ts';
import { runtimeNamespaceName } from '../../../operator/api/names.ts';

const OPERATOR_NS = 'opit-system';
const IDENTITY = 'opit-operator';
const API = 'mqtt.enclave.dev/v1alpha1';
let op: TestOperator;

const users = (password: string): string => `users:\n  - username: alice\n    password_hash: ${password}\nacl: []\n`;

function tenant(ns: string, name: string, extra: Record<string, unknown> = {}): unknown[] {
  return [
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'users', namespace: ns, labels: { 'mqtt.enclave.dev/allow-reference': 'true' } }, stringData: { 'users.yaml': users('h1') } },
    { apiVersion: API, kind: 'AuthSource', metadata: { name: 'builtin', namespace: ns }, spec: { type: 'builtin', builtin: { secretRef: { name: 'users', key: 'users.yaml' } }, passwordHash: { algorithm: 'plain' }, egress: [{ cidr: '10.9.8.0/24', port: 5432 }] } },
    { apiVersion: API, kind: 'MqttDeployment', metadata: { name, namespace: ns }, spec: { listeners: [{ name: 'mqtt', protocol: 'mqtt' }], authentication: { chain: [{ name: 'builtin' }] }, authorization: { chain: [{ name: 'builtin' }] }, ...extra } },
  ];
}

const md = (ns: string, name: string): Promise<MqttDeploymentObj | undefined> => get<MqttDeploymentObj>('mqttdeployments.mqtt.enclave.dev', name, ns);

async function reconciled(ns: string, name: string): Promise<MqttDeploymentObj> {
  return eventually(`MqttDeployment ${ns}/${name} reconciled`, async () => {
    const m = await md(ns, name);
    const secret = m?.status?.namespace ? await get('secret', 'broker-config', m.status.namespace) : undefined;
    return m?.status?.observedGeneration === m?.metadata.generation && m?.status?.configHash && secret ? m : undefined;
  });
}

/** name → resourceVersion of every object the operator owns for one deployment, plus the CR. */
async function versions(ns: string, name: string, runtimeNs: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const m = await md(ns, name);
  out['cr'] = m?.metadata.resourceVersion ?? '';
  out['namespace'] = (await get('namespace', runtimeNs))?.metadata.resourceVersion ?? '';
  for (const kind of ['networkpolicies', 'serviceaccounts', 'secrets', 'deployments', 'services', 'poddisruptionbudgets']) {
    for (const o of await list(kind, runtimeNs)) out[`${kind}/${o.metadata.name}`] = o.metadata.resourceVersion;
  }
  return out;
}

beforeAll(async () => {
  await installCrds();
  await ensureNamespace(OPERATOR_NS);
  op = await startOperator(OPERATOR_NS, IDENTITY);
});

afterAll(async () => {
  await op?.stop();
});

describe('CRD validation (API server, before the operator)', () => {
  it('rejects duplicate listener ports with the CEL message', async () => {
    await ensureNamespace('opit-invalid');
    const stderr = await applyFails([{ apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'dup', namespace: 'opit-invalid' }, spec: { listeners: [{ name: 'a', protocol: 'mqtt', port: 1883 }, { name: 'b', protocol: 'ws', port: 1883 }] } }]);
    expect(stderr).toContain('listener ports must be unique');
  });

  // Every cross-field rule of the three CRDs, through the real API server: the bad object is
  // refused with the rule's own message (what `kubectl apply` prints to the user).
  const builtin = { type: 'builtin', builtin: { secretRef: { name: 'u' } }, passwordHash: { algorithm: 'bcrypt' } };
  const egress = (cidr: string) => ({ ...builtin, egress: [{ cidr, port: 5432 }] });
  it.each([
    ['MqttDeployment', { listeners: [{ name: 'a', protocol: 'mqtts' }] }, 'mqtts and wss listeners need tlsCertificateRef'],
    ['MqttDeployment', { listeners: [{ name: 'a', protocol: 'mqtt', tlsCertificateRef: { name: 't' } }] }, 'tlsCertificateRef is only valid on mqtts and wss listeners'],
    ['MqttDeployment', { listeners: [{ name: 'a', protocol: 'mqtts', tlsCertificateRef: { name: 't' }, clientAuth: 'required' }] }, 'clientAuth optional/required needs a TLS listener (mqtts, wss) and clientCaRef'],
    ['MqttDeployment', { listeners: [{ name: 'a', protocol: 'mqtt', path: '/x' }] }, 'path is only valid on ws and wss listeners'],
    ['AuthSource', { type: 'postgres', builtin: builtin.builtin, passwordHash: builtin.passwordHash }, 'exactly the block named by type must be set'],
    ['AuthSource', { type: 'postgres', x509: { identityFrom: 'cn' }, postgres: { host: 'db', database: 'd' }, passwordHash: builtin.passwordHash }, 'exactly the block named by type must be set'],
    ['AuthSource', { type: 'builtin', builtin: builtin.builtin }, 'passwordHash is required for builtin, postgres, mysql and redis sources'],
    ['AuthSource', { ...builtin, passwordHash: { algorithm: 'pbkdf2' } }, 'passwordHash algorithm pbkdf2 needs macFun and iterations'],
    ['AuthSource', { type: 'jwt', jwt: { secretRef: { name: 's' }, jwksUrl: 'https://idp/jwks' } }, 'jwt needs exactly one of secretRef, publicKeySecretRef, jwksSecretRef, jwksUrl'],
    ['AuthSource', egress('0.0.0.0/0'), 'cidr is too broad'],
    ['AuthSource', egress('169.254.169.254/32'), 'cidr must not reach the link-local range 169.254.0.0/16'],
    ['AuthSource', egress('169.0.0.0/8'), 'cidr must not reach the link-local range 169.254.0.0/16'],
    ['AuthSource', egress('fd00:ec2::254/128'), 'cidr must not reach the IPv6 link-local range'],
    ['TlsCertificate', { issue: { commonName: 'x', duration: '24h' } }, 'duration must be longer than the default renewBefore (720h)'],
    ['TlsCertificate', { issue: { commonName: 'x', renewBefore: '3000h' } }, 'renewBefore must be shorter than the default duration (2160h)'],
    ['TlsCertificate', { issue: { commonName: 'x', duration: '24h', renewBefore: '48h' } }, 'renewBefore must be shorter than duration'],
  ] as [string, Record<string, unknown>, string][])('%s %j is refused: %s', async (kind, spec, message) => {
    await ensureNamespace('opit-invalid');
    const stderr = await applyFails([{ apiVersion: API, kind, metadata: { name: 'bad', namespace: 'opit-invalid' }, spec }]);
    expect(stderr).toContain(message);
  });

  it('accepts what those rules allow (a narrow egress range, a short certificate with its own renewBefore)', async () => {
    await apply([
      { apiVersion: API, kind: 'AuthSource', metadata: { name: 'ok-egress', namespace: 'opit-invalid' }, spec: egress('10.20.0.0/16') },
      { apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'ok-short', namespace: 'opit-invalid' }, spec: { issue: { commonName: 'x', duration: '24h', renewBefore: '8h' } } },
    ]);
  });

  it('rejects a TlsCertificate with both secretRef and issue', async () => {
    const stderr = await applyFails([{ apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'both', namespace: 'opit-invalid' }, spec: { secretRef: { name: 'x' }, issue: { commonName: 'x' } } }]);
    expect(stderr).toContain('exactly one of secretRef and issue must be set');
  });
});

describe('MqttDeployment → runtime namespace', () => {
  const ns = 'opit-full';
  const name = 'prod';
  const runtimeNs = runtimeNamespaceName(ns, name);

  it('creates the full, locked-down object set', async () => {
    await ensureNamespace(ns);
    await apply(tenant(ns, name, { replicas: 2, state: { backend: 'redis', redis: { managed: {} } } }));
    const m = await reconciled(ns, name);
    expect(m.status?.namespace).toBe(runtimeNs);
    expect(m.metadata.finalizers).toContain('mqtt.enclave.dev/purge');

    const owner = { 'app.kubernetes.io/managed-by': 'enclave-operator', 'mqtt.enclave.dev/owner-uid': m.metadata.uid, 'mqtt.enclave.dev/owner-name': name, 'mqtt.enclave.dev/owner-namespace': ns };
    const namespace = await get('namespace', runtimeNs);
    expect(namespace?.metadata.labels).toMatchObject({ ...owner, 'pod-security.kubernetes.io/enforce': 'restricted' });

    const policies = await list('networkpolicies', runtimeNs);
    const deny = policies.find((p) => ((p['spec'] as { podSelector: object }).podSelector && Object.keys((p['spec'] as { podSelector: object }).podSelector).length === 0 && JSON.stringify((p['spec'] as { policyTypes?: string[] }).policyTypes?.slice().sort()) === '["Egress","Ingress"]'));
    expect(deny, 'a default-deny policy for all pods, ingress and egress').toBeDefined();
    const allJson = JSON.stringify(policies);
    expect(allJson).toContain('10.9.8.0/24'); // the AuthSource's declared egress
    expect(allJson).toContain(`"kubernetes.io/metadata.name":"${OPERATOR_NS}"`); // admin port from the operator namespace only
    expect(allJson).toContain('"port":53');
    for (const p of policies) expect(p.metadata.labels).toMatchObject(owner);

    const sas = await list('serviceaccounts', runtimeNs);
    const sa = sas.find((s) => s.metadata.labels?.['mqtt.enclave.dev/owner-uid'] === m.metadata.uid);
    expect(sa?.['automountServiceAccountToken']).toBe(false);

    const deploy = await get<Obj & { spec: { replicas: number; template: { metadata: { annotations: Record<string, string> }; spec: Record<string, unknown> & { containers: Record<string, unknown>[]; volumes: Record<string, unknown>[] } } } }>('deployment', 'broker', runtimeNs);
    expect(deploy?.metadata.labels).toMatchObject(owner);
    expect(deploy?.spec.replicas).toBe(2);
    expect(deploy?.spec.template.metadata.annotations['mqtt.enclave.dev/config-hash']).toBe(m.status?.configHash);
    const pod = deploy!.spec.template.spec;
    const container = pod.containers[0] as { securityContext: Record<string, unknown>; volumeMounts: { subPath?: string }[]; livenessProbe: { httpGet: { path: string } }; readinessProbe: { httpGet: { path: string } }; resources?: object };
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(JSON.stringify(pod['securityContext']) + JSON.stringify(container.securityContext)).toContain('"runAsNonRoot":true');
    expect(JSON.stringify(pod['securityContext']) + JSON.stringify(container.securityContext)).toContain('"RuntimeDefault"');
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(container.volumeMounts.every((v) => v.subPath === undefined)).toBe(true);
    expect(pod.volumes.some((v) => (v['secret'] as { secretName?: string } | undefined)?.secretName === 'broker-config')).toBe(true);

    const secret = await get<Obj & { data: Record<string, string> }>('secret', 'broker-config', runtimeNs);
    expect(secret?.metadata.labels).toMatchObject(owner);
    const config = validateBrokerConfig(parseYaml(unb64(secret?.data['config.yaml'])), 'rendered config.yaml');
    expect(config.listeners.map((l) => [l.name, l.protocol, l.port])).toEqual([['mqtt', 'mqtt', 1883]]);
    expect(config.authentication.chain).toEqual(['builtin']);
    const builtin = config.sources['builtin'];
    expect(builtin?.type).toBe('builtin');
    // The credentials file the config points at is in the Secret, with the tenant's bytes.
    const dataFile = builtin && builtin.type === 'builtin' ? builtin.dataFile : '';
    expect(unb64(secret?.data[dataFile.slice(dataFile.lastIndexOf('/') + 1)])).toBe(users('h1'));

    const svc = await get<Obj & { spec: { ports: { port: number }[] } }>('service', 'broker', runtimeNs);
    expect(svc?.spec.ports.map((p) => p.port)).toContain(1883);
    expect(await get('poddisruptionbudget', 'broker', runtimeNs)).toBeDefined();
  });

  it('writes nothing when reconciled again (restart = full resync)', async () => {
    // Settle first: the broker pods really run, so status follows the kubelet (pods ready) and the
    // Deployment controller's own writes for a while: wait for Ready, then for a quiet window.
    await eventually('the broker is Ready', async () => condition(await md(ns, name), 'Ready')?.status === 'True', 120_000);
    let before = await versions(ns, name, runtimeNs);
    await eventually('objects settled', async () => {
      await sleep(4000);
      const now = await versions(ns, name, runtimeNs);
      const same = JSON.stringify(now) === JSON.stringify(before);
      before = now;
      return same;
    });
    await op.stop();
    op = await startOperator(OPERATOR_NS, IDENTITY);
    await eventually('resync after restart', () => Promise.resolve(reconcileCount(op, ns, name) >= 1));
    await sleep(2000); // let any write the resync would make land before comparing
    expect(await versions(ns, name, runtimeNs)).toEqual(before);
  });

  it('repairs drift: an edited pod template and a deleted NetworkPolicy come back, with no resync', async () => {
    // A cluster admin (or an attacker with edit rights in the runtime namespace) loosens the pod and
    // drops the fence; the owned-object watches bring the declared state back.
    await kubectl(['-n', runtimeNs, 'patch', 'deployment', 'broker', '--type=json', '-p',
      '[{"op":"replace","path":"/spec/template/spec/containers/0/securityContext/readOnlyRootFilesystem","value":false}]']);
    await kubectl(['-n', runtimeNs, 'delete', 'networkpolicy', 'default-deny']);
    await eventually('the pod template is read-only again', async () => {
      const d = await get<Obj & { spec: { template: { spec: { containers: { securityContext: { readOnlyRootFilesystem: boolean } }[] } } } }>('deployment', 'broker', runtimeNs);
      return d?.spec.template.spec.containers[0]?.securityContext.readOnlyRootFilesystem === true;
    }, 20_000);
    await eventually('default-deny is back', async () => (await get('networkpolicy', 'default-deny', runtimeNs)) !== undefined, 20_000);
    expect(operatorLog(op)).toContain('Owned object changed outside the operator; re-applying');
  });

  it('scaling to 1 deletes the PodDisruptionBudget', async () => {
    await kubectl(['patch', 'mqttdeployment', name, '-n', ns, '--type=merge', '-p', '{"spec":{"replicas":1}}']);
    await eventually('PDB gone', async () => (await get('poddisruptionbudget', 'broker', runtimeNs)) === undefined);
    await reconciled(ns, name);
  });

  it('propagates a rotated credential without changing the config hash (no pod roll)', async () => {
    const hashBefore = (await reconciled(ns, name)).status?.configHash;
    await apply([{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'users', namespace: ns, labels: { 'mqtt.enclave.dev/allow-reference': 'true' } }, stringData: { 'users.yaml': users('h2') } }]);
    await eventually('rotated credential in the runtime Secret', async () => {
      const s = await get<Obj & { data: Record<string, string> }>('secret', 'broker-config', runtimeNs);
      return Object.values(s?.data ?? {}).some((v) => unb64(v) === users('h2'));
    });
    const deploy = await get<Obj & { spec: { template: { metadata: { annotations: Record<string, string> } } } }>('deployment', 'broker', runtimeNs);
    expect(deploy?.spec.template.metadata.annotations['mqtt.enclave.dev/config-hash']).toBe(hashBefore);
    expect((await md(ns, name))?.status?.configHash).toBe(hashBefore);
  });

  it('a config change changes the hash and the pod template', async () => {
    const hashBefore = (await reconciled(ns, name)).status?.configHash;
    await kubectl(['patch', 'mqttdeployment', name, '-n', ns, '--type=merge', '-p', '{"spec":{"limits":{"maxConnections":77}}}']);
    const m = await eventually('new config hash', async () => {
      const x = await reconciled(ns, name);
      return x.status?.configHash !== hashBefore ? x : undefined;
    });
    const deploy = await get<Obj & { spec: { template: { metadata: { annotations: Record<string, string> } } } }>('deployment', 'broker', runtimeNs);
    expect(deploy?.spec.template.metadata.annotations['mqtt.enclave.dev/config-hash']).toBe(m.status?.configHash);
  });

  it('purges the runtime namespace, its Secrets and the finalizer on delete', async () => {
    await kubectl(['delete', 'mqttdeployment', name, '-n', ns, '--wait=false']);
    await eventually('CR gone', async () => (await md(ns, name)) === undefined, 90_000);
    await eventually('runtime namespace gone', async () => (await get('namespace', runtimeNs)) === undefined, 90_000);
  });
});

describe('references', () => {
  it('an unknown AuthSource is Ready=False with a message naming it, and recovers when it appears', async () => {
    const ns = 'opit-refs';
    await ensureNamespace(ns);
    await apply([{ apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'm', namespace: ns }, spec: { authentication: { chain: [{ name: 'later' }] } } }]);
    const m = await eventually('Ready=False', async () => {
      const x = await md(ns, 'm');
      return condition(x, 'Ready')?.status === 'False' && condition(x, 'Ready')?.message.includes('later') ? x : undefined;
    });
    expect(condition(m, 'Ready')?.observedGeneration).toBe(m.metadata.generation);
    await apply([{ apiVersion: API, kind: 'AuthSource', metadata: { name: 'later', namespace: ns }, spec: { type: 'x509', x509: { identityFrom: 'cn' } } }]);
    await eventually('config rendered once the AuthSource exists', async () => {
      const x = await md(ns, 'm');
      return x?.status?.namespace && (await get('secret', 'broker-config', x.status.namespace)) !== undefined && !condition(x, 'Ready')?.message.includes('later');
    });
    await kubectl(['delete', 'mqttdeployment', 'm', '-n', ns, '--wait=false']);
  });

  it('issues a TlsCertificate from the tenant CA and reports validity, serial and fingerprint', async () => {
    const ns = 'opit-tls';
    await ensureNamespace(ns);
    await apply([
      { apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'server', namespace: ns }, spec: { issue: { commonName: 'broker', dnsNames: ['broker.example'], duration: '48h', renewBefore: '12h' } } },
      { apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'secure', namespace: ns }, spec: { listeners: [{ name: 'mqtts', protocol: 'mqtts', tlsCertificateRef: { name: 'server' } }] } },
    ]);
    const cert = await eventually('certificate status', async () => {
      const c = await get<Obj & { status?: { notAfter?: string; notBefore?: string; renewalTime?: string; serialNumber?: string; sha256Fingerprint?: string } }>('tlscertificates.mqtt.enclave.dev', 'server', ns);
      return c?.status?.sha256Fingerprint ? c : undefined;
    });
    const st = cert.status!;
    expect(Date.parse(st.notAfter!) - Date.parse(st.renewalTime!)).toBe(12 * 3_600_000);
    expect(st.serialNumber).toMatch(/^[0-9A-F]+$/);
    const m = await reconciled(ns, 'secure');
    const secrets = await list('secrets', m.status!.namespace!);
    // The listener's certificate reached the runtime namespace (as a file the config names).
    const configSecret = secrets.find((s) => s.metadata.name === 'broker-config') as (Obj & { data: Record<string, string> }) | undefined;
    const config = validateBrokerConfig(parseYaml(unb64(configSecret?.data['config.yaml'])));
    expect(config.listeners[0]?.tls?.certFile).toBeTruthy();
    const allData = secrets.flatMap((s) => Object.values((s as Obj & { data?: Record<string, string> }).data ?? {})).map(unb64);
    expect(allData.some((d) => d.includes('BEGIN CERTIFICATE'))).toBe(true);
    await kubectl(['delete', 'mqttdeployment', 'secure', '-n', ns, '--wait=false']);
    // The issued key lives no longer than its TlsCertificate (ownerReference → garbage collector).
    expect(await get('secret', 'server-tls', ns)).toBeDefined();
    await kubectl(['delete', 'tlscertificates.mqtt.enclave.dev', 'server', '-n', ns]);
    await eventually('the issued Secret is garbage-collected', async () => (await get('secret', 'server-tls', ns)) === undefined, 30_000);
  });
});

describe('ownership', () => {
  it('never adopts a namespace whose owner-UID label does not match, and says so in status', async () => {
    const ns = 'opit-conflict';
    const foreign = runtimeNamespaceName(ns, 'taken');
    await ensureNamespace(ns);
    await apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: foreign, labels: { team: 'someone-else' } } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'precious', namespace: foreign }, data: { k: 'v' } },
    ]);
    const before = await get('namespace', foreign);
    await apply([{ apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'taken', namespace: ns }, spec: {} }]);
    const m = await eventually('OwnershipConflict reported', async () => {
      const x = await md(ns, 'taken');
      return JSON.stringify(x?.status?.conditions ?? []).includes('OwnershipConflict') ? x : undefined;
    });
    expect(condition(m, 'Ready')?.status).toBe('False');
    const after = await get('namespace', foreign);
    expect(after?.metadata.resourceVersion).toBe(before?.metadata.resourceVersion);
    expect(await list('secrets', foreign)).toEqual([]);
    expect(await list('deployments', foreign)).toEqual([]);
    // Deleting the CR must not delete the foreign namespace.
    await kubectl(['delete', 'mqttdeployment', 'taken', '-n', ns]);
    expect((await get('namespace', foreign))?.metadata.deletionTimestamp).toBeUndefined();
    expect(await get('configmap', 'precious', foreign)).toBeDefined();
  });
});

describe('purge', () => {
  it('finishes when the operator is killed mid-purge and restarted', async () => {
    const ns = 'opit-killed';
    const runtimeNs = runtimeNamespaceName(ns, 'prod');
    await ensureNamespace(ns);
    await apply(tenant(ns, 'prod'));
    await reconciled(ns, 'prod');
    await op.kill();
    // Deleted while no operator runs: the finalizer holds the CR.
    await kubectl(['delete', 'mqttdeployment', 'prod', '-n', ns, '--wait=false']);
    expect((await md(ns, 'prod'))?.metadata.deletionTimestamp).toBeDefined();
    op = await startOperator(OPERATOR_NS, IDENTITY);
    // Kill it again as soon as the purge has started (namespace terminating), then restart.
    await eventually('purge started', async () => (await get('namespace', runtimeNs))?.metadata.deletionTimestamp !== undefined || (await get('namespace', runtimeNs)) === undefined);
    await op.kill();
    op = await startOperator(OPERATOR_NS, IDENTITY);
    await eventually('CR gone', async () => (await md(ns, 'prod')) === undefined, 90_000);
    expect(await get('namespace', runtimeNs)).toBeUndefined();
  });

  it('deletionPolicy Retain keeps the namespace and strips the owner labels', async () => {
    const ns = 'opit-retain';
    const runtimeNs = runtimeNamespaceName(ns, 'keep');
    await ensureNamespace(ns);
    await apply(tenant(ns, 'keep', { deletionPolicy: 'Retain' }));
    await reconciled(ns, 'keep');
    await kubectl(['delete', 'mqttdeployment', 'keep', '-n', ns, '--wait=false']);
    await eventually('CR gone', async () => (await md(ns, 'keep')) === undefined, 60_000);
    const kept = await get('namespace', runtimeNs);
    expect(kept?.metadata.deletionTimestamp).toBeUndefined();
    expect(kept?.metadata.labels?.['mqtt.enclave.dev/owner-uid']).toBeUndefined();
  });
});
