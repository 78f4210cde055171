// Status of AuthSource and TlsCertificate (pure): Ready with a reason and an actionable message.
import { mergeConditions } from '../api/conditions.ts';
import type { AuthSource, AuthSourceStatus, TlsCertificate, TlsCertificateStatus } from '../api/types.ts';
import type { CertificateFacts } from '../pki.ts';

export function authSourceStatus(source: AuthSource, missing: string[], usedBy: string[], now: string, problem?: { reason: string; message: string }): AuthSourceStatus {
  const generation = source.metadata.generation ?? 0;
  const ready = problem
    ? { type: 'Ready' as const, status: 'False' as const, ...problem, observedGeneration: generation }
    : missing.length === 0
    ? { type: 'Ready' as const, status: 'True' as const, reason: 'Valid', message: 'Spec valid and every referenced Secret present.', observedGeneration: generation }
    : { type: 'Ready' as const, status: 'False' as const, reason: 'InvalidReference', message: `Not found: ${missing.join(', ')}. Create them in namespace ${source.metadata.namespace}.`, observedGeneration: generation };
  return { observedGeneration: generation, conditions: mergeConditions(source.status?.conditions, [ready], now), usedBy: [...usedBy].sort() };
}

export function tlsCertificateStatus(cert: TlsCertificate, facts: CertificateFacts | undefined, problem: { reason: string; message: string } | undefined, now: string): TlsCertificateStatus {
  const generation = cert.metadata.generation ?? 0;
  const ready = problem
    ? { type: 'Ready' as const, status: 'False' as const, ...problem, observedGeneration: generation }
    : { type: 'Ready' as const, status: 'True' as const, reason: cert.spec.issue ? 'Issued' : 'SecretPresent', message: `Valid until ${facts?.notAfter ?? '?'}.`, observedGeneration: generation };
  return {
    observedGeneration: generation,
    conditions: mergeConditions(cert.status?.conditions, [ready], now),
    ...(facts ? { notBefore: facts.notBefore, notAfter: facts.notAfter, serialNumber: facts.serialNumber, sha256Fingerprint: facts.sha256Fingerprint } : {}),
    ...(facts?.renewalTime ? { renewalTime: facts.renewalTime } : {}),
  };
}
