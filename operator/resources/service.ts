// The broker Service: one port per listener, plus none for admin (scraped via the pod, not exposed).
import type { V1Service } from '@kubernetes/client-node';
import { BROKER_NAME, brokerSelector, ownerLabels } from '../api/names.ts';
import { type BuildContext, ownerOf, targetNamespace } from './context.ts';
import { effectiveListeners } from './listeners.ts';

export function service(ctx: BuildContext): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: BROKER_NAME, namespace: targetNamespace(ctx.md), labels: ownerLabels(ownerOf(ctx.md)) },
    spec: {
      type: 'ClusterIP',
      selector: brokerSelector(),
      ports: effectiveListeners(ctx.md).map((l) => ({ name: l.name, protocol: 'TCP', port: l.port, targetPort: l.port })),
    },
  };
}
