// PodDisruptionBudget, only when there is more than one replica (with one it would block node drains).
import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import { BROKER_NAME, brokerSelector, ownerLabels } from '../api/names.ts';
import { type BuildContext, ownerOf, targetNamespace } from './context.ts';

export function podDisruptionBudget(ctx: BuildContext): V1PodDisruptionBudget | null {
  if ((ctx.md.spec.replicas ?? 1) <= 1) return null;
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: BROKER_NAME, namespace: targetNamespace(ctx.md), labels: ownerLabels(ownerOf(ctx.md)) },
    spec: { maxUnavailable: 1, selector: { matchLabels: brokerSelector() } },
  };
}
