// Table tests of the pure builders: the desired object set for a given MqttDeployment and what
// it references. The rendered config is checked with the broker's own validator (the contract).
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateBrokerConfig } from '../../../broker/config.ts';
import { desiredState } from '../../../operator/resources/index.ts';
import { renderBrokerConfig } from '../../../operator/resources/broker-config.ts';
import { deployment } from '../../../operator/resources/deployment.ts';
import { networkPolicies } from '../../../operator/resources/network-policies.ts';
import { podDisruptionBudget } from '../../../operator/resources/pdb.ts';
import { service } from '../../../operator/resources/service.ts';
import { b64, ctx, md, source } from './fixtures.ts';
import { runtimeNamespaceName } from '../../../operator/api/names.ts';
import { mqttDeploymentStatus } from '../../../operator/status/mqtt-deployment.ts';

const pg = source('pg', { type: 'postgres', postgres: { host: '10.0.0.5', database: 'mqtt', credentialsSecretRef: { name: 'pg-creds' } }, egress: [{ cidr: '10.0.0.5/32', port: 5432 }] });
const pgSecrets = { 'pg-creds': { username: b64('u'), password: b64('p') } };

function configOf(c: ReturnType<typeof ctx>) {
  const r = renderBrokerConfig(c);
  return { ...r, config: parse(Buffer.from(r.secret.data!['config.yaml']!, 'base64').toString()) as unknown };
}

describe('desiredState', () => {
  it('lists objects in dependency order, all labelled with the owner UID', () => {
    const d = desiredState(ctx(md()));
    expect(d.entries.map((e) => `${e.ref.kind}/${e.ref.name}${e.object ? '' : ' (delete)'}`)).toEqual([
      `Namespace/${runtimeNamespaceName('team-a', 'prod')}`,
      'NetworkPolicy/default-deny', 'NetworkPolicy/allow-admin-from-operator', 'NetworkPolicy/allow-dns',
      'NetworkPolicy/allow-listeners (delete)', 'NetworkPolicy/allow-auth-backends (delete)', 'NetworkPolicy/allow-state-backend (delete)',
      'ResourceQuota/enclave-ceilings', 'LimitRange/enclave-ceilings',
      // No managed Redis: every object it can have must not exist.
      'NetworkPolicy/allow-redis-from-brokers (delete)', 'NetworkPolicy/allow-brokers-to-redis (delete)',
      'ServiceAccount/broker', 'Secret/broker-config', 'Secret/redis (delete)', 'Service/redis (delete)', 'PersistentVolumeClaim/redis-data (delete)',
      'Deployment/broker', 'Deployment/redis (delete)', 'Service/broker',
      'PodDisruptionBudget/broker (delete)',
    ]);
    for (const e of d.entries) if (e.object) expect(e.object.metadata?.labels?.['mqtt.enclave.dev/owner-uid']).toBe('uid-1');
  });

  it('groups entries into ordered stages: namespace, policies and quota, SA + config, workload', () => {
    const d = desiredState(ctx(md()));
    expect(d.stages.map((st) => st.map((e) => e.ref.kind))).toEqual([
      ['Namespace'],
      ['NetworkPolicy', 'NetworkPolicy', 'NetworkPolicy', 'NetworkPolicy', 'NetworkPolicy', 'NetworkPolicy', 'ResourceQuota', 'LimitRange', 'NetworkPolicy', 'NetworkPolicy'],
      ['ServiceAccount', 'Secret', 'Secret', 'Service', 'PersistentVolumeClaim'],
      ['Deployment', 'Deployment', 'Service', 'PodDisruptionBudget'],
    ]);
    expect(d.stages.flat()).toEqual(d.entries);
  });

  it('is identical when computed twice (nothing time- or order-dependent)', () => {
    const c = ctx(md({ authentication: { chain: [{ name: 'pg' }] } }), { sources: [pg], secrets: pgSecrets });
    expect(JSON.stringify(desiredState(c))).toBe(JSON.stringify(desiredState(c)));
  });
});

