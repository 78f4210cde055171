// The inputs every builder reads: the CR plus everything it references, already fetched by the
// reconciler. Builders are pure functions of this (no client, no clock, no randomness).
import type { AuthSourceSpec, MqttDeployment } from '../api/types.ts';
import type { Owner } from '../api/names.ts';

/** PEM material of one TlsCertificate, as found in its kubernetes.io/tls Secret. */
export interface TlsMaterial {
  certPem: string;
  keyPem: string;
  caPem?: string;
}

export interface DesiredContext {
  cr: MqttDeployment;
  owner: Owner;
  /** Runtime namespace name. */
  namespace: string;
  operatorNamespace: string;
  defaultImage: string;
  /** AuthSources referenced by the chains, by name (tenant namespace). */
  sources: ReadonlyMap<string, AuthSourceSpec>;
  /** Data (base64, as in the API) of tenant Secrets referenced by those sources, by Secret name. */
  secrets: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** TLS material by TlsCertificate name. */
  tls: ReadonlyMap<string, TlsMaterial>;
}

/** A reference that cannot be resolved: becomes Ready=False/InvalidReference, never a hot loop. */
export class InvalidReferenceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidReferenceError';
  }
}

export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
} & Record<string, unknown>;
