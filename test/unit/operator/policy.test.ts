// The platform policy's pure parts, as tables: what an MqttDeployment or AuthSource may not ask
// for (each refusal naming its policy), what the broker pod gets instead, and the quota a runtime
// namespace is given.
import { describe, expect, it } from 'vitest';
import type { MqttDeploymentSpec } from '../../../operator/api/types.ts';
import { cidrsOverlap } from '../../../operator/policy/cidr.ts';
import { DEFAULT_POLICY, PolicyConfigError, authSourceViolations, imageRepository, mqttDeploymentViolations, policyFromJson, type PlatformPolicy } from '../../../operator/policy/platform.ts';
import { parseQuantity } from '../../../operator/policy/quantity.ts';
import { containerResources, limitRange, resourceQuota } from '../../../operator/resources/quota.ts';
import { deployment } from '../../../operator/resources/deployment.ts';
import { ctx, md, source } from './fixtures.ts';

const IMAGE = 'ghcr.io/enclave-dev/enclave-broker:0.1.0';

describe('mqttDeploymentViolations', () => {
  it.each([
    ['nothing set', {}, DEFAULT_POLICY, []],
    ['the default image, another tag, a digest', { image: 'ghcr.io/enclave-dev/enclave-broker:0.2.0' }, DEFAULT_POLICY, []],
    ['by digest', { image: 'ghcr.io/enclave-dev/enclave-broker@sha256:abc' }, DEFAULT_POLICY, []],
    ['another repository', { image: 'docker.io/evil/broker:1' }, DEFAULT_POLICY, ['spec.image docker.io/evil/broker:1 is not from an allowed repository (policy AllowedBrokerImages: ghcr.io/enclave-dev/enclave-broker)']],
    ['a repository that only starts like the allowed one', { image: 'ghcr.io/enclave-dev/enclave-broker-evil:1' }, DEFAULT_POLICY, ['spec.image ghcr.io/enclave-dev/enclave-broker-evil:1 is not from an allowed repository (policy AllowedBrokerImages: ghcr.io/enclave-dev/enclave-broker)']],
    ['a listed mirror', { image: 'registry.corp/enclave-broker:1' }, { ...DEFAULT_POLICY, allowedImageRepositories: ['registry.corp/enclave-broker'] }, []],
    ['tolerations', { tolerations: [{ operator: 'Exists' }] }, DEFAULT_POLICY, ["spec.tolerations: tenants may not set scheduling; the platform's applies (policy TenantScheduling)"]],
    ['nodeSelector and affinity', { nodeSelector: { 'node-role.kubernetes.io/control-plane': '' }, affinity: {} }, DEFAULT_POLICY, [
      "spec.nodeSelector: tenants may not set scheduling; the platform's applies (policy TenantScheduling)",
      "spec.affinity: tenants may not set scheduling; the platform's applies (policy TenantScheduling)",
    ]],
    ['scheduling when allowed', { tolerations: [{ operator: 'Exists' }] }, { ...DEFAULT_POLICY, tenantScheduling: true }, []],
    ['replicas at the ceiling', { replicas: 3 }, DEFAULT_POLICY, []],
    ['replicas above', { replicas: 4 }, DEFAULT_POLICY, ['spec.replicas: 4 is above the ceiling 3 (policy ResourceCeilings)']],
    ['cpu and memory at the ceiling', { resources: { requests: { cpu: '2000m', memory: '2048Mi' }, limits: { cpu: 2, memory: '2Gi' } } }, DEFAULT_POLICY, []],
    ['cpu and memory above', { resources: { requests: { cpu: '2001m' }, limits: { memory: '3G' } } }, DEFAULT_POLICY, [
      'spec.resources.requests.cpu: 2001m is above the ceiling 2 (policy ResourceCeilings)',
      'spec.resources.limits.memory: 3G is above the ceiling 2Gi (policy ResourceCeilings)',
    ]],
    ['a GPU', { resources: { limits: { 'nvidia.com/gpu': '1' } } }, DEFAULT_POLICY, ['spec.resources.limits.nvidia.com/gpu: only cpu and memory may be requested (policy ResourceCeilings)']],
    ['not a quantity', { resources: { requests: { memory: 'lots' } } }, DEFAULT_POLICY, ['spec.resources.requests.memory: lots is not a quantity']],
  ] as [string, MqttDeploymentSpec, PlatformPolicy, string[]][])('%s', (_what, spec, policy, expected) => {
    expect(mqttDeploymentViolations(md(spec), policy, IMAGE)).toEqual(expected);
  });
});

