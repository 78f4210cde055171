// Names against the real API server. Runtime namespaces: the pair that used to squat
// (`team/a-broker` then `team-a/broker`, both once `enclave-team-a-broker`) now gets two, and a
// deployment made before the hash keeps the namespace recorded in its status across the operator
// upgrade (nothing re-created, nothing moved). Names the operator could not turn into objects are
// refused by the CRDs with a message, before any reconcile.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl } from '../../support/world.ts';
import { legacyRuntimeNamespaceName, runtimeNamespaceName } from '../../../operator/api/names.ts';
import { apply, applyFails, condition, ensureNamespace, eventually, get, installCrds, list, startOperator, type MqttDeploymentObj, type TestOperator } from './harness.ts';

const OPERATOR_NS = 'rnit-system';
const IDENTITY = 'rnit-operator';
const API = 'mqtt.enclave.dev/v1alpha1';
let op: TestOperator | undefined;

const md = (ns: string, name: string): Promise<MqttDeploymentObj | undefined> => get<MqttDeploymentObj>('mqttdeployments.mqtt.enclave.dev', name, ns);
const broker = (ns: string, name: string): unknown => ({ apiVersion: API, kind: 'MqttDeployment', metadata: { name, namespace: ns }, spec: { authentication: { allowAnonymous: true } } });

async function reconciled(ns: string, name: string): Promise<MqttDeploymentObj> {
  return eventually(`MqttDeployment ${ns}/${name} reconciled`, async () => {
    const m = await md(ns, name);
    const deploy = m?.status?.namespace ? await get('deployment', 'broker', m.status.namespace) : undefined;
    return m?.status?.observedGeneration === m?.metadata.generation && deploy ? m : undefined;
  });
}

beforeAll(async () => {
  await installCrds();
  await ensureNamespace(OPERATOR_NS);
  op = await startOperator(OPERATOR_NS, IDENTITY);
});

afterAll(async () => {
  await op?.stop();
});

describe('runtime namespace names', () => {
  it('team/a-broker first, then team-a/broker: two namespaces, no OwnershipConflict', async () => {
    await ensureNamespace('rnit-team');
    await ensureNamespace('rnit-team-a');
    // Both once read `enclave-rnit-team-a-broker`: this order let the first squat the second.
    expect(legacyRuntimeNamespaceName('rnit-team', 'a-broker')).toBe(legacyRuntimeNamespaceName('rnit-team-a', 'broker'));
    await apply([broker('rnit-team', 'a-broker')]);
    const first = await reconciled('rnit-team', 'a-broker');
    await apply([broker('rnit-team-a', 'broker')]);
    const second = await reconciled('rnit-team-a', 'broker');

    expect(first.status?.namespace).toBe(runtimeNamespaceName('rnit-team', 'a-broker'));
    expect(second.status?.namespace).toBe(runtimeNamespaceName('rnit-team-a', 'broker'));
    expect(first.status?.namespace).not.toBe(second.status?.namespace);
    for (const m of [first, second]) {
      expect(condition(m, 'Degraded')?.reason).not.toBe('OwnershipConflict');
      expect((await get('namespace', m.status!.namespace!))?.metadata.labels?.['mqtt.enclave.dev/owner-uid']).toBe(m.metadata.uid);
      expect(m.status?.endpoints?.[0]?.address).toBe(`broker.${m.status?.namespace}.svc:1883`);
    }
    expect(await get('namespace', legacyRuntimeNamespaceName('rnit-team', 'a-broker'))).toBeUndefined();
  });

  it('a deployment from before the hash keeps the namespace in its status (no re-creation on upgrade)', async () => {
    const ns = 'rnit-upgrade';
    const legacy = legacyRuntimeNamespaceName(ns, 'old');
    await ensureNamespace(ns);
    // What the previous operator left: the CR with its finalizer and status.namespace, and the
    // pre-hash namespace labelled with the CR's UID. The new operator is not running meanwhile.
    await op!.stop();
    op = undefined;
    await apply([broker(ns, 'old')]);
    const created = await md(ns, 'old');
    const uid = created!.metadata.uid;
    await kubectl(['patch', 'mqttdeployment', 'old', '-n', ns, '--type=merge', '-p', JSON.stringify({ metadata: { finalizers: ['mqtt.enclave.dev/purge'] } })]);
    await kubectl(['patch', 'mqttdeployment', 'old', '-n', ns, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { namespace: legacy } })]);
    await apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: legacy, labels: { 'app.kubernetes.io/managed-by': 'enclave-operator', 'mqtt.enclave.dev/owner-namespace': ns, 'mqtt.enclave.dev/owner-name': 'old', 'mqtt.enclave.dev/owner-uid': uid } } }]);
    const before = await get('namespace', legacy);

    op = await startOperator(OPERATOR_NS, IDENTITY);
    const m = await reconciled(ns, 'old');
    expect(m.status?.namespace).toBe(legacy);
    expect((await get('namespace', legacy))?.metadata.uid).toBe(before?.metadata.uid);
    expect((await list('deployments', legacy)).map((d) => d.metadata.name)).toEqual(['broker']);
    expect(await get('namespace', runtimeNamespaceName(ns, 'old'))).toBeUndefined();

    // And the purge still finds it.
    await kubectl(['delete', 'mqttdeployment', 'old', '-n', ns, '--wait=false']);
    await eventually('CR gone', async () => (await md(ns, 'old')) === undefined, 90_000);
    expect(await get('namespace', legacy)).toBeUndefined();
    expect(await get('namespace', runtimeNamespaceName(ns, 'old'))).toBeUndefined();
  });

  it('a pre-hash name held by someone else is not adopted: the deployment moves to its hashed namespace', async () => {
    const ns = 'rnit-squatted';
    const legacy = legacyRuntimeNamespaceName(ns, 'victim');
    await ensureNamespace(ns);
    await apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: legacy, labels: { team: 'someone-else' } } }]);
    await apply([broker(ns, 'victim')]);
    const m = await reconciled(ns, 'victim');
    expect(m.status?.namespace).toBe(runtimeNamespaceName(ns, 'victim'));
    expect(await list('deployments', legacy)).toEqual([]);
  });
});

describe('names the operator cannot build are refused by the CRD', () => {
  const long = (n: number): string => 'a'.repeat(n);
  it.each([
    ['MqttDeployment', 'dotted.name', { authentication: { allowAnonymous: true } }, 'metadata.name must be a DNS label'],
    ['MqttDeployment', long(41), {}, 'Too long'],
    ['AuthSource', long(236), { type: 'x509' }, 'metadata.name must be at most 235 characters'],
    ['TlsCertificate', long(241), { issue: { commonName: 'x' } }, 'metadata.name must be at most 240 characters'],
  ] as [string, string, Record<string, unknown>, string][])('%s %s', async (kind, name, spec, message) => {
    await ensureNamespace('rnit-names');
    const stderr = await applyFails([{ apiVersion: API, kind, metadata: { name, namespace: 'rnit-names' }, spec }]);
    expect(stderr).toContain(message);
  });

  it.each([
    ['MqttDeployment', long(40), { authentication: { allowAnonymous: true } }],
    ['AuthSource', 'dotted.source', { type: 'x509' }],
    ['TlsCertificate', 'dotted.cert', { issue: { commonName: 'x' } }],
  ] as [string, string, Record<string, unknown>][])('%s %s is accepted', async (kind, name, spec) => {
    await ensureNamespace('rnit-names');
    await kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: JSON.stringify({ apiVersion: API, kind, metadata: { name, namespace: 'rnit-names' }, spec }) });
  });
});
