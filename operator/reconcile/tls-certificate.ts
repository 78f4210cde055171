// Reconcile of one TlsCertificate. secretRef mode: report the referenced kubernetes.io/tls Secret's
// certificate (it is watched, so a cert-manager rotation re-renders every broker using it).
// issue mode: keep a per-tenant CA in the operator's namespace (enclave-ca-<tenant namespace>),
// issue the leaf into `<name>-tls` in the tenant namespace, re-issue at notAfter − renewBefore or
// when the issue spec changes, and come back at the renewal time.
import { createHash } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { LABEL_MANAGED_BY, MANAGED_BY, ownerLabels, ownedBy } from '../api/names.ts';
import { GROUP, VERSION } from '../api/types.ts';
import { managesNamespace, notManagedMessage } from '../config.ts';
import { createCa, describeCertificate, issueLeaf, issuedBy, needsRenewal, parseDuration, DEFAULT_RENEW_BEFORE, type CertificateFacts, type KeyPairPem } from '../pki.ts';
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
    metadata: { name, namespace: deps.config.operatorNamespace, labels: { [LABEL_MANAGED_BY]: MANAGED_BY, 'mqtt.enclave.dev/tenant-namespace': tenantNamespace } },
    data: { 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem) },
  });
  return ca;
}

export async function reconcileTlsCertificate(deps: ControllerDeps, namespace: string, name: string): Promise<Result> {
  const cert = deps.informers.tlsCertificates.get(name, namespace);
  if (!cert) return;
  const now = deps.now();
  let facts: CertificateFacts | undefined;
  let problem: { reason: string; message: string } | undefined;
  let requeueAfterMs: number | undefined;
  const secretName = tlsSecretName(cert);
  let secret = deps.informers.secrets.get(secretName, namespace);
  if (!managesNamespace(deps.config, namespace)) {
    problem = { reason: 'NamespaceNotManaged', message: notManagedMessage(namespace) };
  } else if (cert.spec.secretRef) {
    const crt = referenceable(secret) ? unb64(secret?.data?.['tls.crt']) : undefined;
    if (!referenceable(secret)) problem = { reason: 'SecretNotFound', message: `Not usable: ${unusableSecret(secretName)}. Create it in namespace ${namespace} with tls.crt and tls.key, labelled so.` };
    else if (!crt || !secret?.data?.['tls.key']) problem = { reason: 'SecretNotFound', message: `Secret ${secretName} has no tls.crt and tls.key.` };
    else {
      try {
        facts = describeCertificate(crt);
      } catch (err) {
        problem = { reason: 'InvalidCertificate', message: `Secret ${secretName} tls.crt is not a PEM certificate: ${(err as Error).message}` };
      }
    }
  } else if (cert.spec.issue) {
    const issue = cert.spec.issue;
    const renewBeforeMs = parseDuration(issue.renewBefore ?? DEFAULT_RENEW_BEFORE);
    const specHash = createHash('sha256').update(JSON.stringify(issue)).digest('hex').slice(0, 16);
    // The cache holds only opted-in and operator-made Secrets: one of the tenant's own under this
    // name is found by a read, so it is never overwritten (server-side apply with force would).
    secret ??= (await deps.client.get<V1Secret>({ apiVersion: 'v1', kind: 'Secret', namespace, name: secretName })) ?? undefined;
    if (secret && !ownedBy(secret.metadata?.labels, { namespace, name, uid: cert.metadata.uid ?? '' })) {
      problem = { reason: 'OwnershipConflict', message: `Secret ${secretName} exists and was not issued for this TlsCertificate; it was left untouched. Delete it or rename the TlsCertificate.` };
    } else {
      const ca = await tenantCa(deps, namespace);
      const crt = unb64(secret?.data?.['tls.crt']);
      const fresh = crt !== undefined && secret?.metadata?.annotations?.[ANNOTATION_ISSUE_HASH] === specHash
        && issuedBy(crt, ca.certPem) && !needsRenewal(crt, renewBeforeMs, now);
      let leafPem = crt;
      let leaf: Awaited<ReturnType<typeof issueLeaf>> | undefined;
      if (!fresh) {
        try {
          leaf = await issueLeaf({ ca, spec: issue, now });
        } catch (err) {
          // A spec the CRD rules let through but the issuer refuses: say so, do not retry hot.
          problem = { reason: 'InvalidSpec', message: `Cannot issue: ${(err as Error).message}` };
        }
      }
      if (leaf) {
        await deps.client.apply<V1Secret>({
          apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls',
          metadata: {
            name: secretName, namespace,
            labels: { ...ownerLabels({ namespace, name, uid: cert.metadata.uid ?? '' }) },
            annotations: { [ANNOTATION_ISSUE_HASH]: specHash },
            // Same namespace, so a real ownerReference: deleting the TlsCertificate garbage-collects
            // its private key. blockOwnerDeletion stays off (it would need finalizer rights on the CR).
            ownerReferences: [{ apiVersion: `${GROUP}/${VERSION}`, kind: 'TlsCertificate', name, uid: cert.metadata.uid ?? '', controller: true, blockOwnerDeletion: false }],
          },
          data: { 'tls.crt': b64(leaf.certPem), 'tls.key': b64(leaf.keyPem), 'ca.crt': b64(leaf.caPem) },
        });
        deps.log.info({ kind: 'TlsCertificate', namespace, name, notAfter: leaf.notAfter }, 'Issued certificate');
        leafPem = leaf.certPem;
      }
      if (leafPem !== undefined && !problem) facts = describeCertificate(leafPem, renewBeforeMs);
      if (facts?.renewalTime) requeueAfterMs = Math.max(1000, Math.min(MAX_WAIT_MS, Date.parse(facts.renewalTime) - now.getTime()));
    }
  }
  const status = tlsCertificateStatus(cert, facts, problem, now.toISOString());
  if (!sameStatus(status, cert.status)) {
    await deps.client.applyStatus(GROUP, VERSION, 'tlscertificates', 'TlsCertificate', namespace, name, status);
  }
  return requeueAfterMs !== undefined ? { requeueAfterMs } : undefined;
}