describe('authSourceViolations (DeniedEgress)', () => {
  const egress = (cidr: string) => source('db', { type: 'x509', egress: [{ cidr, port: 5432 }] });
  it.each([
    ['a backend outside the cluster', '192.0.2.10/32', []],
    ['a pod range address', '10.244.3.7/32', ['spec.egress[0].cidr 10.244.3.7/32 overlaps the denied range 10.244.0.0/16 (policy DeniedEgress)']],
    ['a /8 holding the service range', '10.0.0.0/8', ['spec.egress[0].cidr 10.0.0.0/8 overlaps the denied range 10.244.0.0/16 (policy DeniedEgress)']],
    ['the service range itself', '10.100.0.0/16', ['spec.egress[0].cidr 10.100.0.0/16 overlaps the denied range 10.96.0.0/12 (policy DeniedEgress)']],
    ['IPv6 link-local', 'fe80::1/128', ['spec.egress[0].cidr fe80::1/128 overlaps the denied range fe80::/10 (policy DeniedEgress)']],
    ['an IPv6 backend', '2001:db8::5/128', []],
  ])('%s', (_what, cidr, expected) => {
    expect(authSourceViolations(egress(cidr), DEFAULT_POLICY)).toEqual(expected);
  });
  const inCluster = (namespace: string) => source('db', { type: 'x509', egress: [{ namespace, podLabels: { app: 'pg' }, port: 5432 }] });
  it.each([
    ['its own namespace', 'team-a', DEFAULT_POLICY, []],
    ['another team\'s', 'team-b', DEFAULT_POLICY, ["spec.egress[0].namespace team-b is not an allowed egress namespace (policy DeniedEgress: the AuthSource's own)"]],
    ['kube-system', 'kube-system', { ...DEFAULT_POLICY, allowedEgressNamespaces: ['databases'] }, ["spec.egress[0].namespace kube-system is not an allowed egress namespace (policy DeniedEgress: the AuthSource's own, databases)"]],
    ['a listed one', 'databases', { ...DEFAULT_POLICY, allowedEgressNamespaces: ['databases'] }, []],
    ['any, with *', 'team-b', { ...DEFAULT_POLICY, allowedEgressNamespaces: ['*'] }, []],
  ] as [string, string, PlatformPolicy, string[]][])('in-cluster backend in %s', (_what, namespace, policy, expected) => {
    expect(authSourceViolations(inCluster(namespace), policy)).toEqual(expected);
  });
});

