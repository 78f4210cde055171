// The external state backend's purge under the chart's RBAC: the operator process runs with the
// identity of the chart's ServiceAccount (as test/integration/rbac does) and goes through the purge
// of a deleted MqttDeployment with an external Redis (stop the brokers, create the Job, read it,
// write Purging into status) without a single forbidden request. Without a node the Job never runs:
// `deletionPolicy: Retain` ends the deletion, as it would for a Redis that stays unreachable.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, helm, kubectl } from '../../support/world.ts';
import { waitForCrds } from '../../support/operator.ts';
import { chartDir } from '../helm/helm.ts';
import { runtimeNamespaceName } from '../../../operator/api/names.ts';
import { apply, condition, eventually, get, operatorLog, startOperator, type MqttDeploymentObj, type TestOperator } from './harness.ts';

const release = 'stpurge';
const ns = 'enclave-stpurge';
const sa = `system:serviceaccount:${ns}:${release}-enclave`;
const groups = ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'];
const tenant = 'stpurge-a';
const API = 'mqtt.enclave.dev/v1alpha1';
const MD = 'mqttdeployments.mqtt.enclave.dev';
let op: TestOperator | undefined;

beforeAll(async () => {
  await helm(['install', release, chartDir, '-n', ns, '--create-namespace', '--set', 'operator.replicas=1', '--set', 'policy.admission.enabled=false']);
  await waitForCrds();
  const kubeconfigPath = (await asUser(sa, groups)).kubeconfigPath;
  await kubectl(['create', 'namespace', tenant], { allowFailure: true });
  op = await startOperator(ns, 'stpurge-operator', { kubeconfigPath, env: { ENCLAVE_LEASE_NAME: 'enclave-operator-leader' } });
});

afterAll(async () => {
  await op?.stop();
  const mds = (await kubectl(['get', MD, '-n', tenant, '-o', 'name'], { allowFailure: true })).stdout.trim();
  if (mds) await kubectl(['patch', ...mds.split('\n'), '-n', tenant, '--type=merge', '-p', '{"metadata":{"finalizers":null}}'], { allowFailure: true });
  await helm(['uninstall', release, '-n', ns, '--no-hooks'], { allowFailure: true });
  for (const n of [tenant, ns, runtimeNamespaceName(tenant, 'ext')]) await kubectl(['delete', 'namespace', n, '--ignore-not-found', '--wait=false']);
});

describe('external state purge under the chart ServiceAccount', () => {
  it('stops the brokers, creates and reads the purge Job, reports Purging: no forbidden request', async () => {
    await apply([
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'state', namespace: tenant, labels: { 'mqtt.enclave.dev/allow-reference': 'true' } }, stringData: { address: 'redis.example:6379', password: 'pw' } },
      {
        apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'ext', namespace: tenant },
        spec: { replicas: 2, listeners: [{ name: 'mqtt', protocol: 'mqtt' }], state: { backend: 'redis', redis: { external: { secretRef: { name: 'state' }, egress: { cidr: '203.0.113.0/24', port: 6379 } } } } },
      },
    ]);
    const runtime = runtimeNamespaceName(tenant, 'ext');
    await eventually('the broker runs its config', async () => (await get('deployment', 'broker', runtime)) !== undefined && (await get('networkpolicy', 'allow-state-backend', runtime)) !== undefined, 60_000);
    await kubectl(['delete', MD, 'ext', '-n', tenant, '--wait=false']);
    await eventually('the purge Job', async () => (await get('job', 'state-purge', runtime)) !== undefined, 60_000);
    expect(await get('deployment', 'broker', runtime)).toBeUndefined();
    await eventually('Purging', async () => condition(await get<MqttDeploymentObj>(MD, 'ext', tenant), 'Ready')?.reason === 'Purging');
    await kubectl(['patch', MD, 'ext', '-n', tenant, '--type=merge', '-p', '{"spec":{"deletionPolicy":"Retain"}}']);
    await eventually('CR gone', async () => (await get(MD, 'ext', tenant)) === undefined, 60_000);
    const denied = operatorLog(op!).split('\n').filter((l) => /\bforbidden\b|HTTP(-Code:)? 403\b/i.test(l) && !l.includes('because it is being terminated'));
    expect(denied).toEqual([]);
  }, 240_000);
});
