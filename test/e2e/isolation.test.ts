// Scenario 4, isolation: two tenants, each with its own builtin users (tenant B also with a Redis
// source that declares backend egress). Tenant A's credentials are refused by tenant B's broker
// (and vice versa); each runtime namespace holds exactly the expected default-deny NetworkPolicy
// set, spec for spec; a user with enclave-edit in tenant A's namespace cannot read either runtime
// namespace's Secrets.
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { asUser, helm, kubectl, world } from '../support/world.ts';
import { API, OPERATOR_NS, apply, brokerOf, connect, list, mosquitto, refusal, startEnclave, subscriber, deleteAndWait, eventually, type Enclave, SECRET_OPT_IN } from './support/harness.ts';

const A = 'e2e-iso-a';
const B = 'e2e-iso-b';
const EDIT_ROLE = 'e2e-iso-enclave-edit';
let e: Enclave;
const ports: Record<string, number> = {};
const runtime: Record<string, string> = {};

/**
 * One tenant: builtin users for both; `withBackend` adds a Redis AuthSource behind them in the
 * authorization chain (never consulted for the tenant's own topics, but it declares egress), so one
 * runtime namespace has an allow-auth-backends policy and the other must not.
 */
function tenant(ns: string, user: string, password: string, withBackend = false): unknown[] {
  const users = `users:\n  - username: ${user}\n    password_hash: '${bcrypt.hashSync(password, 8)}'\nacl:\n  - username: ${user}\n    permission: allow\n    action: all\n    topic: '${ns}/#'\n`;
  const redis = world().redis;
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'users', namespace: ns, labels: SECRET_OPT_IN }, stringData: { 'users.yaml': users } },
    { apiVersion: API, kind: 'AuthSource', metadata: { name: 'users', namespace: ns }, spec: { type: 'builtin', builtin: { secretRef: { name: 'users', key: 'users.yaml' } }, passwordHash: { algorithm: 'bcrypt' } } },
    ...(withBackend ? [
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'redis-credentials', namespace: ns, labels: SECRET_OPT_IN }, stringData: { username: redis.user, password: redis.password } },
      {
        apiVersion: API, kind: 'AuthSource', metadata: { name: 'redis-acl', namespace: ns },
        spec: {
          type: 'redis', redis: { host: redis.host, port: redis.port, db: 0, credentialsSecretRef: { name: 'redis-credentials' } },
          passwordHash: { algorithm: 'bcrypt' }, egress: [{ cidr: '127.0.0.1/32', port: redis.port }],
        },
      },
    ] : []),
    {
      apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'broker', namespace: ns },
      spec: {
        listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 1883 }],
        authentication: { chain: [{ name: 'users' }] },
        authorization: { chain: [{ name: 'users' }, ...(withBackend ? [{ name: 'redis-acl' }] : [])], noMatch: 'deny' },
        network: { allowFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } }] },
      },
    },
  ];
}

beforeAll(async () => {
  e = await startEnclave('isolation', [A, B]);
  await apply([...tenant(A, 'alice', 'alice-pw'), ...tenant(B, 'bob', 'bob-pw', true)]);
  for (const ns of [A, B]) {
    const { md, port } = await brokerOf(e, ns, 'broker');
    ports[ns] = port('mqtt');
    runtime[ns] = md.status!.namespace!;
  }
});

afterAll(async () => {
  for (const ns of [A, B]) await deleteAndWait('mqttdeployments.mqtt.enclave.dev', 'broker', ns).catch(() => undefined);
  await e?.stop();
  await kubectl(['delete', 'namespace', A, B, '--wait=false', '--ignore-not-found']);
  await kubectl(['delete', 'clusterrole', EDIT_ROLE, '--ignore-not-found']);
});

