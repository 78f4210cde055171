// The desired object set of one MqttDeployment, in apply order. The order is the order of
// dependence: the namespace must exist before anything in it; network policies come before any pod
// can start so no pod ever runs unfenced; the ServiceAccount and config Secret before the
// Deployment that mounts them (else its pods fail to start); the Service and PDB last, they only
// select pods. The ResourceQuota and LimitRange go with the network policies, before any pod.
// `null` means "must not exist" and is deleted.
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
    ],
    [entry(serviceAccount(ctx)), entry(rendered.secret)],
    [
      entry(deployment(ctx, rendered.configHash)),
      orDelete(service(ctx), { apiVersion: 'v1', kind: 'Service', namespace: ns, name: BROKER_NAME }),
      orDelete(podDisruptionBudget(ctx), { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', namespace: ns, name: BROKER_NAME }),
    ],
  ];
  return { entries: stages.flat(), stages, configHash: rendered.configHash, missing: rendered.missing, invalid: rendered.invalid, disabled: disabledListeners(ctx) };
}
