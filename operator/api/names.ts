// Names and labels of everything the operator creates (pure). The runtime namespace name is
// deterministic so a human can find it, and the owner-UID label is the link back to the CR:
// cross-namespace ownerReferences are impossible, so this label decides what the operator may touch.
import { createHash } from 'node:crypto';

export const FIELD_MANAGER = 'enclave-operator';
export const FINALIZER = 'mqtt.enclave.dev/purge';
export const MANAGED_BY = 'enclave-operator';

export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_OWNER_UID = 'mqtt.enclave.dev/owner-uid';
export const LABEL_OWNER_NAME = 'mqtt.enclave.dev/owner-name';
export const LABEL_OWNER_NAMESPACE = 'mqtt.enclave.dev/owner-namespace';
export const LABEL_TENANT = 'mqtt.enclave.dev/tenant';
export const ANNOTATION_CONFIG_HASH = 'mqtt.enclave.dev/config-hash';

/** Fixed names of the objects inside a runtime namespace. */
export const BROKER_NAME = 'broker';
export const BROKER_SECRET = 'broker-config';
export const BROKER_SERVICE_ACCOUNT = 'broker';
export const CONFIG_MOUNT_PATH = '/etc/enclave/config';
export const ADMIN_PORT = 9090;

const MAX_NAME = 63;

function shortHash(s: string, len = 8): string {
  return createHash('sha256').update(s).digest('hex').slice(0, len);
}

/**
 * `enclave-<ns>-<name>`, a valid DNS label (≤ 63 chars). Too-long names are cut and get a hash of the
 * full pair so two long names sharing a prefix still get different namespaces.
 */
export function runtimeNamespaceName(namespace: string, name: string): string {
  const full = `enclave-${namespace}-${name}`;
  if (full.length <= MAX_NAME) return full;
  const suffix = `-${shortHash(`${namespace}/${name}`)}`;
  return full.slice(0, MAX_NAME - suffix.length).replace(/-+$/, '') + suffix;
}

/** A label value: ≤ 63 chars, alphanumeric at both ends; long values are cut and hashed. */
export function labelValue(v: string): string {
  if (v.length <= MAX_NAME) return v;
  const suffix = `-${shortHash(v)}`;
  return v.slice(0, MAX_NAME - suffix.length).replace(/[^A-Za-z0-9]+$/, '') + suffix;
}

export interface Owner {
  namespace: string;
  name: string;
  uid: string;
}

/** Labels on every object the operator owns for one MqttDeployment. */
export function ownerLabels(owner: Owner): Record<string, string> {
  return {
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_OWNER_UID]: owner.uid,
    [LABEL_OWNER_NAME]: labelValue(owner.name),
    [LABEL_OWNER_NAMESPACE]: owner.namespace,
    [LABEL_TENANT]: owner.namespace,
  };
}

/** Labels that select the broker pods of one deployment (stable: a Deployment selector is immutable). */
export function brokerSelector(owner: Owner): Record<string, string> {
  return { 'app.kubernetes.io/name': 'enclave-broker', 'app.kubernetes.io/instance': labelValue(owner.name) };
}

/** Label selector string matching everything the operator manages. */
export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;

/** Name of the tenant CA Secret kept in the operator namespace (one CA per tenant namespace). */
export function tenantCaSecretName(tenantNamespace: string): string {
  return labelValue(`enclave-ca-${tenantNamespace}`);
}

/** Secret written in the tenant namespace for an issued TlsCertificate (cert-manager style). */
export function issuedCertSecretName(certName: string): string {
  return labelValue(`${certName}-tls`);
}

export function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}
