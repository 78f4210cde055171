// The operator's own enforcement of the platform policy (ENCLAVE_POLICY, as the chart passes it),
// against the real API server and without the admission policy: what admission did not stop (it
// is off, or the policy tightened after the object was accepted) is reported as PolicyViolation
// naming the policy and never applied; an allowed deployment gets the platform's scheduling and a
// ResourceQuota + LimitRange sized from the ceilings.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl } from '../../support/world.ts';
import { runtimeNamespaceName } from '../../../operator/api/names.ts';
import { apply, condition, ensureNamespace, eventually, get, installCrds, list, operatorLog, startOperator, type MqttDeploymentObj, type Obj, type TestOperator } from './harness.ts';

const OPERATOR_NS = 'ppit-system';
const API = 'mqtt.enclave.dev/v1alpha1';
const NS = 'ppit-tenant';
const POLICY = {
  allowedImageRepositories: ['registry.example/enclave-broker'],
  tenantScheduling: false,
  scheduling: { nodeSelector: { 'pool.example/brokers': 'true' } },
  ceilings: { replicas: 2, cpu: '1', memory: '1Gi' },
  deniedEgressCidrs: ['10.96.0.0/12', '169.254.0.0/16'],
};
let op: TestOperator;

const md = (name: string): Promise<MqttDeploymentObj | undefined> => get<MqttDeploymentObj>('mqttdeployments.mqtt.enclave.dev', name, NS);
const broker = (name: string, spec: Record<string, unknown>): unknown => ({ apiVersion: API, kind: 'MqttDeployment', metadata: { name, namespace: NS }, spec: { authentication: { allowAnonymous: true }, ...spec } });

async function refused(name: string): Promise<string> {
  const m = await eventually(`${name} reported PolicyViolation`, async () => {
    const x = await md(name);
    return condition(x, 'Ready')?.reason === 'PolicyViolation' && x?.status?.observedGeneration === x?.metadata.generation ? x : undefined;
  });
  // Nothing was applied: not even the runtime namespace.
  expect(await get('namespace', runtimeNamespaceName(NS, name))).toBeUndefined();
  return condition(m, 'Ready')!.message;
}

beforeAll(async () => {
  await installCrds();
  await ensureNamespace(OPERATOR_NS);
  await ensureNamespace(NS);
  op = await startOperator(OPERATOR_NS, 'ppit-operator', { env: { ENCLAVE_POLICY: JSON.stringify(POLICY) } });
});

afterAll(async () => {
  await kubectl(['delete', 'mqttdeployments.mqtt.enclave.dev', '--all', '-n', NS, '--wait=false'], { allowFailure: true });
  await eventually('purged', async () => (await kubectl(['get', 'mqttdeployments.mqtt.enclave.dev', '-n', NS, '-o', 'name'])).stdout.trim() === '', 90_000).catch(() => undefined);
  await op?.stop();
});

