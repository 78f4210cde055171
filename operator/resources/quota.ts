// The ResourceQuota and LimitRange of a runtime namespace, sized from the platform's per-deployment
// ceilings (policy ResourceCeilings): whatever an MqttDeployment asks, its namespace cannot hold
// more than `replicas` pods (+1 for a rolling update's surge) of at most the ceiling each, no
// PersistentVolumeClaims and no LoadBalancer or NodePort Services. Without them a tenant could
// escape its own namespace's quota by asking Enclave instead. A managed state backend adds exactly
// its Redis pod (one more pod, and that container's resources) and, with persistence, its one claim
// of the asked size.
import type { V1LimitRange, V1ResourceQuota } from '@kubernetes/client-node';
import { ownerLabels } from '../api/names.ts';
import { DEFAULT_POLICY, type PlatformPolicy } from '../policy/platform.ts';
import { cpuQuantity, memoryQuantity, parseQuantity } from '../policy/quantity.ts';
import { type BuildContext, ownerOf, targetNamespace } from './context.ts';
import { managedRedisSpec, redisResources } from './redis.ts';

export const QUOTA_NAME = 'enclave-ceilings';

/** What a broker container gets when the tenant names nothing (clamped to the ceilings). */
export const DEFAULT_REQUESTS = { cpu: '100m', memory: '128Mi' };
export const DEFAULT_MEMORY_LIMIT = '512Mi';

const smaller = (a: string, b: string): string => (parseQuantity(a)! <= parseQuantity(b)! ? a : b);
const larger = (a: string, b: string): string => (parseQuantity(a)! >= parseQuantity(b)! ? a : b);

/**
 * The broker container's resources: the tenant's (already within the ceilings), completed so the
 * namespace's quota always admits the pod: requests for cpu and memory and a memory limit are
 * always set. No CPU limit unless the tenant sets one (throttling a broker hurts latency; requests
 * and the quota bound what it may reserve).
 */
export function containerResources(spec: BuildContext['md']['spec']['resources'], policy: PlatformPolicy): { requests: Record<string, string>; limits: Record<string, string> } {
  const str = (v: string | number | undefined): string | undefined => (v === undefined ? undefined : String(v));
  const limitCpu = str(spec?.limits?.cpu);
  const requestCpu = str(spec?.requests?.cpu) ?? smaller(DEFAULT_REQUESTS.cpu, limitCpu ?? policy.ceilings.cpu);
  const requestMemory = str(spec?.requests?.memory) ?? smaller(DEFAULT_REQUESTS.memory, str(spec?.limits?.memory) ?? policy.ceilings.memory);
  const limitMemory = str(spec?.limits?.memory) ?? larger(smaller(DEFAULT_MEMORY_LIMIT, policy.ceilings.memory), requestMemory);
  return { requests: { cpu: requestCpu, memory: requestMemory }, limits: { ...(limitCpu !== undefined ? { cpu: limitCpu } : {}), memory: limitMemory } };
}

export function resourceQuota(ctx: BuildContext): V1ResourceQuota {
  const policy = ctx.config.policy ?? DEFAULT_POLICY;
  const { ceilings } = policy;
  const brokerPods = ceilings.replicas + 1;
  const managed = managedRedisSpec(ctx.md);
  // The Redis pod's own resources on top of the brokers' (0 without a managed Redis).
  const redis = managed === undefined ? undefined : redisResources(policy);
  const plus = (q: string | undefined): number => (q === undefined ? 0 : parseQuantity(q)!);
  const cpu = (redisCpu: string | undefined) => cpuQuantity(parseQuantity(ceilings.cpu)! * brokerPods + plus(redisCpu));
  const memory = (redisMemory: string | undefined) => memoryQuantity(parseQuantity(ceilings.memory)! * brokerPods + plus(redisMemory));
  const claim = managed?.persistence;
  return {
    apiVersion: 'v1',
    kind: 'ResourceQuota',
    metadata: { name: QUOTA_NAME, namespace: targetNamespace(ctx.md), labels: ownerLabels(ownerOf(ctx.md)) },
    spec: {
      hard: {
        pods: String(brokerPods + (redis ? 1 : 0)),
        'requests.cpu': cpu(redis?.requests.cpu),
        'limits.cpu': cpu(redis?.limits.cpu),
        'requests.memory': memory(redis?.requests.memory),
        'limits.memory': memory(redis?.limits.memory),
        persistentvolumeclaims: claim ? '1' : '0',
        ...(claim ? { 'requests.storage': claim.size } : {}),
        'services.loadbalancers': '0',
        'services.nodeports': '0',
      },
    },
  };
}

export function limitRange(ctx: BuildContext): V1LimitRange {
  const { ceilings } = ctx.config.policy ?? DEFAULT_POLICY;
  return {
    apiVersion: 'v1',
    kind: 'LimitRange',
    metadata: { name: QUOTA_NAME, namespace: targetNamespace(ctx.md), labels: ownerLabels(ownerOf(ctx.md)) },
    spec: {
      limits: [{
        type: 'Container',
        max: { cpu: ceilings.cpu, memory: ceilings.memory },
        _default: { cpu: ceilings.cpu, memory: smaller(DEFAULT_MEMORY_LIMIT, ceilings.memory) },
        defaultRequest: { cpu: smaller(DEFAULT_REQUESTS.cpu, ceilings.cpu), memory: smaller(DEFAULT_REQUESTS.memory, ceilings.memory) },
      }],
    },
  };
}
