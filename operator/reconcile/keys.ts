// Reconcile keys (`Kind/namespace/name`) and which of them an informer event concerns. Events only
// choose WHICH keys to reconcile; reconcile itself is level-triggered. The mapping follows the role
// each watch has in the table of kinds (api/owned-kinds.ts): a custom resource wakes itself and, when
// its spec changed, the resources that depend on it; a tenant Secret wakes whatever may use it; an
// owned object wakes its owner, which re-checks for drift.
import type { KubernetesObject } from '@kubernetes/client-node';
import { LABEL_OWNER_NAME, LABEL_OWNER_NAMESPACE, LABEL_TENANT_NAMESPACE } from '../api/names.ts';
import type { Watch } from '../api/owned-kinds.ts';
import type { AuthSource, MqttDeployment, TlsCertificate } from '../api/types.ts';
import { referencedCertificates, referencedSources } from '../resources/listeners.ts';

/** The kinds with a controller. */
export type Kind = 'MqttDeployment' | 'AuthSource' | 'TlsCertificate';
export type Verb = 'add' | 'update' | 'delete';

export function reconcileKey(kind: Kind, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

export function parseKey(key: string): { kind: Kind; namespace: string; name: string } {
  const [kind, namespace, name] = key.split('/') as [Kind, string, string];
  return { kind, namespace, name };
}

const keyOf = (kind: Kind, o: { metadata?: { namespace?: string; name?: string } }): string => reconcileKey(kind, o.metadata?.namespace ?? '', o.metadata?.name ?? '');

/** What the mapping reads: the controllers' caches, listed by namespace. */
export interface KeyCaches {
  mqttDeployments: { list(namespace?: string): readonly MqttDeployment[] };
  authSources: { list(namespace?: string): readonly AuthSource[] };
  tlsCertificates: { list(namespace?: string): readonly TlsCertificate[] };
}

/**
 * The last generation seen per UID. Dependents are woken only when what they depend on changed: a
 * spec change (generation), an add or a delete — never a status write. Without that gate, N
 * deployments sharing one AuthSource would wake each other N² times (every deployment's status
 * write → the source's usedBy write → every deployment).
 */
export class SpecGenerations {
  private readonly seen = new Map<string, number>();

  /** Whether this event changes the spec; remembers the generation it saw. */
  changed(verb: Verb, obj: KubernetesObject): boolean {
    const uid = obj.metadata?.uid ?? `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
    if (verb === 'delete') {
      this.seen.delete(uid);
      return true;
    }
    const generation = obj.metadata?.generation ?? 0;
    const changed = this.seen.get(uid) !== generation;
    this.seen.set(uid, generation);
    return changed || verb === 'add';
  }
}

/** One informer event: what happened, to which object, seen by which watch of the table. */
export interface WatchEvent {
  verb: Verb;
  /** The watched kind (the table's `kind`). */
  kind: string;
  role: Watch['role'];
  obj: KubernetesObject;
}

/** Which resources depend on `obj`, by its kind. */
const dependents: Record<Kind, (caches: KeyCaches, obj: KubernetesObject) => string[]> = {
  // The sources it names now, and those whose usedBy still lists it (a removed reference).
  MqttDeployment: (caches, obj) => {
    const refs = new Set(referencedSources(obj as MqttDeployment));
    const name = obj.metadata?.name ?? '';
    return caches.authSources.list(obj.metadata?.namespace).filter((a) => refs.has(a.metadata.name) || a.status?.usedBy?.includes(name)).map((a) => keyOf('AuthSource', a));
  },
  AuthSource: (caches, obj) =>
    caches.mqttDeployments.list(obj.metadata?.namespace).filter((md) => referencedSources(md).includes(obj.metadata?.name ?? '')).map((md) => keyOf('MqttDeployment', md)),
  TlsCertificate: (caches, obj) =>
    caches.mqttDeployments.list(obj.metadata?.namespace).filter((md) => referencedCertificates(md).includes(obj.metadata?.name ?? '')).map((md) => keyOf('MqttDeployment', md)),
};

function resourceKeys(caches: KeyCaches, generations: SpecGenerations, event: WatchEvent): string[] {
  const kind = event.kind as Kind;
  const own = keyOf(kind, event.obj);
  // A deployment being deleted leaves the usedBy of its sources, though its spec did not change.
  const wake = generations.changed(event.verb, event.obj) || (kind === 'MqttDeployment' && Boolean(event.obj.metadata?.deletionTimestamp));
  return wake ? [own, ...dependents[kind](caches, event.obj)] : [own];
}

function secretKeys(caches: KeyCaches, obj: KubernetesObject): string[] {
  // A tenant CA (operator namespace) changed or went away: that tenant's certificates re-check their issuer.
  const tenant = obj.metadata?.labels?.[LABEL_TENANT_NAMESPACE];
  if (tenant) return caches.tlsCertificates.list(tenant).map((c) => keyOf('TlsCertificate', c));
  // Secrets carry no generation; any change of one in a tenant namespace may be a rotation.
  const ns = obj.metadata?.namespace ?? '';
  return [
    ...caches.authSources.list(ns).map((a) => keyOf('AuthSource', a)),
    ...caches.tlsCertificates.list(ns).map((c) => keyOf('TlsCertificate', c)),
    ...caches.mqttDeployments.list(ns).map((md) => keyOf('MqttDeployment', md)),
  ];
}

/** An owned object changed (by us, by a controller, or by hand): its owner re-checks for drift. */
function ownerKeys(obj: KubernetesObject): string[] {
  const labels = obj.metadata?.labels ?? {};
  const ownerNs = labels[LABEL_OWNER_NAMESPACE];
  const ownerName = labels[LABEL_OWNER_NAME];
  return ownerNs && ownerName ? [reconcileKey('MqttDeployment', ownerNs, ownerName)] : [];
}

/** The reconcile keys an event concerns: the object's own key always (for a resource); dependents per its role. */
export function keysFor(caches: KeyCaches, generations: SpecGenerations, event: WatchEvent): string[] {
  switch (event.role) {
    case 'resource': return resourceKeys(caches, generations, event);
    case 'referenced': return secretKeys(caches, event.obj);
    case 'owned': return ownerKeys(event.obj);
  }
}
