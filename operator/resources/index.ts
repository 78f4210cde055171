// The desired object set of one MqttDeployment, in apply order. The order is the order of
// dependence: the namespace must exist before anything in it; network policies come before any pod
// can start so no pod ever runs unfenced; the ServiceAccount and config Secret before the
// Deployment that mounts them (else its pods fail to start); the Service and PDB last, they only
// select pods. The ResourceQuota and LimitRange go with the network policies, before any pod.
// The managed Redis follows the same order (its policies, then its Secret, Service and claim, then
// its Deployment); it starts with the brokers, which wait for it by themselves (they start degraded
// and reconnect). `null` means "must not exist" and is deleted.
import type { KubernetesObject } from '@kubernetes/client-node';
import { BROKER_NAME } from '../api/names.ts';
import type { BuildContext } from './context.ts';
import { targetNamespace } from './context.ts';
import { namespace } from './namespace.ts';
import { NETWORK_POLICY_NAMES, networkPolicies } from './network-policies.ts';
import { serviceAccount } from './service-account.ts';
import { renderBrokerConfig } from './broker-config.ts';
import { deployment } from './deployment.ts';
import { service } from './service.ts';
import { podDisruptionBudget } from './pdb.ts';
import { limitRange, resourceQuota } from './quota.ts';
import { disabledListeners, type DisabledListener } from './listeners.ts';
import { managedRedisObjects, managedRedisRefs } from './redis.ts';
import { DEFAULT_POLICY } from '../policy/platform.ts';

export interface DesiredEntry {
  /** What to delete when `object` is null. */
  ref: { apiVersion: string; kind: string; namespace?: string; name: string };
  object: KubernetesObject | null;
}

export interface DesiredState {
  entries: DesiredEntry[];
  /** `entries` grouped into stages that can be applied in parallel, in order. */
  stages: DesiredEntry[][];
  configHash: string;
  missing: string[];
  /** The broker would refuse the rendered config: these problems (nothing is applied). */
  invalid: string[];
  /** Declared listeners that are not served, and why. */
  disabled: DisabledListener[];
}

export function desiredState(ctx: BuildContext): DesiredState {
  const ns = targetNamespace(ctx.md);
  const rendered = renderBrokerConfig(ctx);
  const policies = networkPolicies(ctx);
  const entry = (object: KubernetesObject): DesiredEntry => ({
    ref: { apiVersion: object.apiVersion!, kind: object.kind!, name: object.metadata!.name!, ...(object.metadata?.namespace ? { namespace: object.metadata.namespace } : {}) },
    object,
  });
  const orDelete = (object: KubernetesObject | null, ref: DesiredEntry['ref']): DesiredEntry => (object ? entry(object) : { ref, object: null });
  // Built only with a password: without one the config reports it missing and nothing is applied.
  const redis = managedRedisObjects(ctx, ctx.redisPassword ?? '', (ctx.config.policy ?? DEFAULT_POLICY).stateBackend.redisImage);
  const redisEntries = (...kinds: string[]): DesiredEntry[] => managedRedisRefs(ns)
    .filter((ref) => kinds.includes(ref.kind))
    .map((ref) => orDelete(redis.find((o) => o.kind === ref.kind && o.metadata?.name === ref.name) ?? null, ref));
  // Namespace | network policies, quota and limits | SA + config | workload + service + PDB: no pod
  // ever runs unfenced or outside the quota.
  const stages: DesiredEntry[][] = [
    [entry(namespace(ctx))],
    [
      ...NETWORK_POLICY_NAMES.map((name): DesiredEntry => {
        const p = policies.find((x) => x.metadata?.name === name);
        return p ? entry(p) : { ref: { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', namespace: ns, name }, object: null };
      }),
      entry(resourceQuota(ctx)),
      entry(limitRange(ctx)),
      ...redisEntries('NetworkPolicy'),
    ],
    [entry(serviceAccount(ctx)), entry(rendered.secret), ...redisEntries('Secret', 'Service', 'PersistentVolumeClaim')],
    [
      entry(deployment(ctx, rendered.configHash)),
      ...redisEntries('Deployment'),
      orDelete(service(ctx), { apiVersion: 'v1', kind: 'Service', namespace: ns, name: BROKER_NAME }),
      orDelete(podDisruptionBudget(ctx), { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', namespace: ns, name: BROKER_NAME }),
    ],
  ];
  return { entries: stages.flat(), stages, configHash: rendered.configHash, missing: rendered.missing, invalid: rendered.invalid, disabled: disabledListeners(ctx) };
}
