// The chart's RBAC, decided by the real authorizer (SubjectAccessReview, plus real requests made
// as a tenant): the operator's ServiceAccount may do what the reconcile needs and not more; a
// tenant bound to enclave-edit in team-a manages the three kinds there and nothing in the runtime
// namespaces; enclave-view is read-only. docs/rbac.md is the prose version of these tables.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthorizationV1Api, CustomObjectsApi, CoreV1Api, type V1ResourceAttributes } from '@kubernetes/client-node';
import { adminKubeConfig, asUser, helm, kubectl } from '../../support/world.ts';
import { waitForCrds } from '../../support/operator.ts';
import { repoRoot } from '../../support/paths.ts';
import { chartDir } from '../helm/helm.ts';

const release = 'rbac';
const ns = 'enclave-rbac';
const operatorUser = `system:serviceaccount:${ns}:rbac-enclave`;
const operatorGroups = ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'];
const runtimeNs = 'enclave-team-a-prod';
const G = 'mqtt.enclave.dev';

const createdNamespaces: string[] = [];

type Check = [verb: string, group: string, resource: string, namespace: string, allowed: boolean, name?: string];

async function allowed(user: string, groups: string[], [verb, group, resource, namespace, , name]: Check): Promise<boolean> {
  const [res, sub] = resource.split('/');
  const attrs: V1ResourceAttributes = { verb, group, resource: res, namespace, ...(sub ? { subresource: sub } : {}), ...(name ? { name } : {}) };
  const authz = adminKubeConfig().makeApiClient(AuthorizationV1Api);
  const review = await authz.createSubjectAccessReview({ body: { spec: { user, groups, resourceAttributes: attrs } } });
  return review.status?.allowed === true;
}

async function expectTable(user: string, groups: string[], table: Check[]): Promise<void> {
  const got = await Promise.all(table.map(async (c) => `${c.slice(0, 4).join(' ')}${c[5] ? ` ${c[5]}` : ''} → ${await allowed(user, groups, c)}`));
  expect(got).toEqual(table.map((c) => `${c.slice(0, 4).join(' ')}${c[5] ? ` ${c[5]}` : ''} → ${c[4]}`));
}

beforeAll(async () => {
  await helm(['install', release, chartDir, '-n', ns, '--create-namespace']);
  await waitForCrds();
  // Other files of the same run may have made team-a already (the world is shared).
  for (const n of ['team-a', 'team-b', runtimeNs]) {
    if ((await kubectl(['create', 'namespace', n], { allowFailure: true })).code === 0) createdNamespaces.push(n);
  }
  await kubectl(['-n', 'team-a', 'create', 'rolebinding', 'team-a-edit', '--clusterrole=enclave-edit', '--group=team-a']);
  await kubectl(['-n', 'team-a', 'create', 'rolebinding', 'team-a-view', '--clusterrole=enclave-view', '--user=viewer']);
  await kubectl(['-n', runtimeNs, 'create', 'secret', 'generic', 'broker-config', '--from-literal=k=v']);
});

afterAll(async () => {
  await helm(['uninstall', release, '-n', ns, '--no-hooks'], { allowFailure: true });
  await kubectl(['-n', 'team-a', 'delete', 'rolebinding', 'team-a-edit', 'team-a-view', '--ignore-not-found']);
  for (const n of [...createdNamespaces, ns]) await kubectl(['delete', 'namespace', n, '--ignore-not-found', '--wait=false']);
});