describe('renderBrokerConfig', () => {
  it('refuses a source in a chain it cannot serve (the broker would exit at start): http without aclUrl, jwt in authorization', () => {
    const http = source('web', { type: 'http', http: { url: 'http://auth.auth.svc:8080/auth', method: 'POST', bodyFormat: 'json' }, egress: [{ namespace: 'auth', port: 8080 }] });
    const withAcl = source('web', { type: 'http', http: { url: 'http://auth.auth.svc:8080/auth', aclUrl: 'http://auth.auth.svc:8080/acl', method: 'POST', bodyFormat: 'json' }, egress: [{ namespace: 'auth', port: 8080 }] });
    const spec = md({ authentication: { chain: [{ name: 'web' }] }, authorization: { chain: [{ name: 'web' }], noMatch: 'deny' } });
    expect(renderBrokerConfig(ctx(spec, { sources: [http] })).invalid).toEqual([
      'authorization.chain: source "web" (http) cannot authorize without an aclUrl; remove it from the authorization chain',
    ]);
    expect(renderBrokerConfig(ctx(spec, { sources: [withAcl] })).invalid).toEqual([]);
  });

  it.each([
    ['defaults: one mqtt listener on 1883, deny by default', md(), {}, { listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 1883 }], noMatch: 'deny', sources: [] }],
    ['postgres source with copied credentials', md({ authentication: { chain: [{ name: 'pg' }] }, authorization: { chain: [{ name: 'pg' }] } }), { sources: [pg], secrets: pgSecrets },
      { listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 1883 }], noMatch: 'deny', sources: ['pg'] }],
    ['ws listener gets /mqtt path', md({ listeners: [{ name: 'web', protocol: 'ws' }] }), {}, { listeners: [{ name: 'web', protocol: 'ws', port: 8083, path: '/mqtt' }], noMatch: 'deny', sources: [] }],
  ])('%s', (_name, m, extra, expected) => {
    const { config, missing } = configOf(ctx(m, extra));
    expect(missing).toEqual([]);
    const valid = validateBrokerConfig(config);
    expect(valid.listeners.map((l) => ({ name: l.name, protocol: l.protocol, port: l.port, ...(l.path ? { path: l.path } : {}) }))).toEqual(expected.listeners);
    expect(valid.authorization.noMatch).toBe(expected.noMatch);
    expect(Object.keys(valid.sources)).toEqual(expected.sources);
  });

  it('copies credentials into the bundle and points the config at the mounted files', () => {
    const r = configOf(ctx(md({ authentication: { chain: [{ name: 'pg' }] } }), { sources: [pg], secrets: pgSecrets }));
    expect(r.secret.data!['source-pg-password']).toBe(b64('p'));
    expect((r.config as { sources: { pg: { passwordFile: string } } }).sources.pg.passwordFile).toBe('/etc/enclave/source-pg-password');
    expect(Buffer.from(r.secret.data!['config.yaml']!, 'base64').toString()).not.toContain('p\n');
  });

  it.each([
    ['missing AuthSource', md({ authentication: { chain: [{ name: 'nope' }] } }), {}, ['AuthSource nope']],
    ['unusable Secret (absent or not opted in: the same words, once)', md({ authentication: { chain: [{ name: 'pg' }] } }), { sources: [pg] }, ['Secret pg-creds (absent, or without the label mqtt.enclave.dev/allow-reference: "true" that policy SecretReferenceOptIn requires)']],
    ['missing key of an opted-in Secret', md({ authentication: { chain: [{ name: 'pg' }] } }), { sources: [pg], secrets: { 'pg-creds': { username: b64('u') } } }, ['Secret pg-creds key password']],
    ['missing TLS material', md({ listeners: [{ name: 's', protocol: 'mqtts', tlsCertificateRef: { name: 'srv' } }] }), {}, ['TlsCertificate srv']],
  ])('reports %s', (_n, m, extra, expected) => {
    expect(renderBrokerConfig(ctx(m, extra)).missing).toEqual(expected);
  });

  it('config hash changes with config, not with a rotated credential', () => {
    const base = ctx(md({ authentication: { chain: [{ name: 'pg' }] } }), { sources: [pg], secrets: pgSecrets });
    const rotated = ctx(base.md, { sources: [pg], secrets: { 'pg-creds': { username: b64('u'), password: b64('new') } } });
    const changed = ctx(md({ authentication: { chain: [{ name: 'pg' }], allowAnonymous: true } }), { sources: [pg], secrets: pgSecrets });
    expect(renderBrokerConfig(rotated).configHash).toBe(renderBrokerConfig(base).configHash);
    expect(renderBrokerConfig(changed).configHash).not.toBe(renderBrokerConfig(base).configHash);
  });

  it('renders durations in the broker config units, and refuses a malformed one naming its field (never a silent 0)', () => {
    const timed = source('pg', { ...pg.spec, timeout: '1m30s' });
    const good = configOf(ctx(md({ authentication: { chain: [{ name: 'pg' }] }, authorization: { cache: { ttl: '2m' } } }), { sources: [timed], secrets: pgSecrets }));
    expect(good.config).toMatchObject({ sources: { pg: { timeoutMs: 90_000 } }, authorization: { cache: { ttlSeconds: 120 } } });
    expect(good.invalid).toEqual([]);
    const bad = renderBrokerConfig(ctx(md({ authentication: { chain: [{ name: 'pg' }] }, authorization: { cache: { ttl: 'soon' } } }), { sources: [source('pg', { ...pg.spec, timeout: '5x' })], secrets: pgSecrets }));
    expect(bad.invalid).toEqual([
      'spec.authorization.cache.ttl: invalid duration "soon": use Go syntax such as 90s, 10m, 2160h',
      'AuthSource pg spec.timeout: invalid duration "5x": use Go syntax such as 90s, 10m, 2160h',
    ]);
  });
});

