// Every kind the operator reads or writes, with the verbs it needs (status subresources excepted:
// get/update/patch on each of the three kinds' /status). The Helm chart's RBAC is kept equal to this
// list by test/integration/helm/owned-kinds.test.ts, and the purge e2e test lists the kinds with
// `perDeployment` to prove nothing is left behind.
export interface KindInfo {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  verbs: readonly string[];
  /** Created inside each runtime namespace (or is the namespace): purge must leave none behind. */
  perDeployment: boolean;
}

const rw = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] as const;

export const KINDS = {
  mqttDeployments: { group: 'mqtt.enclave.dev', version: 'v1alpha1', plural: 'mqttdeployments', kind: 'MqttDeployment', namespaced: true, verbs: ['get', 'list', 'watch', 'update', 'patch'], perDeployment: false },
  mqttDeploymentFinalizers: { group: 'mqtt.enclave.dev', version: 'v1alpha1', plural: 'mqttdeployments/finalizers', kind: 'MqttDeployment', namespaced: true, verbs: ['update'], perDeployment: false },
  authSources: { group: 'mqtt.enclave.dev', version: 'v1alpha1', plural: 'authsources', kind: 'AuthSource', namespaced: true, verbs: ['get', 'list', 'watch'], perDeployment: false },
  tlsCertificates: { group: 'mqtt.enclave.dev', version: 'v1alpha1', plural: 'tlscertificates', kind: 'TlsCertificate', namespaced: true, verbs: ['get', 'list', 'watch'], perDeployment: false },
  namespaces: { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false, verbs: rw, perDeployment: true },
  secrets: { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true, verbs: rw, perDeployment: true },
  serviceAccounts: { group: '', version: 'v1', plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true, verbs: rw, perDeployment: true },
  services: { group: '', version: 'v1', plural: 'services', kind: 'Service', namespaced: true, verbs: rw, perDeployment: true },
  deployments: { group: 'apps', version: 'v1', plural: 'deployments', kind: 'Deployment', namespaced: true, verbs: rw, perDeployment: true },
  networkPolicies: { group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies', kind: 'NetworkPolicy', namespaced: true, verbs: rw, perDeployment: true },
  podDisruptionBudgets: { group: 'policy', version: 'v1', plural: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', namespaced: true, verbs: rw, perDeployment: true },
  // Applied only (server-side apply: create + patch); they go with their namespace, never alone.
  resourceQuotas: { group: '', version: 'v1', plural: 'resourcequotas', kind: 'ResourceQuota', namespaced: true, verbs: ['create', 'patch'], perDeployment: true },
  limitRanges: { group: '', version: 'v1', plural: 'limitranges', kind: 'LimitRange', namespaced: true, verbs: ['create', 'patch'], perDeployment: true },
  // Read only: why broker pods are not ready (image pull, crash loop, probe) goes into status.
  pods: { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true, verbs: ['list'], perDeployment: false },
  events: { group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true, verbs: ['create', 'patch'], perDeployment: false },
  leases: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true, verbs: ['get', 'list', 'watch', 'create', 'update'], perDeployment: false },
} as const satisfies Record<string, KindInfo>;

export const OWNED_KINDS: readonly KindInfo[] = Object.values(KINDS);
