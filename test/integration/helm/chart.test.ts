// The chart against the real control plane: lint, kube-linter, install (CRDs established, operator
// Deployment and RBAC created, aggregation into the built-in roles), upgrade with changed values,
// schema rejections. Uninstall through the pre-delete guard Job is tried on the node, where the Job
// really runs (test/e2e/node.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppsV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { eventually } from '../../support/wait.ts';
import { adminKubeConfig, helm, kubectl } from '../../support/world.ts';
import { waitForCrds } from '../../support/operator.ts';
import { chartDir, kubeLinter } from './helm.ts';

const release = 'enclave';
const ns = 'enclave-system';

describe('helm lint and kube-linter', () => {
  it('helm lint --strict passes', async () => {
    const r = await helm(['lint', '--strict', chartDir]);
    expect(r.stdout).toContain('0 chart(s) failed');
  });

  const valueSets: Record<string, string[]> = {
    defaults: [],
    'two replicas, namespaced secret access, ServiceMonitor': [
      '--set', 'operator.replicas=2',
      '--set', 'rbac.tenantSecretAccess=namespaced',
      '--set', 'rbac.tenantNamespaces={team-a,team-b}',
      '--set', 'metrics.serviceMonitor.enabled=true',
    ],
    'metrics only from monitoring, no guard, digests': [
      '--set', 'networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring',
      '--set', 'uninstallGuard.enabled=false',
      '--set', `operator.image.digest=sha256:${'a'.repeat(64)}`,
      '--set', `broker.image.digest=sha256:${'b'.repeat(64)}`,
    ],
  };
  it('reports exactly the isolation finding when the NetworkPolicy is switched off', async () => {
    const rendered = await helm(['template', release, chartDir, '-n', ns, '--set', 'networkPolicy.enabled=false']);
    const lint = await kubeLinter(rendered.stdout);
    // Both pods (operator and uninstall guard) lose their isolation, and nothing else changes.
    expect(new Set([...lint.stdout.matchAll(/check: ([a-z-]+)/g)].map((m) => m[1]))).toEqual(new Set(['non-isolated-pod']));
  });

  for (const [name, values] of Object.entries(valueSets)) {
    it(`kube-linter finds nothing (${name})`, async () => {
      const rendered = await helm(['template', release, chartDir, '-n', ns, ...values]);
      const lint = await kubeLinter(rendered.stdout);
      expect(lint.stderr + lint.stdout).toContain('No lint errors found');
      expect(lint.code).toBe(0);
    });
  }
});

