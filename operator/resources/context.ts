// What every builder is given: the MqttDeployment and everything it references, already read.
// Builders are pure: anything that varies (referenced Secrets' bytes, certificates) is in here.
import type { OperatorConfig } from '../config.ts';
import type { PlatformPolicy } from '../policy/platform.ts';
import type { AuthSource, MqttDeployment } from '../api/types.ts';
import { type Owner, runtimeNamespaceName } from '../api/names.ts';

/** Base64 data of a Secret, as the API returns it. */
export type SecretData = Record<string, string>;

export interface TlsMaterial {
  /** Base64 PEM, as in a kubernetes.io/tls Secret. */
  crt: string;
  key: string;
  /** CA bundle used to verify client certificates (base64 PEM). */
  ca?: string;
}

export interface BuildContext {
  md: MqttDeployment;
  /** `policy` absent: the chart's defaults (DEFAULT_POLICY). */
  config: Pick<OperatorConfig, 'defaultImage' | 'operatorNamespace' | 'clusterDomain'> & { policy?: PlatformPolicy };
  /** Referenced AuthSources by name (same namespace as md); missing ones are absent. */
  sources: ReadonlyMap<string, AuthSource>;
  /** Tenant-namespace Secrets by name that their owner opted in (policy SecretReferenceOptIn); no other may be used. */
  secrets: ReadonlyMap<string, SecretData>;
  /** TlsCertificates' material by TlsCertificate name. */
  tls: ReadonlyMap<string, TlsMaterial>;
  /**
   * Referenced TlsCertificates that do not exist (never created, or deleted). A listener that needs
   * one is not served: keeping a deleted certificate (or trusting a deleted client CA) would leave the
   * broker out of step with what the tenant declared. A certificate that exists but is not issued yet
   * is not in here; it is a missing reference (wait, change nothing).
   */
  absentCertificates?: ReadonlySet<string>;
  /**
   * The managed Redis' password (spec.state.redis.managed): generated once by reconcile and read back
   * from the runtime namespace's `redis` Secret ever after, so it never changes under running pods.
   */
  redisPassword?: string;
}

export function ownerOf(md: MqttDeployment): Owner {
  return { namespace: md.metadata.namespace, name: md.metadata.name, uid: md.metadata.uid ?? '' };
}

/**
 * The runtime namespace every builder writes into: the one reconcile resolved and put into
 * `status.namespace` of the copy it builds from (withRuntimeNamespace), else the hashed name of the
 * exact namespace/name pair. Reconcile never calls this on a CR as read: its status may name an
 * old namespace that is not ours.
 */
export function targetNamespace(md: MqttDeployment): string {
  return md.status?.namespace ?? runtimeNamespaceName(md.metadata.namespace, md.metadata.name);
}

/** `md` with its runtime namespace decided (see targetNamespace); the CR itself is not changed. */
export function withRuntimeNamespace(md: MqttDeployment, runtimeNamespace: string): MqttDeployment {
  return { ...md, status: { ...md.status, namespace: runtimeNamespace } };
}
