// Certificates for TlsCertificate `issue` mode: a per-tenant CA the operator keeps and leaf
// certificates signed by it (ECDSA P-256 by default), plus the facts the status reports
// (validity, renewal time, serial, fingerprint). No clock inside: `now` is an argument, so renewal
// decisions are testable. Key generation uses WebCrypto through @peculiar/x509.
import { webcrypto, createHash, X509Certificate as NodeX509 } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type SignAlg = webcrypto.Algorithm | webcrypto.EcdsaParams;
// @peculiar/x509 resolves its ASN.1 services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { IssueSpec } from './api/types.ts';
import { parseDuration } from './api/duration.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const subtle = webcrypto.subtle;

export type KeyAlgorithm = NonNullable<IssueSpec['keyAlgorithm']>;

export const DEFAULT_DURATION = '2160h'; // 90 days
export const DEFAULT_RENEW_BEFORE = '720h'; // 30 days
const CA_VALIDITY_MS = 10 * 365 * 24 * 3_600_000;
/** Leaves start a little in the past so a peer with a slightly slow clock accepts them at once. */
const BACKDATE_MS = 5 * 60_000;

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export interface CertificateFacts {
  notBefore: string;
  notAfter: string;
  /** When the operator re-issues (notAfter − renewBefore), if known. */
  renewalTime?: string;
  /** Upper-case hex. */
  serialNumber: string;
  /** Upper-case hex with colons, like `openssl x509 -fingerprint -sha256`. */
  sha256Fingerprint: string;
}

export interface IssuedCertificate extends KeyPairPem, CertificateFacts {
  caPem: string;
}

function keyParams(alg: KeyAlgorithm): { gen: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams; sign: SignAlg; importAlg: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams } {
  switch (alg) {
    case 'ECDSA-P256':
      return { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' }, importAlg: { name: 'ECDSA', namedCurve: 'P-256' } };
    case 'ECDSA-P384':
      return { gen: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' }, importAlg: { name: 'ECDSA', namedCurve: 'P-384' } };
    case 'RSA-2048':
    case 'RSA-4096': {
      const modulusLength = alg === 'RSA-2048' ? 2048 : 4096;
      const p = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
      return { gen: { ...p, modulusLength, publicExponent: new Uint8Array([1, 0, 1]) }, sign: p, importAlg: p };
    }
  }
}

async function generate(alg: KeyAlgorithm): Promise<CryptoKeyPair> {
  return await subtle.generateKey(keyParams(alg).gen, true, ['sign', 'verify']);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** Random positive 128-bit serial (RFC 5280 §4.1.2.2: ≤ 20 octets, positive). */
function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return Buffer.from(bytes).toString('hex');
}

function colonHex(buf: Buffer): string {
  return buf.toString('hex').toUpperCase().match(/../g)?.join(':') ?? '';
}

/** Validity, serial and fingerprint of a PEM certificate (the first one in a bundle). */
export function describeCertificate(certPem: string, renewBeforeMs?: number): CertificateFacts {
  const cert = new NodeX509(certPem);
  const notBefore = new Date(cert.validFrom).toISOString();
  const notAfterMs = new Date(cert.validTo).getTime();
  const facts: CertificateFacts = {
    notBefore,
    notAfter: new Date(notAfterMs).toISOString(),
    serialNumber: cert.serialNumber.toUpperCase(),
    sha256Fingerprint: colonHex(createHash('sha256').update(cert.raw).digest()),
  };
  if (renewBeforeMs !== undefined) facts.renewalTime = new Date(notAfterMs - renewBeforeMs).toISOString();
  return facts;
}

/** True when `now` is at or past the renewal time (notAfter − renewBefore), or the cert is unreadable. */
export function needsRenewal(certPem: string, renewBeforeMs: number, now: Date): boolean {
  try {
    return now.getTime() >= new Date(new NodeX509(certPem).validTo).getTime() - renewBeforeMs;
  } catch {
    return true;
  }
}

/** Whether `certPem` was signed by `caPem` (a CA rotation makes every leaf stale). */
export function issuedBy(certPem: string, caPem: string): boolean {
  try {
    return new NodeX509(certPem).checkIssued(new NodeX509(caPem)) && new NodeX509(certPem).verify(new NodeX509(caPem).publicKey);
  } catch {
    return false;
  }
}

/** A self-signed CA for one tenant: pathLen 0, keyCertSign + cRLSign only. */
export async function createCa(opts: { commonName: string; now: Date; validityMs?: number }): Promise<KeyPairPem> {
  const alg: KeyAlgorithm = 'ECDSA-P256';
  const keys = await generate(alg);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [opts.commonName] }, { O: ['Enclave'] }],
    notBefore: new Date(opts.now.getTime() - BACKDATE_MS),
    notAfter: new Date(opts.now.getTime() + (opts.validityMs ?? CA_VALIDITY_MS)),
    signingAlgorithm: keyParams(alg).sign,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

async function importCaKey(keyPem: string, caCert: x509.X509Certificate): Promise<{ key: CryptoKey; sign: SignAlg }> {
  const der = x509.PemConverter.decodeFirst(keyPem);
  const pubAlg = caCert.publicKey.algorithm as webcrypto.EcKeyAlgorithm | webcrypto.RsaHashedKeyAlgorithm;
  const alg: KeyAlgorithm = pubAlg.name === 'ECDSA' ? ((pubAlg as webcrypto.EcKeyAlgorithm).namedCurve === 'P-384' ? 'ECDSA-P384' : 'ECDSA-P256') : 'RSA-2048';
  const p = keyParams(alg);
  return { key: await subtle.importKey('pkcs8', der, p.importAlg, false, ['sign']), sign: p.sign };
}

/**
 * A serving/client leaf for `spec`, signed by `ca`. Extended key usage covers both serverAuth and
 * clientAuth, so one TlsCertificate can serve a listener or act as an mTLS client identity.
 */
export async function issueLeaf(opts: { ca: KeyPairPem; spec: IssueSpec; now: Date }): Promise<IssuedCertificate> {
  const { spec, now } = opts;
  const durationMs = parseDuration(spec.duration ?? DEFAULT_DURATION, 'spec.issue.duration');
  const renewBeforeMs = parseDuration(spec.renewBefore ?? DEFAULT_RENEW_BEFORE, 'spec.issue.renewBefore');
  if (renewBeforeMs >= durationMs) {
    throw new Error(`renewBefore (${spec.renewBefore ?? DEFAULT_RENEW_BEFORE}) must be shorter than duration (${spec.duration ?? DEFAULT_DURATION})`);
  }
  const caCert = new x509.X509Certificate(opts.ca.certPem);
  const caKey = await importCaKey(opts.ca.keyPem, caCert);
  const alg = spec.keyAlgorithm ?? 'ECDSA-P256';
  const keys = await generate(alg);
  const sans: x509.JsonGeneralName[] = [
    ...(spec.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(spec.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const isEc = alg.startsWith('ECDSA');
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | (isEc ? 0 : x509.KeyUsageFlags.keyEncipherment), true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
  ];
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans));
  const notAfter = new Date(now.getTime() + durationMs);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [spec.commonName] }],
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter,
    signingAlgorithm: caKey.sign,
    publicKey: keys.publicKey,
    signingKey: caKey.key,
    extensions,
  });
  const certPem = cert.toString('pem');
  return { certPem, keyPem: await privateKeyPem(keys.privateKey), caPem: opts.ca.certPem, ...describeCertificate(certPem, renewBeforeMs) };
}
