// The runtime namespace: owner labels (the only link back to the CR) and Pod Security Admission
// enforce=restricted, so even a compromised broker image cannot run privileged pods there.
import { ownerLabels } from '../api/names.ts';
import type { Owner } from '../api/names.ts';
import type { KubeObject } from './context.ts';

export function runtimeNamespace(name: string, owner: Owner): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      labels: {
        ...ownerLabels(owner),
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
        'pod-security.kubernetes.io/warn': 'restricted',
        'pod-security.kubernetes.io/audit': 'restricted',
      },
    },
  };
}
