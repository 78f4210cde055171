// Reconcile of one TlsCertificate. secretRef mode: report the referenced kubernetes.io/tls Secret's
// certificate (it is watched, so a cert-manager rotation re-renders every broker using it).
// issue mode: keep a per-tenant CA in the operator's namespace (enclave-ca-<tenant namespace>),
// issue the leaf into `<name>-tls` in the tenant namespace, re-issue at notAfter − renewBefore or
// when the issue spec changes, and come back at the renewal time.
import { createHash } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { LABEL_MANAGED_BY, LABEL_TENANT_NAMESPACE, MANAGED_BY, ownerLabels, ownedBy } from '../api/names.ts';
import { GROUP, VERSION, type IssueSpec, type TlsCertificate } from '../api/types.ts';
import { KINDS } from '../api/owned-kinds.ts';
import { parseDuration } from '../api/duration.ts';
import { managesNamespace, notManagedMessage } from '../config.ts';
import { createCa, describeCertificate, issueLeaf, issuedBy, needsRenewal, DEFAULT_RENEW_BEFORE, type CertificateFacts, type IssuedCertificate, type KeyPairPem } from '../pki.ts';
import { sameStatus } from '../status/mqtt-deployment.ts';
import { tlsCertificateStatus } from '../status/simple.ts';
import { referenceable, unusableSecret } from '../policy/secret-references.ts';
import { caSecretName } from './ca.ts';
import { tlsSecretName, type ControllerDeps, type Result } from './mqtt-deployment.ts';

const ANNOTATION_ISSUE_HASH = 'mqtt.enclave.dev/issue-hash';
const MAX_WAIT_MS = 3_600_000;

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

async function tenantCa(deps: ControllerDeps, tenantNamespace: string): Promise<KeyPairPem> {
  const name = caSecretName(tenantNamespace);
  const existing = deps.informers.secrets.get(name, deps.config.operatorNamespace)
    ?? (await deps.client.get<V1Secret>({ apiVersion: 'v1', kind: 'Secret', namespace: deps.config.operatorNamespace, name }));
  const certPem = unb64(existing?.data?.['ca.crt']);
  const keyPem = unb64(existing?.data?.['ca.key']);
  if (certPem && keyPem) return { certPem, keyPem };
  const ca = await createCa({ commonName: `Enclave CA ${tenantNamespace}`, now: deps.now() });
  await deps.client.apply<V1Secret>({
    apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
    metadata: { name, namespace: deps.config.operatorNamespace, labels: { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_TENANT_NAMESPACE]: tenantNamespace } },
    data: { 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem) },
  });
  return ca;
}

/** What reconcile found: the certificate's facts, or why it is not Ready; and when to look again. */
interface Outcome {
  facts?: CertificateFacts;
  problem?: { reason: string; message: string };
  requeueAfterMs?: number;
}

export async function reconcileTlsCertificate(deps: ControllerDeps, namespace: string, name: string): Promise<Result> {
  const cert = deps.informers.tlsCertificates.get(name, namespace);
  if (!cert) return;
  const now = deps.now();
  const outcome: Outcome = !managesNamespace(deps.config, namespace) ? { problem: { reason: 'NamespaceNotManaged', message: notManagedMessage(namespace) } }
    : cert.spec.secretRef ? referencedCertificate(deps, cert)
    : cert.spec.issue ? await issuedCertificate(deps, cert, cert.spec.issue, now)
    : {};
  const status = tlsCertificateStatus(cert, outcome.facts, outcome.problem, now.toISOString());
  if (!sameStatus(status, cert.status)) {
    await deps.client.applyStatus({ type: KINDS.tlsCertificates, namespace, name }, status);
  }
  return outcome.requeueAfterMs !== undefined ? { requeueAfterMs: outcome.requeueAfterMs } : undefined;
}

/** secretRef mode: the referenced Secret must be opted in and hold a readable tls.crt and a tls.key. */
function referencedCertificate(deps: ControllerDeps, cert: TlsCertificate): Outcome {
  const namespace = cert.metadata.namespace;
  const secretName = tlsSecretName(cert);
  const secret = deps.informers.secrets.get(secretName, namespace);
  if (!referenceable(secret)) return { problem: { reason: 'SecretNotFound', message: `Not usable: ${unusableSecret(secretName)}. Create it in namespace ${namespace} with tls.crt and tls.key, labelled so.` } };
  const crt = unb64(secret?.data?.['tls.crt']);
  if (!crt || !secret?.data?.['tls.key']) return { problem: { reason: 'SecretNotFound', message: `Secret ${secretName} has no tls.crt and tls.key.` } };
  try {
    return { facts: describeCertificate(crt) };
  } catch (err) {
    return { problem: { reason: 'InvalidCertificate', message: `Secret ${secretName} tls.crt is not a PEM certificate: ${(err as Error).message}` } };
  }
}

