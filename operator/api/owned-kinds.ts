// Every kind the operator reads or writes, with its REST coordinates: the single list the RBAC in the
// chart, the raw API client (operator/kube/client.ts) and the purge test are derived from.

export interface KindInfo {
  group: string; // '' = core
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  verbs: string[];
}

const RW = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];

export const KINDS = {
  MqttDeployment: { group: 'mqtt.enclave.dev', version: 'v1alpha1', kind: 'MqttDeployment', plural: 'mqttdeployments', namespaced: true, verbs: ['get', 'list', 'watch', 'update', 'patch'] },
  AuthSource: { group: 'mqtt.enclave.dev', version: 'v1alpha1', kind: 'AuthSource', plural: 'authsources', namespaced: true, verbs: ['get', 'list', 'watch', 'update', 'patch'] },
  TlsCertificate: { group: 'mqtt.enclave.dev', version: 'v1alpha1', kind: 'TlsCertificate', plural: 'tlscertificates', namespaced: true, verbs: ['get', 'list', 'watch', 'update', 'patch'] },
  Namespace: { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false, verbs: RW },
  Secret: { group: '', version: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true, verbs: RW },
  ServiceAccount: { group: '', version: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', namespaced: true, verbs: RW },
  Service: { group: '', version: 'v1', kind: 'Service', plural: 'services', namespaced: true, verbs: RW },
  Event: { group: '', version: 'v1', kind: 'Event', plural: 'events', namespaced: true, verbs: ['create', 'patch'] },
  Deployment: { group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments', namespaced: true, verbs: RW },
  NetworkPolicy: { group: 'networking.k8s.io', version: 'v1', kind: 'NetworkPolicy', plural: 'networkpolicies', namespaced: true, verbs: RW },
  PodDisruptionBudget: { group: 'policy', version: 'v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets', namespaced: true, verbs: RW },
  Lease: { group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', plural: 'leases', namespaced: true, verbs: ['get', 'create', 'update', 'patch'] },
} as const satisfies Record<string, KindInfo>;

export type KindName = keyof typeof KINDS;

/** Kinds the operator creates inside (or as) a runtime namespace; purge must leave none behind. */
export const OWNED_KINDS: readonly KindName[] = ['Namespace', 'NetworkPolicy', 'ServiceAccount', 'Secret', 'Deployment', 'Service', 'PodDisruptionBudget'];

export function apiVersionOf(k: KindInfo): string {
  return k.group === '' ? k.version : `${k.group}/${k.version}`;
}

export function kindByApiVersionKind(apiVersion: string, kind: string): KindInfo {
  const found = Object.values(KINDS).find((k) => k.kind === kind && apiVersionOf(k) === apiVersion);
  if (!found) throw new Error(`operator does not know ${apiVersion} ${kind}: add it to operator/api/owned-kinds.ts`);
  return found;
}

/** REST path of a collection or an object. */
export function resourcePath(k: KindInfo, namespace?: string, name?: string): string {
  const base = k.group === '' ? `/api/${k.version}` : `/apis/${k.group}/${k.version}`;
  const ns = k.namespaced && namespace !== undefined ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const obj = name !== undefined ? `/${encodeURIComponent(name)}` : '';
  return `${base}${ns}/${k.plural}${obj}`;
}
