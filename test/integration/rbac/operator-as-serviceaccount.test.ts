// The chart's RBAC, for real: the operator process runs with the identity of the chart's
// ServiceAccount (a client certificate for `system:serviceaccount:<ns>:<release>-enclave` and its
// groups, which RBAC matches exactly like the pod's token) and does a whole life cycle — leader
// Lease, finalizer, runtime namespace with every object, issued certificate, status, events, purge —
// without a single forbidden request, in both Secret modes. In `namespaced` mode it watches Secrets
// only where it may, and reports a CR outside its tenant namespaces instead of half-reconciling it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, helm, kubectl } from '../../support/world.ts';
import { waitForCrds } from '../../support/operator.ts';
import { chartDir } from '../helm/helm.ts';
import { apply, condition, eventually, get, operatorLog, startOperator, type MqttDeploymentObj, type Obj, type TestOperator } from '../operator/harness.ts';
import { runtimeNamespaceName } from '../../../operator/api/names.ts';

const release = 'rbacrun';
const ns = 'enclave-rbacrun';
const sa = `system:serviceaccount:${ns}:${release}-enclave`;
const groups = ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'];
const tenant = 'rbacrun-a';
const outsider = 'rbacrun-b';
const API = 'mqtt.enclave.dev/v1alpha1';
const MD = 'mqttdeployments.mqtt.enclave.dev';

let kubeconfigPath: string;

beforeAll(async () => {
  await helm(['install', release, chartDir, '-n', ns, '--create-namespace', '--set', 'operator.replicas=1']);
  await waitForCrds();
  kubeconfigPath = (await asUser(sa, groups)).kubeconfigPath;
  for (const n of [tenant, outsider]) await kubectl(['create', 'namespace', n], { allowFailure: true });
});

afterAll(async () => {
  for (const n of [tenant, outsider]) {
    const mds = (await kubectl(['get', MD, '-n', n, '-o', 'name'], { allowFailure: true })).stdout.trim();
    if (mds) await kubectl(['patch', ...mds.split('\n'), '-n', n, '--type=merge', '-p', '{"metadata":{"finalizers":null}}'], { allowFailure: true });
  }
  await helm(['uninstall', release, '-n', ns, '--no-hooks'], { allowFailure: true });
  for (const n of [tenant, outsider, ns, runtimeNamespaceName(tenant, 'prod')]) await kubectl(['delete', 'namespace', n, '--ignore-not-found', '--wait=false']);
});

const tenantObjects = (name: string, namespace: string): unknown[] => [
  { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'users', namespace, labels: { 'mqtt.enclave.dev/allow-reference': 'true' } }, stringData: { 'users.yaml': 'users: []\n' } },
  { apiVersion: API, kind: 'AuthSource', metadata: { name: 'users', namespace, labels: { 'mqtt.enclave.dev/allow-reference': 'true' } }, spec: { type: 'builtin', builtin: { secretRef: { name: 'users' } }, passwordHash: { algorithm: 'bcrypt' } } },
  { apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'server', namespace }, spec: { issue: { commonName: 'mqtt.example', dnsNames: ['mqtt.example'] } } },
  {
    apiVersion: API, kind: 'MqttDeployment', metadata: { name, namespace },
    spec: {
      replicas: 2,
      state: { backend: 'redis', redis: { managed: {} } },
      listeners: [{ name: 'mqtt', protocol: 'mqtt' }, { name: 'mqtts', protocol: 'mqtts', tlsCertificateRef: { name: 'server' } }],
      authentication: { chain: [{ name: 'users' }] },
      authorization: { chain: [{ name: 'users' }] },
      network: { allowFrom: [{ podSelector: {} }] },
    },
  },
];

