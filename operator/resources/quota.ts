// The ResourceQuota and LimitRange of a runtime namespace, sized from the platform's per-deployment
// ceilings (policy ResourceCeilings): whatever an MqttDeployment asks, its namespace cannot hold
// more than `replicas` pods (+1 for a rolling update's surge) of at most the ceiling each, no
// PersistentVolumeClaims and no LoadBalancer or NodePort Services. Without them a tenant could
// escape its own namespace's quota by asking Enclave instead.
import type { V1LimitRange, V1ResourceQuota } from '@kubernetes/client-node';
import { ownerLabels } from '../api/names.ts';
import { DEFAULT_POLICY, type PlatformPolicy } from '../policy/platform.ts';
import { cpuQuantity, memoryQuantity, parseQuantity } from '../policy/quantity.ts';
import { type BuildContext, ownerOf, targetNamespace } from './context.ts';

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
  const { ceilings } = ctx.config.policy ?? DEFAULT_POLICY;
  const pods = ceilings.replicas + 1;
  const cpu = cpuQuantity(parseQuantity(ceilings.cpu)! * pods);
  const memory = memoryQuantity(parseQuantity(ceilings.memory)! * pods);
  return {
    apiVersion: 'v1',
    kind: 'ResourceQuota',
    metadata: { name: QUOTA_NAME, namespace: targetNamespace(ctx.md), labels: ownerLabels(ownerOf(ctx.md)) },
    spec: {
      hard: {
        pods: String(pods),
        'requests.cpu': cpu,
        'limits.cpu': cpu,
        'requests.memory': memory,
        'limits.memory': memory,
        persistentvolumeclaims: '0',
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