describe('deployment', () => {
  it('runs a restricted pod with the config hash, whole-volume secret mount and probes', () => {
    const d = deployment(ctx(md({ replicas: 2 })), 'abc123');
    const pod = d.spec!.template.spec!;
    const c = pod.containers[0]!;
    expect(d.spec!.replicas).toBe(2);
    expect(d.spec!.template.metadata!.annotations).toEqual({ 'mqtt.enclave.dev/config-hash': 'abc123' });
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(c.volumeMounts!.find((v) => v.name === 'config')).toEqual({ name: 'config', mountPath: '/etc/enclave', readOnly: true });
    expect(c.livenessProbe!.httpGet!.path).toBe('/healthz');
    expect(c.readinessProbe!.httpGet!.path).toBe('/readyz');
    expect(c.image).toBe('enclave/broker:test');
  });
});

describe('networkPolicies', () => {
  it.each([
    ['nobody outside: no listener policy', md(), [], ['default-deny', 'allow-admin-from-operator', 'allow-dns']],
    ['allowFrom opens listener ports', md({ network: { allowFrom: [{ namespaceSelector: { matchLabels: { team: 'a' } } }] } }), [], ['default-deny', 'allow-admin-from-operator', 'allow-dns', 'allow-listeners']],
    ['auth backend egress', md({ authentication: { chain: [{ name: 'pg' }] } }), [pg], ['default-deny', 'allow-admin-from-operator', 'allow-dns', 'allow-auth-backends']],
  ])('%s', (_n, m, sources, names) => {
    expect(networkPolicies(ctx(m, { sources })).map((p) => p.metadata!.name)).toEqual(names);
  });

  it('allows exactly the declared backend CIDR and port', () => {
    const p = networkPolicies(ctx(md({ authentication: { chain: [{ name: 'pg' }] } }), { sources: [pg] })).find((x) => x.metadata!.name === 'allow-auth-backends')!;
    expect(p.spec!.egress).toEqual([{ to: [{ ipBlock: { cidr: '10.0.0.5/32' } }], ports: [{ protocol: 'TCP', port: 5432 }] }]);
  });

  it('allows an in-cluster backend by the pods of its namespace, never by its ClusterIP', () => {
    const inCluster = source('pg', { type: 'postgres', postgres: { host: 'pg.databases.svc', database: 'mqtt', credentialsSecretRef: { name: 'pg-creds' } }, egress: [{ namespace: 'databases', podLabels: { app: 'pg' }, port: 5432 }, { namespace: 'auth', port: 8080 }] });
    const p = networkPolicies(ctx(md({ authentication: { chain: [{ name: 'pg' }] } }), { sources: [inCluster] })).find((x) => x.metadata!.name === 'allow-auth-backends')!;
    expect(p.spec!.egress).toEqual([
      { to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'databases' } }, podSelector: { matchLabels: { app: 'pg' } } }], ports: [{ protocol: 'TCP', port: 5432 }] },
      { to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'auth' } }, podSelector: { matchLabels: {} } }], ports: [{ protocol: 'TCP', port: 8080 }] },
    ]);
  });
});

describe('service and PDB', () => {
  it.each([[undefined, false], [1, false], [3, true]])('replicas %s → PDB %s', (replicas, present) => {
    expect(podDisruptionBudget(ctx(md(replicas === undefined ? {} : { replicas }))) !== null).toBe(present);
  });
  it('exposes one port per listener', () => {
    const s = service(ctx(md({ listeners: [{ name: 'a', protocol: 'mqtt' }, { name: 'b', protocol: 'wss', tlsCertificateRef: { name: 't' } }] })));
    expect(s!.spec!.ports!.map((p) => [p.name, p.port])).toEqual([['a', 1883], ['b', 8084]]);
  });
});

