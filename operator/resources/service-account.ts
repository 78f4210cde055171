// The broker's ServiceAccount: the broker never talks to the API server, so no token is mounted.
import type { V1ServiceAccount } from '@kubernetes/client-node';
import { BROKER_NAME, ownerLabels } from '../api/names.ts';
import { type BuildContext, ownerOf, targetNamespace } from './context.ts';

export function serviceAccount(ctx: BuildContext): V1ServiceAccount {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: BROKER_NAME, namespace: targetNamespace(ctx.md), labels: ownerLabels(ownerOf(ctx.md)) },
    automountServiceAccountToken: false,
  };
}
