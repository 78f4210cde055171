// Names and labels of everything the operator creates, derived from the owning CR only (pure).
// Cross-namespace ownerReferences are impossible, so the link from a runtime object back to its
// MqttDeployment is these labels; the owner-UID label is what decides "ours" vs "someone else's".
import { createHash } from 'node:crypto';

export const FIELD_MANAGER = 'enclave-operator';
export const FINALIZER = 'mqtt.enclave.dev/purge';

export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'enclave-operator';
export const LABEL_OWNER_NAMESPACE = 'mqtt.enclave.dev/owner-namespace';
export const LABEL_OWNER_NAME = 'mqtt.enclave.dev/owner-name';
export const LABEL_OWNER_UID = 'mqtt.enclave.dev/owner-uid';
/** What an operator-made object is for; lets the tenant-Secret informer leave the broker-config copies out. */
export const LABEL_ROLE = 'mqtt.enclave.dev/role';
export const ROLE_BROKER_CONFIG = 'broker-config';
export const ANNOTATION_CONFIG_HASH = 'mqtt.enclave.dev/config-hash';

/** Names of objects inside a runtime namespace: fixed, since the namespace itself is per-deployment. */
export const BROKER_NAME = 'broker';
export const BROKER_CONFIG_SECRET = 'broker-config';
export const BROKER_TLS_SECRET = 'broker-tls';
export const ADMIN_PORT = 9090;

/** Secret in the tenant's namespace holding the per-deployment CA; named with the UID so a re-created deployment gets a fresh CA. */
export function tenantCaSecretName(ownerName: string, ownerUid: string): string {
  return boundedName(`enclave-ca-${ownerName}`, ownerUid.slice(0, 8));
}

function shortHash(input: string): string {
  return createHash('sha256').update(input).digest('hex').slice(0, 8);
}

/** `prefix-suffix`, cutting prefix so the whole fits a DNS label (63 chars) and does not end in '-'. */
function boundedName(prefix: string, suffix: string): string {
  const room = 63 - suffix.length - 1;
  return `${prefix.slice(0, room).replace(/-+$/, '')}-${suffix}`;
}

/**
 * The runtime namespace of MqttDeployment `namespace/name`: `enclave-<ns>-<name>`, deterministic so
 * a restarted operator finds it again; when longer than 63 chars it is cut and suffixed with a hash
 * of the exact pair. A rare collision (`a-b`/`c` vs `a`/`b-c`) is caught by the owner-UID label and
 * reported as a conflict, never adopted.
 */
export function runtimeNamespaceName(namespace: string, name: string): string {
  const plain = `enclave-${namespace}-${name}`;
  if (plain.length <= 63) return plain;
  return boundedName(plain, shortHash(`${namespace}/${name}`));
}

export interface Owner {
  namespace: string;
  name: string;
  uid: string;
}

export function ownerLabels(owner: Owner): Record<string, string> {
  return {
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_OWNER_NAMESPACE]: owner.namespace,
    [LABEL_OWNER_NAME]: owner.name.slice(0, 63),
    [LABEL_OWNER_UID]: owner.uid,
  };
}

export function brokerSelector(): Record<string, string> {
  return { 'app.kubernetes.io/name': 'enclave-broker', 'app.kubernetes.io/instance': BROKER_NAME };
}

/** Whether an existing object may be changed or deleted by the reconcile of `owner`. */
export function ownedBy(labels: Record<string, string> | undefined, owner: Owner): boolean {
  return labels?.[LABEL_OWNER_UID] === owner.uid;
}
