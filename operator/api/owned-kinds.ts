// Every kind the operator reads or writes: the verbs it needs (status subresources excepted:
// get/update/patch on each of the three kinds' /status) and how it watches the kind. This table is
// the one place a kind is added: the informers (kube/informers.ts), the caches reconcile reads for drift
// (`Informers.owned`, by kind) and which reconciles a change wakes (reconcile/keys.ts) derive from it; the
// Helm chart's RBAC is kept equal to it by test/integration/helm/owned-kinds.test.ts, and the purge
// e2e test lists the kinds with `perDeployment` to prove nothing is left behind.
import { LABEL_ROLE, ROLE_BROKER_CONFIG, ROLE_STATE_BACKEND } from './names.ts';

/**
 * How the operator watches a kind (an informer: list + watch + cache), named for logs and lookups.
 * - `resource`: one of the operator's custom resources, every object in every namespace; each is a
 *   reconcile key of its own.
 * - `referenced`: tenant Secrets a resource may reference (opted in), and the operator's own (CAs,
 *   issued certificates); kube/informers.ts builds this one view specially (two selectors, and one
 *   namespace at a time when Secret access is namespaced).
 * - `owned`: what the operator creates in runtime namespaces, only ours (managed-by label, plus
 *   `selector`); a change wakes the owner, which re-checks for drift. `drop`: top-level fields never
 *   read from the cache (drift is judged by versions), so not kept. `clusterSecretAccess`: needs to
 *   read Secrets in every namespace, so not watched when Secret access is namespaced.
 */
export type Watch =
  | { name: string; role: 'resource' }
  | { name: string; role: 'referenced' }
  | { name: string; role: 'owned'; drop: readonly string[]; selector?: string; clusterSecretAccess?: true };

export interface KindInfo {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  verbs: readonly string[];
  /** Created inside each runtime namespace (or is the namespace): purge must leave none behind. */
  perDeployment: boolean;
  /** The informers the operator keeps of this kind; none = read or written only. */
  watches?: readonly Watch[];
}

const rw = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] as const;

export const KINDS = {
  mqttDeployments: { group: 'mqtt.enclave.dev', version: 'v1alpha1', plural: 'mqttdeployments', kind: 'MqttDeployment', namespaced: true, verbs: ['get', 'list', 'watch', 'update', 'patch'], perDeployment: false, watches: [{ name: 'mqttDeployments', role: 'resource' }] },
  mqttDeploymentFinalizers: { group: 'mqtt.enclave.dev', version: 'v1alpha1', plural: 'mqttdeployments/finalizers', kind: 'MqttDeployment', namespaced: true, verbs: ['update'], perDeployment: false },
  authSources: { group: 'mqtt.enclave.dev', version: 'v1alpha1', plural: 'authsources', kind: 'AuthSource', namespaced: true, verbs: ['get', 'list', 'watch'], perDeployment: false, watches: [{ name: 'authSources', role: 'resource' }] },
  tlsCertificates: { group: 'mqtt.enclave.dev', version: 'v1alpha1', plural: 'tlscertificates', kind: 'TlsCertificate', namespaced: true, verbs: ['get', 'list', 'watch'], perDeployment: false, watches: [{ name: 'tlsCertificates', role: 'resource' }] },
  namespaces: { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false, verbs: rw, perDeployment: true, watches: [{ name: 'namespaces', role: 'owned', drop: ['spec'] }] },
  secrets: { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true, verbs: rw, perDeployment: true, watches: [
    { name: 'secrets', role: 'referenced' },
    // The broker-config copies and the managed Redis' Secret: drift only, so their data is not kept
    // here (the Redis password is read back from the `secrets` view, which holds the operator's own).
    { name: 'brokerConfigs', role: 'owned', selector: `${LABEL_ROLE} in (${ROLE_BROKER_CONFIG},${ROLE_STATE_BACKEND})`, drop: ['data', 'stringData'], clusterSecretAccess: true },
  ] },
  serviceAccounts: { group: '', version: 'v1', plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true, verbs: rw, perDeployment: true, watches: [{ name: 'serviceAccounts', role: 'owned', drop: [] }] },
  services: { group: '', version: 'v1', plural: 'services', kind: 'Service', namespaced: true, verbs: rw, perDeployment: true, watches: [{ name: 'services', role: 'owned', drop: ['spec'] }] },
  deployments: { group: 'apps', version: 'v1', plural: 'deployments', kind: 'Deployment', namespaced: true, verbs: rw, perDeployment: true, watches: [{ name: 'deployments', role: 'owned', drop: ['spec'] }] },
  networkPolicies: { group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies', kind: 'NetworkPolicy', namespaced: true, verbs: rw, perDeployment: true, watches: [{ name: 'networkPolicies', role: 'owned', drop: ['spec'] }] },
  podDisruptionBudgets: { group: 'policy', version: 'v1', plural: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', namespaced: true, verbs: rw, perDeployment: true, watches: [{ name: 'podDisruptionBudgets', role: 'owned', drop: ['spec'] }] },
  // Applied only (server-side apply: create + patch); they go with their namespace, never alone.
  resourceQuotas: { group: '', version: 'v1', plural: 'resourcequotas', kind: 'ResourceQuota', namespaced: true, verbs: ['create', 'patch'], perDeployment: true },
  limitRanges: { group: '', version: 'v1', plural: 'limitranges', kind: 'LimitRange', namespaced: true, verbs: ['create', 'patch'], perDeployment: true },
  // The managed Redis' claim (spec.state.redis.managed.persistence): applied, read before it is
  // deleted when persistence is turned off; never listed or watched (the quota admits exactly one,
  // and the namespace's deletion takes it).
  persistentVolumeClaims: { group: '', version: 'v1', plural: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', namespaced: true, verbs: ['get', 'create', 'patch', 'delete'], perDeployment: true },
  // The purge Job of an external state backend (reconcile/state-purge.ts): created when the
  // MqttDeployment is deleted, read until it finishes, deleted to retry. Polled, not watched.
  jobs: { group: 'batch', version: 'v1', plural: 'jobs', kind: 'Job', namespaced: true, verbs: ['get', 'create', 'patch', 'delete'], perDeployment: true },
  // Read only: why broker pods are not ready (image pull, crash loop, probe) goes into status.
  pods: { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true, verbs: ['list'], perDeployment: false },
  events: { group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true, verbs: ['create', 'patch'], perDeployment: false },
  leases: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true, verbs: ['get', 'list', 'watch', 'create', 'update'], perDeployment: false },
} as const satisfies Record<string, KindInfo>;

export const OWNED_KINDS: readonly KindInfo[] = Object.values(KINDS);

/** One informer the operator keeps, with the kind it watches. */
export interface WatchedKind {
  kind: KindInfo;
  watch: Watch;
}

export const WATCHED: readonly WatchedKind[] = OWNED_KINDS.flatMap((kind) => (kind.watches ?? []).map((watch) => ({ kind, watch })));