describe('helpers', () => {
  it.each([
    ['10.0.0.0/8', '10.244.0.0/16', true], ['10.244.0.0/16', '10.0.0.0/8', true], ['10.1.0.0/16', '10.2.0.0/16', false],
    ['0.0.0.0/0', '1.2.3.4/32', true], ['fe80::/10', 'fe80::1/128', true], ['fe80::/10', '10.0.0.0/8', false],
    ['::ffff:10.244.0.1/128', '::ffff:10.244.0.0/120', true], ['2001:db8::/32', '2001:db9::/32', false],
  ])('cidrsOverlap(%s, %s) = %s', (a, b, expected) => {
    expect(cidrsOverlap(a, b)).toBe(expected);
  });
  it.each([
    ['100m', 0.1], ['2', 2], ['1.5', 1.5], ['128Mi', 128 * 2 ** 20], ['1G', 1e9], ['1e3', 1000], ['lots', undefined], ['-1', undefined],
  ])('parseQuantity(%s) = %s', (q, expected) => {
    expect(parseQuantity(q)).toBe(expected);
  });
  it.each([
    ['ghcr.io/a/b:1', 'ghcr.io/a/b'], ['ghcr.io/a/b@sha256:1', 'ghcr.io/a/b'], ['localhost:5000/b', 'localhost:5000/b'], ['localhost:5000/b:2', 'localhost:5000/b'],
  ])('imageRepository(%s) = %s', (image, repo) => {
    expect(imageRepository(image)).toBe(repo);
  });
  it('policyFromJson fills defaults and refuses a malformed policy', () => {
    expect(policyFromJson(undefined)).toEqual(DEFAULT_POLICY);
    expect(policyFromJson('{"ceilings":{"replicas":5}}').ceilings).toEqual({ replicas: 5, cpu: '2', memory: '2Gi' });
    expect(() => policyFromJson('{"ceilings":{"cpu":"a lot"}}')).toThrow(PolicyConfigError);
    expect(() => policyFromJson('{"deniedEgressCidrs":["10.0.0.0"]}')).toThrow('10.0.0.0 is not a CIDR');
  });
});

describe('what the broker pod and runtime namespace get', () => {
  it.each([
    ['nothing set: the old defaults', undefined, { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } }],
    ['a memory request above the default limit raises the limit with it', { requests: { memory: '1Gi' } }, { requests: { cpu: '100m', memory: '1Gi' }, limits: { memory: '1Gi' } }],
    ['a small limit lowers the default request', { limits: { cpu: '50m', memory: '64Mi' } }, { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '50m', memory: '64Mi' } }],
  ] as [string, MqttDeploymentSpec['resources'], unknown][])('resources: %s', (_what, resources, expected) => {
    expect(containerResources(resources, DEFAULT_POLICY)).toEqual(expected);
  });

  it('ceilings below the defaults clamp them', () => {
    const tight = { ...DEFAULT_POLICY, ceilings: { replicas: 1, cpu: '50m', memory: '256Mi' } };
    expect(containerResources(undefined, tight)).toEqual({ requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '256Mi' } });
  });

  it('the platform scheduling applies, the tenant one only when allowed', () => {
    const platform: PlatformPolicy = { ...DEFAULT_POLICY, scheduling: { nodeSelector: { pool: 'brokers' }, tolerations: [{ key: 'brokers', operator: 'Exists', effect: 'NoSchedule' }] } };
    const spec: MqttDeploymentSpec = { nodeSelector: { pool: 'gpu' } };
    const podOf = (policy: PlatformPolicy) => deployment({ ...ctx(md(spec)), config: { ...ctx(md()).config, policy } }, 'h').spec!.template.spec!;
    expect(podOf(platform).nodeSelector).toEqual({ pool: 'brokers' });
    expect(podOf(platform).tolerations).toEqual(platform.scheduling.tolerations);
    expect(podOf({ ...platform, tenantScheduling: true }).nodeSelector).toEqual({ pool: 'gpu' });
    expect(podOf(DEFAULT_POLICY).nodeSelector).toBeUndefined();
  });

  it('quota: replicas + 1 pods of at most the ceiling each, no volumes, no external Services', () => {
    const c = ctx(md());
    expect(resourceQuota(c).spec?.hard).toEqual({
      pods: '4', 'requests.cpu': '8000m', 'limits.cpu': '8000m', 'requests.memory': '8192Mi', 'limits.memory': '8192Mi',
      persistentvolumeclaims: '0', 'services.loadbalancers': '0', 'services.nodeports': '0',
    });
    expect(limitRange(c).spec?.limits[0]).toMatchObject({ type: 'Container', max: { cpu: '2', memory: '2Gi' }, _default: { cpu: '2', memory: '512Mi' } });
  });
});
