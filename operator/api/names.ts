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
/** The managed Redis' Secret (its generated password): watched for drift with the broker-config copies. */
export const ROLE_STATE_BACKEND = 'state-backend';
/** The pod of the Job that deletes an external Redis' keys before the runtime namespace goes. */
export const ROLE_STATE_PURGE = 'state-purge';
/** On a tenant CA Secret (operator namespace): the tenant namespace whose TlsCertificates it signs. */
export const LABEL_TENANT_NAMESPACE = 'mqtt.enclave.dev/tenant-namespace';
export const ANNOTATION_CONFIG_HASH = 'mqtt.enclave.dev/config-hash';
/**
 * The opt-in a tenant Secret needs before an AuthSource or TlsCertificate may use it. Only someone
 * who may write Secrets can set it; `enclave-edit` cannot, so a tenant with only that role cannot
 * point the operator at a Secret and make its value travel (policy SecretReferenceOptIn).
 */
export const LABEL_ALLOW_REFERENCE = 'mqtt.enclave.dev/allow-reference';

/** Names of objects inside a runtime namespace: fixed, since the namespace itself is per-deployment. */
export const BROKER_NAME = 'broker';
export const BROKER_CONFIG_SECRET = 'broker-config';
export const ADMIN_PORT = 9090;

function shortHash(input: string): string {
  return createHash('sha256').update(input).digest('hex').slice(0, 8);
}

/** `prefix-suffix`, cutting prefix so the whole fits a DNS label (63 chars) and does not end in '-'. */
function boundedName(prefix: string, suffix: string): string {
  const room = 63 - suffix.length - 1;
  return `${prefix.slice(0, room).replace(/-+$/, '')}-${suffix}`;
}

/** 64 bits of SHA-256 in base 36 (13 characters, [0-9a-z]): a DNS-label-safe hash nobody can aim at. */
function pairHash(input: string): string {
  const digest = createHash('sha256').update(input).digest();
  return digest.readBigUInt64BE(0).toString(36).padStart(13, '0');
}

/**
 * The runtime namespace of MqttDeployment `namespace/name`: `enclave-<ns>-<name>-<hash>`, the
 * readable part cut to fit 63 characters, the hash always taken over the exact pair. Without the
 * hash `team/a-broker` and `team-a/broker` both read `enclave-team-a-broker`, and whoever came first
 * squatted the other's namespace and its predictable Service address. 64 bits leave no pair to
 * find, even by brute force over the names a cut prefix hides. Deterministic, so a restarted
 * operator finds it again. Deployments created before the hash keep theirs (resolveRuntimeNamespace).
 */
export function runtimeNamespaceName(namespace: string, name: string): string {
  return boundedName(`enclave-${namespace}-${name}`, pairHash(`${namespace}/${name}`));
}

/** What runtime namespaces were called before the hash: only ever looked up, never created. */
export function legacyRuntimeNamespaceName(namespace: string, name: string): string {
  const plain = `enclave-${namespace}-${name}`;
  return plain.length <= 63 ? plain : boundedName(plain, shortHash(`${namespace}/${name}`));
}

/**
 * Where MqttDeployment `md` lives: the namespace recorded in its status or its pre-hash name when
 * that namespace carries this deployment's owner UID (an upgrade re-creates nothing), else
 * runtimeNamespaceName. `ownedByThis` answers from the namespace cache; a namespace somebody else
 * holds under the old name is never adopted, the deployment moves to the hashed one.
 */
export function resolveRuntimeNamespace(md: { metadata: { namespace: string; name: string }; status?: { namespace?: string } }, ownedByThis: (namespace: string) => boolean): string {
  const { namespace, name } = md.metadata;
  for (const candidate of [md.status?.namespace, legacyRuntimeNamespaceName(namespace, name)]) {
    if (candidate && ownedByThis(candidate)) return candidate;
  }
  return runtimeNamespaceName(namespace, name);
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