describe('operator ServiceAccount', () => {
  it('may do everything the reconcile needs', async () => {
    const needs: Check[] = [
      ...['get', 'list', 'watch'].flatMap((v): Check[] =>
        ['mqttdeployments', 'authsources', 'tlscertificates'].map((r): Check => [v, G, r, 'team-a', true]),
      ),
      ['patch', G, 'mqttdeployments', 'team-a', true],
      ['update', G, 'mqttdeployments/finalizers', 'team-a', true],
      ...['mqttdeployments/status', 'authsources/status', 'tlscertificates/status'].map((r): Check => ['patch', G, r, 'team-a', true]),
      ...['create', 'patch', 'delete', 'get', 'watch'].map((v): Check => [v, '', 'namespaces', '', true]),
      ...(['create', 'patch', 'delete', 'list', 'watch'] as const).flatMap((v): Check[] => [
        [v, 'networking.k8s.io', 'networkpolicies', runtimeNs, true],
        [v, '', 'serviceaccounts', runtimeNs, true],
        [v, '', 'services', runtimeNs, true],
        [v, 'apps', 'deployments', runtimeNs, true],
        [v, 'policy', 'poddisruptionbudgets', runtimeNs, true],
      ]),
      ['create', '', 'secrets', runtimeNs, true],
      ['patch', '', 'secrets', runtimeNs, true],
      ['delete', '', 'secrets', runtimeNs, true],
      ['update', '', 'namespaces', '', true],
      ['update', 'apps', 'deployments', runtimeNs, true],
      ['get', '', 'secrets', ns, true],
      ['create', '', 'secrets', ns, true],
      ['get', '', 'secrets', 'team-a', true],
      ['watch', '', 'secrets', 'team-a', true],
      ['create', '', 'events', 'team-a', true],
      ['create', 'events.k8s.io', 'events', 'team-a', false],
      ['create', 'coordination.k8s.io', 'leases', ns, true],
      ['update', 'coordination.k8s.io', 'leases', ns, true, 'enclave-operator-leader'],
    ];
    await expectTable(operatorUser, operatorGroups, needs);
  });

  it('may not do more', async () => {
    const more: Check[] = [
      ['create', '', 'pods', runtimeNs, false],
      ['create', '', 'pods/exec', runtimeNs, false],
      ['create', '', 'serviceaccounts/token', runtimeNs, false],
      ['get', '', 'configmaps', 'kube-system', false],
      ['create', 'rbac.authorization.k8s.io', 'rolebindings', runtimeNs, false],
      ['bind', 'rbac.authorization.k8s.io', 'clusterroles', '', false],
      ['escalate', 'rbac.authorization.k8s.io', 'clusterroles', '', false],
      ['update', 'apiextensions.k8s.io', 'customresourcedefinitions', '', false],
      ['delete', 'apiextensions.k8s.io', 'customresourcedefinitions', '', false],
      ['create', G, 'mqttdeployments', 'team-a', false],
      ['delete', G, 'mqttdeployments', 'team-a', false],
      ['patch', G, 'authsources', 'team-a', false],
      ['update', G, 'tlscertificates', 'team-a', false],
      ['update', 'coordination.k8s.io', 'leases', 'kube-system', false, 'kube-controller-manager'],
      ['update', 'coordination.k8s.io', 'leases', ns, false, 'someone-elses-lease'],
      ['get', '', 'nodes', '', false],
      ['update', 'apps', 'deployments/scale', runtimeNs, false],
      ['impersonate', '', 'users', '', false],
    ];
    await expectTable(operatorUser, operatorGroups, more);
  });

  it('with rbac.tenantSecretAccess=namespaced, reads Secrets only in the listed tenant namespaces', async () => {
    await helm(['upgrade', release, chartDir, '-n', ns, '--reuse-values', '--set', 'rbac.tenantSecretAccess=namespaced', '--set', 'rbac.tenantNamespaces={team-a}']);
    try {
      await expectTable(operatorUser, operatorGroups, [
        ['get', '', 'secrets', 'team-a', true],
        ['list', '', 'secrets', 'team-a', true],
        ['watch', '', 'secrets', 'team-a', true],
        ['get', '', 'secrets', 'team-b', false],
        ['get', '', 'secrets', 'kube-system', false],
        ['list', '', 'secrets', '', false],
        ['get', '', 'secrets', runtimeNs, false],
        ['get', '', 'secrets', ns, true],
        ['create', '', 'secrets', runtimeNs, true],
        ['patch', '', 'secrets', runtimeNs, true],
      ]);
    } finally {
      await helm(['upgrade', release, chartDir, '-n', ns, '--reuse-values', '--set', 'rbac.tenantSecretAccess=cluster']);
    }
  });
});

