// operator/pki.ts: tenant CA and leaf issuance, checked with node:crypto's X509 parser and openssl.
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCa, describeCertificate, issueLeaf, issuedBy, needsRenewal } from '../../../operator/pki.ts';

const now = new Date('2030-01-01T00:00:00Z');
const dir = mkdtempSync(join(tmpdir(), 'enclave-pki-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('createCa + issueLeaf', () => {
  it('issues an ECDSA P-256 leaf with SANs that openssl verifies against the tenant CA', async () => {
    const ca = await createCa({ commonName: 'enclave team-a', now });
    const leaf = await issueLeaf({ ca, now, spec: { commonName: 'broker', dnsNames: ['broker.enclave-team-a-prod.svc', 'localhost'], ipAddresses: ['127.0.0.1'] } });

    const caCert = new X509Certificate(ca.certPem);
    expect(caCert.ca).toBe(true);
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.ca).toBe(false);
    expect(cert.subject).toBe('CN=broker');
    expect(cert.subjectAltName).toBe('DNS:broker.enclave-team-a-prod.svc, DNS:localhost, IP Address:127.0.0.1');
    expect(cert.publicKey.asymmetricKeyDetails).toMatchObject({ namedCurve: 'prime256v1' });
    expect(createPrivateKey(leaf.keyPem).asymmetricKeyType).toBe('ec');
    // The private key belongs to the certificate.
    expect(createPublicKey(createPrivateKey(leaf.keyPem)).export({ format: 'der', type: 'spki' }).equals(cert.publicKey.export({ format: 'der', type: 'spki' }))).toBe(true);
    expect(issuedBy(leaf.certPem, ca.certPem)).toBe(true);
    expect(leaf.caPem).toBe(ca.certPem);

    writeFileSync(join(dir, 'ca.pem'), ca.certPem);
    writeFileSync(join(dir, 'leaf.pem'), leaf.certPem);
    // openssl checks validity against the real clock; attime pins it to our `now`.
    const out = execFileSync('openssl', ['verify', '-attime', String(now.getTime() / 1000 + 60), '-purpose', 'sslserver', '-CAfile', join(dir, 'ca.pem'), join(dir, 'leaf.pem')]).toString();
    expect(out).toContain('leaf.pem: OK');
  });

  it.each([
    [{}, 90 * 24, 60 * 24],
    [{ duration: '48h', renewBefore: '12h' }, 48, 36],
  ])('validity and renewal time for %j', async (over, hours, renewAfterHours) => {
    const ca = await createCa({ commonName: 'ca', now });
    const leaf = await issueLeaf({ ca, now, spec: { commonName: 'x', ...over } });
    expect(leaf.notAfter).toBe(new Date(now.getTime() + hours * 3_600_000).toISOString());
    expect(leaf.renewalTime).toBe(new Date(now.getTime() + renewAfterHours * 3_600_000).toISOString());
    expect(Date.parse(leaf.notBefore)).toBeLessThan(now.getTime());
    expect(leaf.serialNumber).toMatch(/^[0-9A-F]+$/);
    expect(leaf.sha256Fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('RSA-2048 on request', async () => {
    const ca = await createCa({ commonName: 'ca', now });
    const leaf = await issueLeaf({ ca, now, spec: { commonName: 'x', keyAlgorithm: 'RSA-2048' } });
    expect(new X509Certificate(leaf.certPem).publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(issuedBy(leaf.certPem, ca.certPem)).toBe(true);
  });

  it('refuses renewBefore ≥ duration with both values in the message', async () => {
    const ca = await createCa({ commonName: 'ca', now });
    await expect(issueLeaf({ ca, now, spec: { commonName: 'x', duration: '1h', renewBefore: '2h' } })).rejects.toThrow('renewBefore (2h) must be shorter than duration (1h)');
  });

  it('a leaf from another CA is not issuedBy this one', async () => {
    const a = await createCa({ commonName: 'a', now });
    const b = await createCa({ commonName: 'b', now });
    const leaf = await issueLeaf({ ca: a, now, spec: { commonName: 'x' } });
    expect(issuedBy(leaf.certPem, b.certPem)).toBe(false);
  });
});

describe('needsRenewal / describeCertificate', () => {
  it('renews exactly from notAfter − renewBefore on, and for unreadable PEM', async () => {
    const ca = await createCa({ commonName: 'ca', now });
    const leaf = await issueLeaf({ ca, now, spec: { commonName: 'x', duration: '10h', renewBefore: '2h' } });
    const renewBefore = 2 * 3_600_000;
    const at = (h: number): Date => new Date(now.getTime() + h * 3_600_000);
    expect(needsRenewal(leaf.certPem, renewBefore, at(7.99))).toBe(false);
    expect(needsRenewal(leaf.certPem, renewBefore, at(8))).toBe(true);
    expect(needsRenewal('not a cert', renewBefore, now)).toBe(true);
  });

  it('matches what openssl reports for serial and fingerprint', async () => {
    const ca = await createCa({ commonName: 'ca', now });
    const leaf = await issueLeaf({ ca, now, spec: { commonName: 'x' } });
    writeFileSync(join(dir, 'f.pem'), leaf.certPem);
    const out = execFileSync('openssl', ['x509', '-in', join(dir, 'f.pem'), '-noout', '-serial', '-fingerprint', '-sha256']).toString();
    const facts = describeCertificate(leaf.certPem);
    expect(out).toContain(`serial=${facts.serialNumber}`);
    expect(out.toUpperCase()).toContain(facts.sha256Fingerprint);
    expect(facts.renewalTime).toBeUndefined();
  });
});