/** Applies a tenant, waits for every runtime object and status, deletes it and waits for the purge. */
async function lifeCycle(op: TestOperator): Promise<void> {
  await apply(tenantObjects('prod', tenant));
  const md = await eventually('the MqttDeployment is reconciled', async () => {
    const m = await get<MqttDeploymentObj>(MD, 'prod', tenant);
    return m?.status?.configHash && condition(m, 'Degraded')?.status === 'False' ? m : undefined;
  }, 90_000);
  const runtime = md.status!.namespace!;
  for (const [kind, name] of [['secret', 'broker-config'], ['deployment', 'broker'], ['service', 'broker'], ['serviceaccount', 'broker'], ['pdb', 'broker'], ['networkpolicy', 'default-deny'], ['networkpolicy', 'allow-listeners']]) {
    expect(await get(kind!, name!, runtime), `${kind} ${name} in ${runtime}`).toBeDefined();
  }
  await eventually('the certificate is issued and the AuthSource is Ready', async () => {
    const cert = await get<Obj & { status?: { conditions?: { type: string; status: string }[] } }>('tlscertificates.mqtt.enclave.dev', 'server', tenant);
    const source = await get<Obj & { status?: { conditions?: { type: string; status: string }[]; usedBy?: string[] } }>('authsources.mqtt.enclave.dev', 'users', tenant);
    return cert?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True'
      && source?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' && source.status.usedBy?.[0] === 'prod';
  });
  const events = (await kubectl(['get', 'events', '-n', tenant, '--field-selector', 'involvedObject.name=prod', '-o', 'jsonpath={.items[*].reason}'])).stdout;
  expect(events).toContain('NamespaceCreated');
  // Drift: a NetworkPolicy deleted by hand comes back (the operator watches what it owns).
  await kubectl(['delete', 'networkpolicy', 'default-deny', '-n', runtime]);
  await eventually('the deleted default-deny policy is re-applied', async () => (await get('networkpolicy', 'default-deny', runtime)) !== undefined, 30_000);

  await kubectl(['delete', MD, 'prod', '-n', tenant, '--wait=false']);
  await eventually('the purge finishes', async () => (await get(MD, 'prod', tenant)) === undefined && (await get('namespace', runtime)) === undefined, 120_000);
  // A denied request logs the API server's Status message, "... is forbidden: User ... cannot ...".
  // The one 403 that is not about rights: a write into a namespace another test file is deleting
  // (this operator watches the whole cluster), "... forbidden: unable to create new content in
  // namespace X because it is being terminated".
  const denied = operatorLog(op).split('\n').filter((l) => /\bforbidden\b|HTTP(-Code:)? 403\b/i.test(l) && !l.includes('because it is being terminated'));
  expect(denied).toEqual([]);
}

describe('the operator under the chart ServiceAccount', () => {
  it('rbac.tenantSecretAccess=cluster: a full life cycle without a forbidden request', async () => {
    const op = await startOperator(ns, 'rbacrun-cluster', { kubeconfigPath, env: { ENCLAVE_LEASE_NAME: 'enclave-operator-leader' } });
    try {
      await lifeCycle(op);
    } finally {
      await op.stop();
    }
  }, 300_000);

  it('rbac.tenantSecretAccess=namespaced: works in the listed namespace, reports the others, reads no other Secrets', async () => {
    await helm(['upgrade', release, chartDir, '-n', ns, '--reuse-values', '--set', 'rbac.tenantSecretAccess=namespaced', '--set', `rbac.tenantNamespaces={${tenant}}`]);
    const env = await chartEnv();
    expect(env.ENCLAVE_TENANT_NAMESPACES).toBe(tenant);
    const op = await startOperator(ns, 'rbacrun-namespaced', { kubeconfigPath, env: { ENCLAVE_LEASE_NAME: 'enclave-operator-leader', ENCLAVE_TENANT_NAMESPACES: env.ENCLAVE_TENANT_NAMESPACES! } });
    try {
      // The same identity cannot even list Secrets cluster-wide or in kube-system now.
      expect((await kubectl(['get', 'secrets', '-A'], { kubeconfig: kubeconfigPath, allowFailure: true })).code).not.toBe(0);
      expect((await kubectl(['get', 'secrets', '-n', 'kube-system'], { kubeconfig: kubeconfigPath, allowFailure: true })).code).not.toBe(0);
      await apply(tenantObjects('elsewhere', outsider));
      const md = await eventually('the outsider MqttDeployment says its namespace is not served', async () => {
        const m = await get<MqttDeploymentObj>(MD, 'elsewhere', outsider);
        return condition(m, 'Ready')?.reason === 'NamespaceNotManaged' ? m : undefined;
      });
      expect(condition(md, 'Ready')!.message).toContain(`Namespace ${outsider} is not one of the operator's tenant namespaces`);
      expect(md.metadata.finalizers ?? []).toEqual([]);
      expect(await get('namespace', runtimeNamespaceName(outsider, 'elsewhere'))).toBeUndefined();
      await lifeCycle(op);
    } finally {
      await op.stop();
    }
  }, 300_000);
});

/** The operator container's env as the chart renders it (name → value). */
async function chartEnv(): Promise<Record<string, string>> {
  const dep = (await get<Obj & { spec: { template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } } } }>('deployment', `${release}-enclave-operator`, ns))!;
  return Object.fromEntries((dep.spec.template.spec.containers[0]!.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
}
