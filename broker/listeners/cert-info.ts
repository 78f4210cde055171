// The verified client certificate as the auth chain sees it (subject, CN, SANs, fingerprint).
import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { VerifiedCertificate } from '../auth/hook.ts';

export function certificateInfo(x509: X509Certificate): VerifiedCertificate {
  // Node prints the subject one RDN per line, most significant first.
  const rdns = x509.subject.split('\n').filter((l) => l.length > 0);
  const commonName = rdns.find((r) => r.startsWith('CN='))?.slice(3);
  const dnsNames: string[] = [];
  const emails: string[] = [];
  const uris: string[] = [];
  for (const entry of (x509.subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:')) dnsNames.push(entry.slice(4));
    else if (entry.startsWith('email:')) emails.push(entry.slice(6));
    else if (entry.startsWith('URI:')) uris.push(entry.slice(4));
  }
  return {
    subject: rdns.join(','),
    commonName,
    dnsNames,
    emails,
    uris,
    sha256Fingerprint: x509.fingerprint256.replaceAll(':', '').toLowerCase(),
  };
}

/** The peer certificate when (and only when) the handshake verified it against the CA. */
export function verifiedPeer(socket: TLSSocket): VerifiedCertificate | undefined {
  if (!socket.authorized) return undefined;
  const x509 = socket.getPeerX509Certificate();
  return x509 === undefined ? undefined : certificateInfo(x509);
}
