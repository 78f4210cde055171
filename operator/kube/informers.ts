// Informers (list + watch + cache) for everything the operator reacts to, one per watch in the
// table of kinds (api/owned-kinds.ts `WATCHED`): the three kinds in every namespace; tenant Secrets
// (referenced ones are found in the cache by name); and the objects the operator owns in runtime
// namespaces, label-filtered so the cache holds only ours. The owned-kind caches let reconcile
// notice drift (an object deleted or edited by hand) without any API read.
//
// Secrets are the sensitive cache. It holds only Secrets a tenant's Secret owner opted in (label
// mqtt.enclave.dev/allow-reference=true: nothing else may be referenced anyway) and the operator's
// own (tenant CAs, issued certificates, managed Redis passwords), never the rendered broker-config copies; kube-system's
// Secrets never enter it. With `tenantNamespaces` set (Helm rbac.tenantSecretAccess=namespaced)
// Secrets are watched one namespace at a time, only in those namespaces plus the operator's own:
// the operator then needs, and has, no right to read Secrets anywhere else.
import {
  CustomObjectsApi, KubernetesObjectApi, makeInformer,
  type Informer, type KubeConfig, type KubernetesObject, type ListPromise, type ObjectCache, type V1Deployment, type V1Namespace, type V1Secret,
} from '@kubernetes/client-node';
import { GROUP, type AuthSource, type MqttDeployment, type TlsCertificate } from '../api/types.ts';
import { LABEL_ALLOW_REFERENCE, LABEL_MANAGED_BY, LABEL_ROLE, MANAGED_BY, ROLE_BROKER_CONFIG } from '../api/names.ts';
import { KINDS, WATCHED, type KindInfo, type WatchedKind } from '../api/owned-kinds.ts';

export type Cache<T> = Informer<T & KubernetesObject> & ObjectCache<T & KubernetesObject>;

/** One informer, with the table entry it was made from. */
export interface WatchedCache extends WatchedKind {
  cache: Cache<KubernetesObject>;
}

export interface Informers {
  mqttDeployments: Cache<MqttDeployment>;
  authSources: Cache<AuthSource>;
  tlsCertificates: Cache<TlsCertificate>;
  /** Tenant Secrets opted in (label allow-reference=true) and the operator's own (tenant CAs, issued certificates, managed Redis passwords); never broker-config copies. */
  secrets: Cache<V1Secret>;
  /**
   * The caches of what the operator owns in runtime namespaces, by kind (the `owned` watches). A kind
   * absent here is not watched in this scope: broker-config Secrets when Secret access is namespaced
   * (runtime namespaces are not readable then).
   */
  owned: ReadonlyMap<string, Cache<KubernetesObject>>;
  /** Every informer, for starting, stopping and mapping its events to reconcile keys. */
  watched: readonly WatchedCache[];
}

/** The runtime namespace `name` if it is in the cache (the cache holds only ours). */
export function cachedNamespace(informers: Pick<Informers, 'owned'>, name: string): V1Namespace | undefined {
  return informers.owned.get(KINDS.namespaces.kind)?.get(name);
}

/** The Deployment `name` of runtime namespace `namespace` if it is in the cache (ours only). */
export function cachedDeployment(informers: Pick<Informers, 'owned'>, name: string, namespace: string): V1Deployment | undefined {
  return informers.owned.get(KINDS.deployments.kind)?.get(name, namespace);
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
  return informers.watched.flatMap(({ watch, cache }): [string, Cache<unknown>][] =>
    cache instanceof Composite ? [...(cache.parts as Map<string, Part<KubernetesObject>>)].map(([part, p]): [string, Cache<unknown>] => [`${watch.name}/${part}`, p.cache as Cache<unknown>]) : [[watch.name, cache as Cache<unknown>]]);
}

const ours = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;

/** The API path a kind is listed and watched at (all namespaces, or one). */
function pathOf(kind: KindInfo, namespace?: string): string {
  return `${kind.group ? `/apis/${kind.group}` : '/api'}/${kind.version}${namespace ? `/namespaces/${namespace}` : ''}/${kind.plural}`;
}