describe('isolation between two tenants', () => {
  it('each tenant\'s credentials work on its own broker only (MQTT.js)', async () => {
    const alice = await connect(`mqtt://127.0.0.1:${ports[A]}`, { username: 'alice', password: 'alice-pw', clientId: 'alice-1' });
    const got = await subscriber(alice, `${A}/#`);
    await alice.publishAsync(`${A}/x`, 'hello', { qos: 1 });
    await eventually('alice receives her own message', async () => got.length === 1);
    expect(got).toEqual([`${A}/x hello`]);
    await alice.endAsync();

    expect(await refusal(`mqtt://127.0.0.1:${ports[B]}`, { username: 'alice', password: 'alice-pw' })).toMatch(/Bad user ?name or password|Not authori[sz]ed/i);
    expect(await refusal(`mqtt://127.0.0.1:${ports[A]}`, { username: 'bob', password: 'bob-pw' })).toMatch(/Bad user ?name or password|Not authori[sz]ed/i);
    expect(await refusal(`mqtt://127.0.0.1:${ports[B]}`, { username: 'bob', password: 'bob-pw' })).toBe('');
  });

  it('each tenant\'s credentials work on its own broker only (mosquitto_pub)', async () => {
    const ok = await mosquitto('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(ports[A]), '-u', 'alice', '-P', 'alice-pw', '-t', `${A}/m`, '-m', 'x', '-q', '1']);
    expect(ok.code, ok.stderr).toBe(0);
    const cross = await mosquitto('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(ports[B]), '-u', 'alice', '-P', 'alice-pw', '-t', `${B}/m`, '-m', 'x', '-q', '1']);
    expect(cross.code).not.toBe(0);
    expect(cross.stderr).toMatch(/bad user name or password|not authori[sz]ed/i);
  });

  it('every runtime namespace holds exactly the default-deny NetworkPolicy set', async () => {
    // Written out in full, not derived from the operator's code: a policy that gains a peer, a port
    // or a policy type (or loses one) fails here.
    const brokerPods = { matchLabels: { 'app.kubernetes.io/name': 'enclave-broker', 'app.kubernetes.io/instance': 'broker' } };
    const expected = (ns: string): Record<string, unknown> => ({
      'default-deny': { podSelector: {}, policyTypes: ['Ingress', 'Egress'] },
      'allow-admin-from-operator': {
        podSelector: brokerPods, policyTypes: ['Ingress'],
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': OPERATOR_NS } } }], ports: [{ protocol: 'TCP', port: 9090 }] }],
      },
      'allow-dns': {
        podSelector: brokerPods, policyTypes: ['Egress'],
        egress: [{
          to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
          ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }],
        }],
      },
      'allow-listeners': {
        podSelector: brokerPods, policyTypes: ['Ingress'],
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } }], ports: [{ protocol: 'TCP', port: 1883 }] }],
      },
      // Only tenant B references a source with a backend (Redis): only its broker may leave the namespace for it.
      ...(ns === B ? {
        'allow-auth-backends': {
          podSelector: brokerPods, policyTypes: ['Egress'],
          egress: [{ to: [{ ipBlock: { cidr: '127.0.0.1/32' } }], ports: [{ protocol: 'TCP', port: world().redis.port }] }],
        },
      } : {}),
    });
    for (const ns of [A, B]) {
      const policies = await list('networkpolicies.networking.k8s.io', runtime[ns]);
      const byName = Object.fromEntries(policies.map((p) => [p.metadata.name, p.spec]));
      expect(byName, `NetworkPolicies of ${runtime[ns]} (tenant ${ns})`).toEqual(expected(ns));
      // Nothing in tenant A's policies lets tenant B's namespace in, and vice versa.
      expect(JSON.stringify(policies)).not.toContain(ns === A ? B : A);
    }
  });

  it('a user with enclave-edit in tenant A cannot read either runtime namespace\'s Secrets', async () => {
    // The chart's enclave-edit rules, under a test-only name so the helm tests' release is untouched.
    const rendered = await helm(['template', 'enclave', `${process.cwd()}/charts/enclave`, '--show-only', 'templates/aggregated-roles.yaml', '--set', 'rbac.aggregateToDefaultRoles=false']);
    const edit = parseAllDocuments(rendered.stdout).map((d) => d.toJS() as { metadata: { name: string; labels?: unknown } } | null).find((d) => d?.metadata.name === 'enclave-edit');
    expect(edit).toBeDefined();
    await apply([{ ...edit, metadata: { name: EDIT_ROLE } }, {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'team-a-devs', namespace: A },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: EDIT_ROLE },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'e2e-iso-team-a' }],
    }]);
    const dev = await asUser('e2e-iso-dev', ['e2e-iso-team-a']);
    const can = (args: string[]) => kubectl(['auth', 'can-i', ...args], { kubeconfig: dev.kubeconfigPath, allowFailure: true }).then((r) => r.stdout.trim());
    expect(await can(['create', 'mqttdeployments.mqtt.enclave.dev', '-n', A])).toBe('yes');
    for (const ns of [A, B]) {
      expect(await can(['get', 'secrets', '-n', runtime[ns]!])).toBe('no');
      expect(await can(['list', 'secrets', '-n', runtime[ns]!])).toBe('no');
      const read = await kubectl(['get', 'secret', 'broker-config', '-n', runtime[ns]!], { kubeconfig: dev.kubeconfigPath, allowFailure: true });
      expect(read.code).not.toBe(0);
      expect(read.stderr).toMatch(/forbidden/i);
    }
  });
});
