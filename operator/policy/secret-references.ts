// Which tenant Secrets the operator may use (policy SecretReferenceOptIn). An AuthSource or a
// TlsCertificate secretRef names a Secret; `enclave-edit` grants no Secret rights, so without an
// opt-in a tenant could point the operator at any Secret of its namespace and have it sent as a
// Bearer token to a URL of its choosing. The opt-in is a label only someone with Secret write
// access can set. A Secret without it is reported exactly like a Secret that does not exist, so a
// tenant without Secret rights learns nothing about which Secrets or keys are there.
import type { V1Secret } from '@kubernetes/client-node';
import { LABEL_ALLOW_REFERENCE } from '../api/names.ts';

export const SECRET_REFERENCE_POLICY = 'SecretReferenceOptIn';

export function referenceable(secret: Pick<V1Secret, 'metadata'> | undefined): boolean {
  return secret?.metadata?.labels?.[LABEL_ALLOW_REFERENCE] === 'true';
}

/** A referenced Secret the operator may not use: the same words whether it exists or not. */
export function unusableSecret(name: string): string {
  return `Secret ${name} (absent, or without the label ${LABEL_ALLOW_REFERENCE}: "true" that policy ${SECRET_REFERENCE_POLICY} requires)`;
}

/** What a reference to key `key` of Secret `name` lacks, given the Secret as cached; undefined = usable. */
export function secretReferenceProblem(secret: Pick<V1Secret, 'metadata' | 'data'> | undefined, name: string, key: string | undefined): string | undefined {
  if (!referenceable(secret)) return unusableSecret(name);
  // The key list of an opted-in Secret is the tenant's to know: its owner handed it to Enclave.
  if (key !== undefined && secret?.data?.[key] === undefined) return `Secret ${name} key ${key}`;
  return undefined;
}
