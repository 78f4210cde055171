// Informers (list + watch + cache) for everything the operator reacts to: the three kinds in every
// namespace; tenant Secrets (referenced ones are found in the cache by name); and the objects the
// operator owns in runtime namespaces, label-filtered so the cache holds only ours. The owned-kind
// caches let reconcile notice drift (an object deleted or edited by hand) without any API read.
//
// Secrets are the sensitive cache. It holds only Secrets a tenant's Secret owner opted in (label
// mqtt.enclave.dev/allow-reference=true: nothing else may be referenced anyway) and the operator's
// own (tenant CAs, issued certificates), never the rendered broker-config copies; kube-system's
// Secrets never enter it. With `tenantNamespaces` set (Helm rbac.tenantSecretAccess=namespaced)
// Secrets are watched one namespace at a time, only in those namespaces plus the operator's own:
// the operator then needs, and has, no right to read Secrets anywhere else.
import {
  AppsV1Api, CoreV1Api, CustomObjectsApi, NetworkingV1Api, PolicyV1Api, makeInformer,
  type Informer, type KubeConfig, type KubernetesObject, type ObjectCache, type V1Deployment, type V1Namespace,
  type V1NetworkPolicy, type V1PodDisruptionBudget, type V1Secret, type V1Service, type V1ServiceAccount,
} from '@kubernetes/client-node';
import { GROUP, VERSION, type AuthSource, type MqttDeployment, type TlsCertificate } from '../api/types.ts';
import { LABEL_ALLOW_REFERENCE, LABEL_MANAGED_BY, LABEL_ROLE, MANAGED_BY, ROLE_BROKER_CONFIG } from '../api/names.ts';

export type Cache<T> = Informer<T & KubernetesObject> & ObjectCache<T & KubernetesObject>;

export interface Informers {
  mqttDeployments: Cache<MqttDeployment>;
  authSources: Cache<AuthSource>;
  tlsCertificates: Cache<TlsCertificate>;
  /** Tenant Secrets opted in (label allow-reference=true) and the operator's own (tenant CAs, issued certificates); never broker-config copies. */
  secrets: Cache<V1Secret>;
  namespaces: Cache<V1Namespace>;
  deployments: Cache<V1Deployment>;
  networkPolicies: Cache<V1NetworkPolicy>;
  services: Cache<V1Service>;
  serviceAccounts: Cache<V1ServiceAccount>;
  podDisruptionBudgets: Cache<V1PodDisruptionBudget>;
  /** The broker-config Secrets (drift only). Absent when Secrets are namespaced: runtime namespaces are not readable then. */
  brokerConfigs?: Cache<V1Secret>;
}

export interface InformerScope {
  /** Watch Secrets only in these namespaces (plus `operatorNamespace`); undefined = cluster-wide. */
  tenantNamespaces?: readonly string[];
  operatorNamespace: string;
}

/** One informer of a composite view, and the namespace it is limited to (undefined: every namespace). */
interface Part<T extends KubernetesObject> {
  namespace?: string;
  cache: Informer<T> & ObjectCache<T>;
}

/**
 * A read view over several informers: Secrets are watched once per label selector (tenant opt-in,
 * operator-made) and, in namespaced mode, once per namespace. Each part is started, stopped and
 * restarted on its own (`partsOf`); this view only answers reads and fans in events. A Secret two
 * selectors both match (an issued certificate someone also opted in) is listed once.
 */