interface Apis {
  kc: KubeConfig;
  objects: KubernetesObjectApi;
  custom: CustomObjectsApi;
}

/** An informer of `kind` (in `namespace`, or all), only objects matching `labelSelector`. */
function informerOf(apis: Apis, kind: KindInfo, opts: { namespace?: string; labelSelector?: string } = {}): Cache<KubernetesObject> {
  const { namespace, labelSelector } = opts;
  // The operator's own kinds come back as they are (no generated model); built-in kinds as their typed models.
  const list: ListPromise<KubernetesObject> = kind.group === GROUP
    ? async () => (await apis.custom.listClusterCustomObject({ group: kind.group, version: kind.version, plural: kind.plural, ...(labelSelector ? { labelSelector } : {}) })) as never
    : () => apis.objects.list(kind.group ? `${kind.group}/${kind.version}` : kind.version, kind.kind, namespace, undefined, undefined, undefined, undefined, labelSelector);
  return makeInformer(apis.kc, pathOf(kind, namespace), list, labelSelector);
}

/**
 * Two selectors, never "every Secret": tenant Secrets only once their owner opted them in, and the
 * operator's own (tenant CAs, issued certificates), minus the broker-config copies; one namespace at
 * a time when Secret access is namespaced.
 */
function referencedSecrets(apis: Apis, kind: KindInfo, scope: InformerScope): Cache<V1Secret> {
  const notConfig = `${LABEL_ROLE}!=${ROLE_BROKER_CONFIG}`; // also matches Secrets without the label
  const selectors = { 'opted-in': `${LABEL_ALLOW_REFERENCE}=true`, 'operator-made': `${ours},${notConfig}` };
  const namespaces: (string | undefined)[] = scope.tenantNamespaces ? [...new Set([...scope.tenantNamespaces, scope.operatorNamespace])] : [undefined];
  const parts = new Map<string, Part<V1Secret>>();
  for (const [what, labelSelector] of Object.entries(selectors)) {
    for (const namespace of namespaces) {
      const cache = informerOf(apis, kind, { ...(namespace === undefined ? {} : { namespace }), labelSelector }) as Cache<V1Secret>;
      parts.set(namespace === undefined ? what : `${what}/${namespace}`, { ...(namespace === undefined ? {} : { namespace }), cache });
    }
  }
  return new Composite(parts);
}

/** The informer for one watch of the table; undefined when this scope cannot watch it. */
function informerFor(apis: Apis, { kind, watch }: WatchedKind, scope: InformerScope): Cache<KubernetesObject> | undefined {
  switch (watch.role) {
    case 'resource': return slim(informerOf(apis, kind), []);
    case 'referenced': return slim(referencedSecrets(apis, kind, scope), []);
    case 'owned':
      if (watch.clusterSecretAccess && scope.tenantNamespaces) return undefined;
      return slim(informerOf(apis, kind, { labelSelector: watch.selector ? `${ours},${watch.selector}` : ours }), watch.drop);
  }
}

export function makeInformers(kc: KubeConfig, scope: InformerScope): Informers {
  const apis: Apis = { kc, objects: KubernetesObjectApi.makeApiClient(kc), custom: kc.makeApiClient(CustomObjectsApi) };
  const watched = WATCHED.flatMap((w): WatchedCache[] => {
    const cache = informerFor(apis, w, scope);
    return cache ? [{ ...w, cache }] : [];
  });
  const named = (name: string): Cache<never> => {
    const hit = watched.find((w) => w.watch.name === name);
    if (!hit) throw new Error(`api/owned-kinds.ts declares no watch named ${name}`);
    return hit.cache as Cache<never>;
  };
  return {
    mqttDeployments: named('mqttDeployments'),
    authSources: named('authSources'),
    tlsCertificates: named('tlsCertificates'),
    secrets: named('secrets'),
    owned: new Map(watched.filter((w) => w.watch.role === 'owned').map((w) => [w.kind.kind, w.cache])),
    watched,
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
