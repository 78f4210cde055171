// Owns the interface every auth source (backend) implements, and the helpers they share: the
// placeholder values of a connection, the EMQX user-record check (password_hash|password, salt,
// is_superuser) and truthiness of `is_superuser`. The chain (chain.ts) turns thrown errors into
// `onBackendFailure` decisions, so a backend only throws; it never decides what a failure means.
import type { Logger } from 'pino';
import type { PasswordHashConfig } from './config.ts';
import type { AuthenticatedClient, AuthorizationRequest, ConnectAttempt } from './hook.ts';
import type { Rule } from './acl.ts';
import type { PlaceholderValues } from './placeholders.ts';
import { verifyPassword } from './password.ts';

// One word for a source that abstains, in authentication and authorization alike: `ignore` (not
// mine: user unknown, no token, no rule speaks to the request), and the chain asks the next source
// (mosquitto's DEFER, EMQX's ignore).

/** What one source says about a CONNECT. `ignore` = not mine (user unknown, no token). */
export type SourceAuthnResult =
  | {
      decision: 'allow'; superuser: boolean; acl?: Rule[]; expiresAt?: Date;
      /** The identity this source established when it differs from the CONNECT username (x509: the certificate's CN/SAN). */
      identity?: string;
    }
  | { decision: 'deny'; reason: 'bad-credentials' | 'not-authorized' }
  | { decision: 'ignore' };

/** What one source says about a PUBLISH or SUBSCRIBE. `ignore` = no rule of this source speaks to it. */
export type SourceAuthzResult = 'allow' | 'deny' | 'ignore';

export interface AuthSource {
  readonly name: string;
  readonly type: string;
  /** Present when the source can authenticate. Throws on backend failure. */
  authenticate?(attempt: ConnectAttempt, signal: AbortSignal): Promise<SourceAuthnResult>;
  /** Present when the source can authorize. Throws on backend failure. */
  authorize?(client: AuthenticatedClient, request: AuthorizationRequest, signal: AbortSignal): Promise<SourceAuthzResult>;
  close(): Promise<void>;
}

export interface SourceContext {
  name: string;
  logger: Logger;
  /** Call when the source's data or credentials were reloaded: cached decisions are dropped. */
  dataChanged(): void;
  /** Poll interval for mounted files (credentials, data). */
  watchIntervalMs: number;
}

/** The typed error a backend throws so logs say which source failed and why, without secrets. */
export class BackendError extends Error {
  constructor(source: string, message: string, options?: { cause?: unknown }) {
    super(`auth source "${source}": ${message}`, options);
    this.name = 'BackendError';
  }
}

export function valuesOfAttempt(a: Omit<ConnectAttempt, 'password'> & { password?: Buffer | undefined }): PlaceholderValues {
  return {
    username: a.username,
    clientid: a.clientId,
    peerhost: a.peerHost,
    cert_common_name: a.certificate?.commonName,
    cert_subject: a.certificate?.subject,
    password: a.password?.toString('utf8'),
  };
}

export function valuesOfClient(c: AuthenticatedClient): PlaceholderValues {
  return valuesOfAttempt(c.attempt);
}

/** EMQX truthiness of `is_superuser`: true, "true", "1", integer ≥ 1 (and Buffer/bit(1) 0x01). */
export function isTruthySuperuser(v: unknown): boolean {
  if (v === true) return true;
  if (typeof v === 'number' || typeof v === 'bigint') return Number(v) >= 1;
  if (typeof v === 'string') return v === 'true' || v === '1' || (/^\d+$/.test(v) && Number(v) >= 1);
  if (Buffer.isBuffer(v)) return v.length > 0 && v[0] === 1;
  return false;
}

function asText(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return v.toString();
  return undefined;
}

/**
 * Checks a user record as EMQX does: `password_hash` (falling back to `password`), `salt` (missing
 * → ""), `is_superuser`. A record without a hash denies (bad-credentials), like EMQX 5.8.
 */
export async function checkUserRecord(record: Record<string, unknown>, password: Buffer | undefined, hash: PasswordHashConfig): Promise<SourceAuthnResult> {
  const stored = asText(record.password_hash) ?? asText(record.password);
  if (stored === undefined || stored === '' || password === undefined) return { decision: 'deny', reason: 'bad-credentials' };
  const ok = await verifyPassword(hash, password, stored, asText(record.salt) ?? '');
  if (!ok) return { decision: 'deny', reason: 'bad-credentials' };
  return { decision: 'allow', superuser: isTruthySuperuser(record.is_superuser) };
}