describe('PolicyViolation (the operator, admission off)', () => {
  it.each([
    ['image', { image: 'docker.io/someone/broker:1' }, 'spec.image docker.io/someone/broker:1 is not from an allowed repository (policy AllowedBrokerImages: '],
    ['scheduling', { tolerations: [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' }] }, 'spec.tolerations: tenants may not set scheduling; the platform\'s applies (policy TenantScheduling)'],
    ['replicas', { replicas: 3, state: { backend: 'redis', redis: { managed: {} } } }, 'spec.replicas: 3 is above the ceiling 2 (policy ResourceCeilings)'],
    ['memory', { resources: { limits: { memory: '4Gi' } } }, 'spec.resources.limits.memory: 4Gi is above the ceiling 1Gi (policy ResourceCeilings)'],
  ])('%s', async (what, spec, message) => {
    await apply([broker(`bad-${what}`, spec)]);
    expect(await refused(`bad-${what}`)).toContain(message);
  });

  it('an AuthSource whose egress reaches a denied range: the source and every deployment using it', async () => {
    await apply([
      { apiVersion: API, kind: 'AuthSource', metadata: { name: 'in-cluster', namespace: NS }, spec: { type: 'x509', egress: [{ cidr: '10.100.0.0/16', port: 443 }] } },
      broker('bad-egress', { authentication: { chain: [{ name: 'in-cluster' }] } }),
    ]);
    const source = await eventually('AuthSource PolicyViolation', async () => {
      const s = await get<MqttDeploymentObj>('authsources.mqtt.enclave.dev', 'in-cluster', NS);
      return condition(s, 'Ready')?.reason === 'PolicyViolation' ? s : undefined;
    });
    expect(condition(source, 'Ready')?.message).toContain('spec.egress[0].cidr 10.100.0.0/16 overlaps the denied range 10.96.0.0/12 (policy DeniedEgress)');
    expect(await refused('bad-egress')).toContain('AuthSource in-cluster spec.egress[0].cidr 10.100.0.0/16 overlaps the denied range 10.96.0.0/12 (policy DeniedEgress)');
  });

  it('a violation introduced later leaves the running broker as it was, and deleting still purges', async () => {
    await apply([broker('tightened', { replicas: 2, state: { backend: 'redis', redis: { managed: {} } } })]);
    const runtimeNs = await eventually('applied', async () => {
      const m = await md('tightened');
      return m?.status?.configHash && (await get('deployment', 'broker', m.status.namespace)) ? m.status.namespace : undefined;
    });
    await apply([broker('tightened', { replicas: 3, state: { backend: 'redis', redis: { managed: {} } } })]);
    await eventually('PolicyViolation', async () => condition(await md('tightened'), 'Ready')?.reason === 'PolicyViolation');
    expect((await get<Obj & { spec: { replicas: number } }>('deployment', 'broker', runtimeNs))?.spec.replicas).toBe(2);
    await kubectl(['delete', 'mqttdeployments.mqtt.enclave.dev', 'tightened', '-n', NS, '--wait=false']);
    await eventually('purged', async () => (await md('tightened')) === undefined, 90_000);
    expect(await get('namespace', runtimeNs)).toBeUndefined();
  });
});

describe('API errors', () => {
  it('reach status and the log as the API server\'s one-line message, without response body or headers', async () => {
    // Within the ceilings, but the API server refuses the Deployment (request above limit).
    await apply([broker('refused-by-api', { resources: { requests: { cpu: '1' }, limits: { cpu: '500m' } } })]);
    const m = await eventually('ApplyFailed', async () => {
      const x = await md('refused-by-api');
      return condition(x, 'Ready')?.reason === 'ApplyFailed' ? x : undefined;
    });
    const message = condition(m, 'Ready')!.message;
    expect(message).toContain('must be less than or equal to cpu limit');
    expect(message).not.toMatch(/\n|Headers|Body|content-type/i);
    const lines = await eventually('the failure logged', async () => {
      const found = operatorLog(op).split('\n').filter((l) => l.includes('Reconcile failed') && l.includes('refused-by-api'));
      return found.length > 0 ? found : undefined;
    });
    for (const line of lines) {
      const err = (JSON.parse(line) as { err: string }).err;
      expect(err).toContain('must be less than or equal to cpu limit');
      expect(err).not.toMatch(/\n|Headers|Body|content-type|audit-id/i);
    }
    await kubectl(['delete', 'mqttdeployments.mqtt.enclave.dev', 'refused-by-api', '-n', NS, '--wait=false']);
  });
});

describe('what an allowed deployment gets', () => {
  it('the platform scheduling, complete resources, a ResourceQuota and a LimitRange from the ceilings', async () => {
    await apply([broker('fine', { replicas: 2, state: { backend: 'redis', redis: { managed: {} } }, image: 'registry.example/enclave-broker:2.0', resources: { requests: { memory: '256Mi' } } })]);
    const m = await eventually('reconciled', async () => {
      const x = await md('fine');
      return x?.status?.configHash && (await get('deployment', 'broker', x.status.namespace)) ? x : undefined;
    });
    const runtimeNs = m.status!.namespace!;
    type Pod = { nodeSelector?: Record<string, string>; tolerations?: unknown; containers: { image: string; resources: unknown }[] };
    const pod = (await get<Obj & { spec: { template: { spec: Pod } } }>('deployment', 'broker', runtimeNs))!.spec.template.spec;
    expect(pod.nodeSelector).toEqual({ 'pool.example/brokers': 'true' });
    expect(pod.containers[0]?.image).toBe('registry.example/enclave-broker:2.0');
    expect(pod.containers[0]?.resources).toEqual({ requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } });
    const quota = await get<Obj & { spec: { hard: Record<string, string> } }>('resourcequota', 'enclave-ceilings', runtimeNs);
    // replicas + 1 brokers of the ceiling each, plus exactly the managed Redis pod (50m/64Mi
    // requested, 1 CPU/256Mi limit) that spec.state asks for; no claim without persistence.
    expect(quota?.spec.hard).toEqual({
      pods: '4', 'requests.cpu': '3050m', 'limits.cpu': '4', 'requests.memory': '3136Mi', 'limits.memory': '3328Mi',
      persistentvolumeclaims: '0', 'services.loadbalancers': '0', 'services.nodeports': '0',
    });
    const limits = await get<Obj & { spec: { limits: Record<string, unknown>[] } }>('limitrange', 'enclave-ceilings', runtimeNs);
    expect(limits?.spec.limits[0]).toMatchObject({ type: 'Container', max: { cpu: '1', memory: '1Gi' }, default: { cpu: '1', memory: '512Mi' } });
    // The broker's own pods get through admission (the ReplicaSet controller creates them through
    // LimitRanger and ResourceQuota), the CPU limit coming from the LimitRange. The test world runs
    // no resourcequota controller, so usage is not counted here.
    const pods = await eventually('both broker pods admitted', async () => {
      const found = (await list('pods', runtimeNs)).filter((p) => p.metadata.labels?.['app.kubernetes.io/name'] === 'enclave-broker');
      return found.length === 2 ? found : undefined;
    });
    // ...and so does the managed Redis pod, within the same quota and limits.
    await eventually('the Redis pod admitted', async () => (await list('pods', runtimeNs)).some((p) => p.metadata.labels?.['app.kubernetes.io/name'] === 'enclave-redis'));
    for (const p of pods) {
      expect((p as Obj & { spec: { containers: { resources: unknown }[] } }).spec.containers[0]?.resources).toEqual({ requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } });
    }
  });
});