describe('listeners whose TlsCertificate does not exist', () => {
  const listeners = [
    { name: 'plain', protocol: 'mqtt' as const },
    { name: 'tls', protocol: 'mqtts' as const, tlsCertificateRef: { name: 'server' } },
    { name: 'mtls', protocol: 'mqtts' as const, port: 8884, tlsCertificateRef: { name: 'other' }, clientAuth: 'required' as const, clientCaRef: { name: 'devices' } },
  ];
  const tls = { server: { crt: b64('S'), key: b64('K') }, other: { crt: b64('O'), key: b64('K') }, devices: { crt: b64('CA'), key: b64('K') } };
  const allowFrom = { network: { allowFrom: [{ podSelector: {} }] } };
  // absent certificate(s) → listeners served, files in the Secret, Deployment replicas, Service present
  it.each([
    [[], ['plain', 'tls', 'mtls'], ['tls-other.crt', 'tls-other.key', 'tls-server.crt', 'tls-server.key', 'clientca-devices.crt'], 1, true],
    [['server'], ['plain', 'mtls'], ['tls-other.crt', 'tls-other.key', 'clientca-devices.crt'], 1, true],
    [['devices'], ['plain', 'tls'], ['tls-server.crt', 'tls-server.key'], 1, true], // a deleted client CA is never trusted again
    [['server', 'other'], ['plain'], [], 1, true],
  ] as [string[], string[], string[], number, boolean][])('absent %j → serves %j', (absent, served, files, replicas, hasService) => {
    const c = ctx(md({ listeners, ...allowFrom }), { tls, absentCertificates: absent });
    const desired = desiredState(c);
    const secret = renderBrokerConfig(c).secret;
    const config = validateBrokerConfig(parse(Buffer.from(secret.data!['config.yaml']!, 'base64').toString()));
    expect(config.listeners.map((l) => l.name)).toEqual(served);
    expect(Object.keys(secret.data!).filter((k) => k !== 'config.yaml').sort()).toEqual([...files].sort());
    expect(deployment(c, 'h').spec!.replicas).toBe(replicas);
    expect(deployment(c, 'h').spec!.template.spec!.containers[0]!.ports!.map((p) => p.name)).toEqual([...served, 'admin']);
    expect(service(c)!.spec!.ports!.map((p) => p.name)).toEqual(served);
    expect(service(c) !== null).toBe(hasService);
    const ingress = networkPolicies(c).find((p) => p.metadata!.name === 'allow-listeners')!;
    expect(ingress.spec!.ingress![0]!.ports!.map((p) => p.port)).toEqual(served.map((n) => ({ plain: 1883, tls: 8883, mtls: 8884 })[n]));
    expect(desired.missing).toEqual([]);
    expect(desired.disabled.map((d) => d.name)).toEqual(listeners.map((l) => l.name).filter((n) => !served.includes(n)));
  });

  it('no listener left: no pods, no Service, and no listener policy (an empty port list would allow every port)', () => {
    const c = ctx(md({ listeners: listeners.slice(1), ...allowFrom }), { tls, absentCertificates: ['server', 'other'] });
    expect(deployment(c, 'h').spec!.replicas).toBe(0);
    expect(service(c)).toBeNull();
    expect(networkPolicies(c).map((p) => p.metadata!.name)).not.toContain('allow-listeners');
    const svc = desiredState(c).entries.find((e) => e.ref.kind === 'Service' && e.ref.name === 'broker')!;
    expect(svc.object).toBeNull();
    expect(desiredState(c).disabled).toEqual([{ name: 'tls', absent: ['server'] }, { name: 'mtls', absent: ['other'] }]);
  });

  it('a certificate that exists but is not issued yet is a missing reference, not a disabled listener', () => {
    const c = ctx(md({ listeners }), { tls: { other: tls.other, devices: tls.devices } }); // server: CR exists, no material yet
    expect(desiredState(c).missing).toEqual(['TlsCertificate server']);
    expect(desiredState(c).disabled).toEqual([]);
  });
});

describe('the rendered config is checked by the broker\'s own validation', () => {
  const http = (spec: Record<string, unknown>) => source('auth', { type: 'http', http: { url: 'https://auth.example/check', ...spec } });
  it.each([
    [{ method: 'POST' }, []],
    [{ method: 'GET', body: { u: '${username}', p: '${password}' } }, ['sources.auth.body.p: ${password} (or %P) is not allowed with method GET']],
    [{ method: 'GET' }, ['sources.auth.body: is required with method GET']],
  ] as [Record<string, unknown>, string[]][])('http %j → %j', (spec, problems) => {
    const c = ctx(md({ authentication: { chain: [{ name: 'auth' }] } }), { sources: [http(spec)] });
    const d = desiredState(c);
    expect(d.invalid).toHaveLength(problems.length);
    problems.forEach((p, i) => expect(d.invalid[i]).toContain(p));
  });
  it('an invalid config is reported with its paths and never applied', () => {
    const s = mqttDeploymentStatus(md(), { namespace: 'n', missing: [], invalid: ['sources.auth.body: is required with method GET'], replicas: 0, readyReplicas: 0, updatedReplicas: 0 }, '2026-01-01T00:00:00.000Z');
    const ready = s.conditions!.find((x) => x.type === 'Ready')!;
    expect([ready.status, ready.reason]).toEqual(['False', 'InvalidConfig']);
    expect(ready.message).toContain('sources.auth.body: is required with method GET');
  });
});
