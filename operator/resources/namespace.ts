// The runtime namespace: Pod Security "restricted" enforced, labels carrying the owner's UID.
import type { V1Namespace } from '@kubernetes/client-node';
import { ownerLabels } from '../api/names.ts';
import { type BuildContext, ownerOf, targetNamespace } from './context.ts';

export function namespace(ctx: BuildContext): V1Namespace {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: targetNamespace(ctx.md),
      labels: {
        ...ownerLabels(ownerOf(ctx.md)),
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
      },
    },
  };
}