describe('helm install / upgrade / uninstall', () => {
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);

  beforeAll(async () => {
    await helm(['install', release, chartDir, '-n', ns, '--create-namespace']);
  });

  afterAll(async () => {
    // Whatever the tests left: no hooks, so nothing waits on a Job.
    await helm(['uninstall', release, '-n', ns, '--no-hooks'], { allowFailure: true });
    await kubectl(['delete', 'namespace', 'guard-test', '--ignore-not-found', '--wait=false']);
  });

  it('installs the CRDs and they become Established', async () => {
    await waitForCrds();
  });

  it('creates the operator Deployment with the restricted pod spec and configured images', async () => {
    const d = await apps.readNamespacedDeployment({ name: 'enclave-operator', namespace: ns });
    expect(d.spec?.replicas).toBe(1);
    const pod = d.spec?.template.spec;
    const c = pod?.containers[0];
    expect(c?.image).toBe('ghcr.io/enclave-dev/enclave-operator:0.1.0');
    expect(c?.env?.find((e) => e.name === 'ENCLAVE_BROKER_IMAGE')?.value).toBe('ghcr.io/enclave-dev/enclave-broker:0.1.0');
    expect(pod?.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(c?.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(c?.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(c?.resources?.limits?.memory).toBe('256Mi');
  });

  it('creates the operator RBAC and aggregates the tenant roles into view/edit/admin', async () => {
    const role = await rbac.readClusterRole({ name: 'enclave-operator' });
    expect(role.rules?.some((r) => r.resources?.includes('mqttdeployments/status'))).toBe(true);
    const binding = await rbac.readClusterRoleBinding({ name: 'enclave-operator' });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'enclave', namespace: ns }]);
    await rbac.readNamespacedRole({ name: 'enclave-leader-election', namespace: ns });
    // The clusterrole-aggregation controller copies enclave-edit's rules into `edit`.
    await eventually('the built-in edit ClusterRole aggregates create on mqttdeployments', async () =>
      (await rbac.readClusterRole({ name: 'edit' })).rules?.some((r) => r.resources?.includes('mqttdeployments') && r.verbs.includes('create')), 30_000);
    const view = await rbac.readClusterRole({ name: 'view' });
    expect(view.rules?.some((r) => r.resources?.includes('mqttdeployments') && !r.verbs.includes('create'))).toBe(true);
  });

  it('creates the metrics Service and the operator NetworkPolicy (default deny but API server, DNS, brokers\' admin port)', async () => {
    const svc = JSON.parse((await kubectl(['get', 'service', 'enclave-metrics', '-n', ns, '-o', 'json'])).stdout) as { spec: { selector: Record<string, string>; ports: { name: string; targetPort: string }[] } };
    expect(svc.spec.ports.map((p) => [p.name, p.targetPort])).toEqual([['metrics', 'http']]);
    const d = await apps.readNamespacedDeployment({ name: 'enclave-operator', namespace: ns });
    // The Service selects exactly the operator's pods.
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(d.spec?.template.metadata?.labels?.[k]).toBe(v);
    const np = JSON.parse((await kubectl(['get', 'networkpolicy', 'enclave-operator', '-n', ns, '-o', 'json'])).stdout) as {
      spec: { policyTypes: string[]; ingress: { ports: { port: string }[] }[]; egress: { to: Record<string, unknown>[]; ports: { port: number; protocol: string }[] }[] };
    };
    expect([...np.spec.policyTypes].sort()).toEqual(['Egress', 'Ingress']);
    expect(np.spec.ingress.flatMap((r) => r.ports.map((p) => p.port))).toEqual(['http']);
    expect(np.spec.egress.map((r) => r.ports.map((p) => `${p.protocol}/${p.port}`).join(','))).toEqual(['TCP/443,TCP/6443', 'TCP/9090', 'UDP/53,TCP/53']);
    expect(np.spec.egress[1]!.to).toEqual([{ namespaceSelector: { matchLabels: { 'app.kubernetes.io/managed-by': 'enclave-operator' } } }]);
  });

  it('renders a ServiceMonitor for the metrics port only when asked', async () => {
    const off = await helm(['template', release, chartDir, '-n', ns]);
    expect(off.stdout).not.toContain('kind: ServiceMonitor');
    const on = await helm(['template', release, chartDir, '-n', ns, '--set', 'metrics.serviceMonitor.enabled=true', '--show-only', 'templates/servicemonitor.yaml']);
    expect(on.stdout).toContain('kind: ServiceMonitor');
    expect(on.stdout).toMatch(/endpoints:\n\s+- port: metrics\n\s+path: \/metrics/);
    expect(on.stdout).toContain(`matchNames: ["${ns}"]`);
  });

  it('rejects bad values with the path of the bad value, and changes nothing', async () => {
    const cases: [string[], string][] = [
      [['--set', 'operator.replicas=3'], '/operator/replicas'],
      [['--set', 'operator.image.pullPolicy=Sometimes'], '/operator/image/pullPolicy'],
      [['--set', 'operator.imag.tag=x'], "additional properties 'imag' not allowed"],
      [['--set', 'rbac.tenantSecretAccess=namespaced'], '/rbac'],
      [['--set', 'metrics.port=80'], '/metrics/port'],
      [['--set', 'clusterDomain=Not_A_Domain'], '/clusterDomain'],
      [['--set', 'operator.resources.requests.memory=lots'], '/operator/resources/requests/memory'],
    ];
    const before = await apps.readNamespacedDeployment({ name: 'enclave-operator', namespace: ns });
    for (const [values, message] of cases) {
      const r = await helm(['upgrade', release, chartDir, '-n', ns, ...values], { allowFailure: true });
      expect(r.code, values.join(' ')).not.toBe(0);
      expect(r.stderr).toContain(message);
    }
    const after = await apps.readNamespacedDeployment({ name: 'enclave-operator', namespace: ns });
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
  });

  it('helm upgrade applies changed values', async () => {
    await helm([
      'upgrade', release, chartDir, '-n', ns, '--reuse-values',
      '--set', 'operator.replicas=2',
      '--set', 'operator.image.tag=0.2.0',
      '--set', 'broker.image.repository=registry.example/enclave-broker',
      '--set', 'operator.logLevel=debug',
    ]);
    const d = await apps.readNamespacedDeployment({ name: 'enclave-operator', namespace: ns });
    expect(d.spec?.replicas).toBe(2);
    const c = d.spec?.template.spec?.containers[0];
    expect(c?.image).toBe('ghcr.io/enclave-dev/enclave-operator:0.2.0');
    expect(c?.env?.find((e) => e.name === 'ENCLAVE_BROKER_IMAGE')?.value).toBe('registry.example/enclave-broker:0.1.0');
    expect(c?.env?.find((e) => e.name === 'ENCLAVE_LOG_LEVEL')?.value).toBe('debug');
    expect(d.spec?.template.spec?.affinity?.podAntiAffinity).toBeDefined();
    const history = await helm(['history', release, '-n', ns, '-o', 'json']);
    expect((JSON.parse(history.stdout) as unknown[]).length).toBe(2);
  });
  // The uninstall guard is a real Job on the node: test/e2e/node.test.ts refuses and then allows
  // `helm uninstall` through it.
});