describe('tenants', () => {
  const alice = { user: 'alice', groups: ['team-a', 'system:authenticated'] };

  it('enclave-edit in team-a: manages the three kinds there, not their status, not elsewhere', async () => {
    const table: Check[] = [
      ...['create', 'update', 'patch', 'delete', 'get', 'list', 'watch'].flatMap((v): Check[] =>
        ['mqttdeployments', 'authsources', 'tlscertificates'].map((r): Check => [v, G, r, 'team-a', true]),
      ),
      ['patch', G, 'mqttdeployments/status', 'team-a', false],
      ['create', G, 'mqttdeployments', 'team-b', false],
      ['list', G, 'mqttdeployments', '', false],
    ];
    await expectTable(alice.user, alice.groups, table);
  });

  it('enclave-edit in team-a: nothing at all in the runtime namespace', async () => {
    const table: Check[] = [
      ...['get', 'list', 'watch'].flatMap((v): Check[] => [
        [v, '', 'secrets', runtimeNs, false],
        [v, '', 'pods', runtimeNs, false],
        [v, '', 'configmaps', runtimeNs, false],
        [v, '', 'services', runtimeNs, false],
        [v, 'apps', 'deployments', runtimeNs, false],
        [v, 'networking.k8s.io', 'networkpolicies', runtimeNs, false],
      ]),
      ['create', '', 'pods/exec', runtimeNs, false],
      ['create', '', 'pods/portforward', runtimeNs, false],
      ['delete', 'networking.k8s.io', 'networkpolicies', runtimeNs, false],
    ];
    await expectTable(alice.user, alice.groups, table);
  });

  it('enclave-view: read-only', async () => {
    await expectTable('viewer', ['system:authenticated'], [
      ['get', G, 'mqttdeployments', 'team-a', true],
      ['watch', G, 'tlscertificates', 'team-a', true],
      ['create', G, 'mqttdeployments', 'team-a', false],
      ['delete', G, 'authsources', 'team-a', false],
    ]);
  });

  it('real requests as the tenant: CRs in team-a are created and readable, status and the runtime Secret are forbidden', async () => {
    const { kubeConfig, kubeconfigPath } = await asUser(alice.user, ['team-a']);
    const applied = await kubectl(['apply', '--server-side', '-f', `${repoRoot}/examples/builtin/authsource.yaml`, '-f', `${repoRoot}/examples/builtin/mqttdeployment.yaml`], { kubeconfig: kubeconfigPath });
    expect(applied.stdout).toContain('mqttdeployment.mqtt.enclave.dev/builtin-demo serverside-applied');
    const fakeReady = await kubectl(
      ['-n', 'team-a', 'patch', 'mqttdeployment/builtin-demo', '--subresource=status', '--type=merge', '-p', '{"status":{"observedGeneration":1}}'],
      { kubeconfig: kubeconfigPath, allowFailure: true },
    );
    expect(fakeReady.stderr).toContain('forbidden');
    const custom = kubeConfig.makeApiClient(CustomObjectsApi);
    const listed = (await custom.listNamespacedCustomObject({ group: G, version: 'v1alpha1', namespace: 'team-a', plural: 'tlscertificates' })) as { items: unknown[] };
    expect(listed.items).toEqual([]);
    await kubectl(['delete', '-n', 'team-a', 'mqttdeployment/builtin-demo', 'authsource/builtin-users'], { kubeconfig: kubeconfigPath });
    const core = kubeConfig.makeApiClient(CoreV1Api);
    await expect(core.readNamespacedSecret({ name: 'broker-config', namespace: runtimeNs })).rejects.toMatchObject({ code: 403 });
    const canI = await kubectl(['auth', 'can-i', 'get', 'secrets', '-n', runtimeNs], { kubeconfig: kubeconfigPath, allowFailure: true });
    expect(canI.stdout.trim()).toBe('no');
    const asOperator = await kubectl(['auth', 'can-i', 'create', 'pods', '-n', runtimeNs, `--as=${operatorUser}`], { allowFailure: true });
    expect(asOperator.stdout.trim()).toBe('no');
  });
});
