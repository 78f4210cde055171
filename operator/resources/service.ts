// The broker Service: one port per served listener, plus none for admin (scraped via the pod, not
// exposed). No served listener → no Service (a ClusterIP Service needs at least one port).
import type { V1Service } from '@kubernetes/client-node';
import { BROKER_NAME, brokerSelector, ownerLabels } from '../api/names.ts';
import { type BuildContext, ownerOf, targetNamespace } from './context.ts';
import { servedListeners } from './listeners.ts';

export function service(ctx: BuildContext): V1Service | null {
  const listeners = servedListeners(ctx);
  if (listeners.length === 0) return null;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: BROKER_NAME, namespace: targetNamespace(ctx.md), labels: ownerLabels(ownerOf(ctx.md)) },
    spec: {
      type: 'ClusterIP',
      selector: brokerSelector(),
      ports: listeners.map((l) => ({ name: l.name, protocol: 'TCP', port: l.port, targetPort: l.port })),
    },
  };
}
