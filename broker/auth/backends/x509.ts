// Owns the `x509` source: the identity is a field of the client certificate the TLS listener
// already verified (CN, a DNS/email/URI SAN, or the subject). No certificate → ignore. A client
// that also sends a username must send exactly that identity (a certificate for `dev-1` cannot
// log in as `admin`). Authenticates without a password; superusers are listed by identity.
import type { X509SourceConfig } from '../config.ts';
import type { VerifiedCertificate } from '../hook.ts';
import type { AuthSource, SourceContext } from '../source.ts';

export function certificateIdentities(cert: VerifiedCertificate, from: X509SourceConfig['identityFrom']): string[] {
  switch (from) {
    case 'cn':
      return cert.commonName ? [cert.commonName] : [];
    case 'dns':
      return cert.dnsNames;
    case 'email':
      return cert.emails;
    case 'uri':
      return cert.uris;
    case 'subject':
      return [cert.subject];
  }
}

export function createX509Source(c: X509SourceConfig, ctx: SourceContext): AuthSource {
  const superusers = new Set(c.superusers ?? []);
  return {
    name: ctx.name,
    type: 'x509',
    async authenticate(attempt) {
      if (!attempt.certificate) return { decision: 'ignore' };
      const ids = certificateIdentities(attempt.certificate, c.identityFrom);
      if (ids.length === 0) return { decision: 'deny', reason: 'not-authorized' };
      // With several SANs the client picks one as its username; without a username the first is used.
      const identity = attempt.username === undefined || attempt.username === '' ? ids[0]! : ids.find((id) => id === attempt.username);
      if (identity === undefined) return { decision: 'deny', reason: 'not-authorized' };
      // The certificate's identity is who this client is from now on (ACLs, ${username}).
      return { decision: 'allow', superuser: superusers.has(identity), identity };
    },
    async close() {},
  };
}