class Composite<T extends KubernetesObject> implements Informer<T>, ObjectCache<T> {
  readonly parts: Map<string, Part<T>>;
  constructor(parts: Map<string, Part<T>>) {
    this.parts = parts;
  }
  private covering(namespace: string | undefined): Part<T>[] {
    return [...this.parts.values()].filter((p) => namespace === undefined || p.namespace === undefined || p.namespace === namespace);
  }
  get(name: string, namespace?: string): T | undefined {
    for (const p of this.covering(namespace)) {
      const hit = p.cache.get(name, namespace);
      if (hit) return hit;
    }
    return undefined;
  }
  list(namespace?: string): readonly T[] {
    const seen = new Set<string>();
    return this.covering(namespace).flatMap((p) => p.cache.list(namespace)).filter((o) => {
      const id = o.metadata?.uid ?? `${o.metadata?.namespace}/${o.metadata?.name}`;
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
  }
  on(verb: never, cb: never): void {
    for (const p of this.parts.values()) p.cache.on(verb, cb);
  }
  off(verb: never, cb: never): void {
    for (const p of this.parts.values()) p.cache.off(verb, cb);
  }
  async start(): Promise<void> {
    await Promise.all([...this.parts.values()].map((p) => p.cache.start()));
  }
  async stop(): Promise<void> {
    await Promise.all([...this.parts.values()].map((p) => p.cache.stop()));
  }
}

/**
 * Keeps only what the operator reads of an owned object: metadata (labels, versions) and status.
 * client-node's cache stores the very object it hands to add/update handlers (list and watch
 * alike), so a handler registered before start() slims the cached copy in place. managedFields
 * alone are often half an object; a Deployment's pod template or a broker-config Secret's data are
 * never read from the cache (drift is judged by versions), so they are not kept either.
 */
function slim<T extends KubernetesObject>(informer: Informer<T> & ObjectCache<T>, drop: readonly string[]): Informer<T> & ObjectCache<T> {
  const trim = (o: T): void => {
    if (o.metadata) delete o.metadata.managedFields;
    for (const key of drop) delete (o as Record<string, unknown>)[key];
  };
  informer.on('add', trim);
  informer.on('update', trim);
  return informer;
}

/** The informers that really list and watch, named for logs: a composite view is its parts. */
export function partsOf(informers: Informers): [string, Cache<unknown>][] {
  return Object.entries(informers).flatMap(([name, informer]: [string, Cache<unknown>]) =>
    informer instanceof Composite ? [...(informer.parts as Map<string, Part<KubernetesObject>>)].map(([part, p]): [string, Cache<unknown>] => [`${name}/${part}`, p.cache as Cache<unknown>]) : [[name, informer]]);
}

export function makeInformers(kc: KubeConfig, scope: InformerScope): Informers {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const net = kc.makeApiClient(NetworkingV1Api);
  const policy = kc.makeApiClient(PolicyV1Api);
  const ours = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;
  const notConfig = `${LABEL_ROLE}!=${ROLE_BROKER_CONFIG}`; // also matches Secrets without the label
  const crd = <T extends KubernetesObject>(plural: string): Cache<T> =>
    makeInformer<T>(kc, `/apis/${GROUP}/${VERSION}/${plural}`, async () => (await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as never);
  // Two selectors, never "every Secret": tenant Secrets only once their owner opted them in, and
  // the operator's own (tenant CAs, issued certificates), minus the broker-config copies.
  const selectors = { 'opted-in': `${LABEL_ALLOW_REFERENCE}=true`, 'operator-made': `${ours},${notConfig}` };
  const namespaces: (string | undefined)[] = scope.tenantNamespaces ? [...new Set([...scope.tenantNamespaces, scope.operatorNamespace])] : [undefined];
  const secretParts = new Map<string, Part<V1Secret>>();
  for (const [what, selector] of Object.entries(selectors)) {
    for (const ns of namespaces) {
      const cache = ns === undefined
        ? makeInformer(kc, '/api/v1/secrets', () => core.listSecretForAllNamespaces({ labelSelector: selector }), selector)
        : makeInformer(kc, `/api/v1/namespaces/${ns}/secrets`, () => core.listNamespacedSecret({ namespace: ns, labelSelector: selector }), selector);
      secretParts.set(ns === undefined ? what : `${what}/${ns}`, { ...(ns === undefined ? {} : { namespace: ns }), cache });
    }
  }
  const secrets: Cache<V1Secret> = new Composite(secretParts);
  const configs = `${ours},${LABEL_ROLE}=${ROLE_BROKER_CONFIG}`;
  return {
    mqttDeployments: slim(crd<MqttDeployment & KubernetesObject>('mqttdeployments'), []),
    authSources: slim(crd<AuthSource & KubernetesObject>('authsources'), []),
    tlsCertificates: slim(crd<TlsCertificate & KubernetesObject>('tlscertificates'), []),
    secrets: slim(secrets, []),
    namespaces: slim(makeInformer(kc, '/api/v1/namespaces', () => core.listNamespace({ labelSelector: ours }), ours), ['spec']),
    deployments: slim(makeInformer(kc, '/apis/apps/v1/deployments', () => apps.listDeploymentForAllNamespaces({ labelSelector: ours }), ours), ['spec']),
    networkPolicies: slim(makeInformer(kc, '/apis/networking.k8s.io/v1/networkpolicies', () => net.listNetworkPolicyForAllNamespaces({ labelSelector: ours }), ours), ['spec']),
    services: slim(makeInformer(kc, '/api/v1/services', () => core.listServiceForAllNamespaces({ labelSelector: ours }), ours), ['spec']),
    serviceAccounts: slim(makeInformer(kc, '/api/v1/serviceaccounts', () => core.listServiceAccountForAllNamespaces({ labelSelector: ours }), ours), []),
    podDisruptionBudgets: slim(makeInformer(kc, '/apis/policy/v1/poddisruptionbudgets', () => policy.listPodDisruptionBudgetForAllNamespaces({ labelSelector: ours }), ours), ['spec']),
    ...(scope.tenantNamespaces ? {} : { brokerConfigs: slim(makeInformer(kc, '/api/v1/secrets', () => core.listSecretForAllNamespaces({ labelSelector: configs }), configs), ['data', 'stringData']) }),
  };
}

const stopped = new WeakSet<Informers>();

/** Starts every informer and resolves once each has listed (caches are warm). */
export async function startInformers(informers: Informers, onError: (what: string, err: unknown) => void): Promise<void> {
  await Promise.all(partsOf(informers).map(async ([name, informer]) => {
    // A watch that drops is restarted with a relist; an error must not end the informer for good.
    // Not after stopInformers(): stopping aborts the watches, which reports as an error too.
    informer.on('error', (err: unknown) => {
      if (stopped.has(informers)) return;
      onError(name, err);
      setTimeout(() => {
        if (!stopped.has(informers)) void informer.start().catch((e: unknown) => onError(name, e));
      }, 2000).unref();
    });
    await informer.start();
  }));
}

export async function stopInformers(informers: Informers): Promise<void> {
  stopped.add(informers);
  await Promise.all(partsOf(informers).map(([, i]) => i.stop()));
}