/** A spec the CRD rules let through but the issuer refuses: said in status, not retried hot. */
const invalidSpec = (err: unknown): Outcome => ({ problem: { reason: 'InvalidSpec', message: `Cannot issue: ${(err as Error).message}` } });

/** issue mode: keep the issued Secret current (issued for this spec, by the current CA, not due for renewal) and come back at the renewal time. */
async function issuedCertificate(deps: ControllerDeps, cert: TlsCertificate, issue: IssueSpec, now: Date): Promise<Outcome> {
  const { namespace, name } = cert.metadata;
  let renewBeforeMs: number;
  try {
    renewBeforeMs = parseDuration(issue.renewBefore ?? DEFAULT_RENEW_BEFORE, 'spec.issue.renewBefore');
  } catch (err) {
    return invalidSpec(err);
  }
  const secretName = tlsSecretName(cert);
  // The cache holds only opted-in and operator-made Secrets: one of the tenant's own under this
  // name is found by a read, so it is never overwritten (server-side apply with force would).
  const secret = deps.informers.secrets.get(secretName, namespace)
    ?? (await deps.client.get<V1Secret>({ apiVersion: 'v1', kind: 'Secret', namespace, name: secretName })) ?? undefined;
  if (secret && !ownedBy(secret.metadata?.labels, { namespace, name, uid: cert.metadata.uid ?? '' })) {
    return { problem: { reason: 'OwnershipConflict', message: `Secret ${secretName} exists and was not issued for this TlsCertificate; it was left untouched. Delete it or rename the TlsCertificate.` } };
  }
  const ca = await tenantCa(deps, namespace);
  const specHash = createHash('sha256').update(JSON.stringify(issue)).digest('hex').slice(0, 16);
  const crt = unb64(secret?.data?.['tls.crt']);
  let leafPem = crt;
  if (!isFresh(secret, { crt, specHash, caPem: ca.certPem, renewBeforeMs, now })) {
    let leaf: IssuedCertificate;
    try {
      leaf = await issueLeaf({ ca, spec: issue, now });
    } catch (err) {
      return invalidSpec(err);
    }
    await writeLeaf(deps, cert, { leaf, specHash });
    leafPem = leaf.certPem;
  }
  if (leafPem === undefined) return {};
  const facts = describeCertificate(leafPem, renewBeforeMs);
  return { facts, ...(facts.renewalTime ? { requeueAfterMs: Math.max(1000, Math.min(MAX_WAIT_MS, Date.parse(facts.renewalTime) - now.getTime())) } : {}) };
}

/** The issued Secret is for this spec, signed by the current CA and not yet due for renewal. */
function isFresh(secret: V1Secret | undefined, want: { crt: string | undefined; specHash: string; caPem: string; renewBeforeMs: number; now: Date }): boolean {
  const { crt } = want;
  return crt !== undefined && secret?.metadata?.annotations?.[ANNOTATION_ISSUE_HASH] === want.specHash
    && issuedBy(crt, want.caPem) && !needsRenewal(crt, want.renewBeforeMs, want.now);
}

/** The issued leaf into `<name>-tls`, owned by the TlsCertificate. */
async function writeLeaf(deps: ControllerDeps, cert: TlsCertificate, issued: { leaf: IssuedCertificate; specHash: string }): Promise<void> {
  const { namespace, name } = cert.metadata;
  const { leaf, specHash } = issued;
  await deps.client.apply<V1Secret>({
    apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls',
    metadata: {
      name: tlsSecretName(cert), namespace,
      labels: { ...ownerLabels({ namespace, name, uid: cert.metadata.uid ?? '' }) },
      annotations: { [ANNOTATION_ISSUE_HASH]: specHash },
      // Same namespace, so a real ownerReference: deleting the TlsCertificate garbage-collects
      // its private key. blockOwnerDeletion stays off (it would need finalizer rights on the CR).
      ownerReferences: [{ apiVersion: `${GROUP}/${VERSION}`, kind: 'TlsCertificate', name, uid: cert.metadata.uid ?? '', controller: true, blockOwnerDeletion: false }],
    },
    data: { 'tls.crt': b64(leaf.certPem), 'tls.key': b64(leaf.keyPem), 'ca.crt': b64(leaf.caPem) },
  });
  deps.log.info({ kind: 'TlsCertificate', namespace, name, notAfter: leaf.notAfter }, 'Issued certificate');
}
