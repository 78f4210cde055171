// The broker's ServiceAccount: the broker never talks to the API server, so no token is mounted.
import { BROKER_SERVICE_ACCOUNT, ownerLabels } from '../api/names.ts';
import type { DesiredContext, KubeObject } from './context.ts';

export function serviceAccount(ctx: DesiredContext): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: BROKER_SERVICE_ACCOUNT, namespace: ctx.namespace, labels: ownerLabels(ctx.owner) },
    automountServiceAccountToken: false,
  };
}
