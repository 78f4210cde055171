// Owns password hashing and verification in EMQX's formats: plain, md5, sha, sha256, sha512 with
// the salt as prefix | suffix | disable (hex digest of salt‖password or password‖salt), pbkdf2
// (hex of PBKDF2-HMAC(macFun, password, salt, iterations, dkLength)), bcrypt (`$2b$…` string, salt
// column ignored). Hex compares case-insensitively; every comparison is constant-time.
import { hash, pbkdf2, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import type { PasswordHashConfig } from './config.ts';

const pbkdf2Async = promisify(pbkdf2);

const digestName = { md5: 'md5', sha: 'sha1', sha256: 'sha256', sha512: 'sha512' } as const;
const macName = { sha1: 'sha1', sha224: 'sha224', sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' } as const;
const macSize = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 } as const;

/** EMQX's default when a source does not say: sha256 with the salt as prefix. */
export const defaultPasswordHash: PasswordHashConfig = { algorithm: 'sha256', saltPosition: 'prefix' };

export class PasswordConfigError extends Error {
  constructor(problem: string) {
    super(`passwordHash: ${problem}`);
    this.name = 'PasswordConfigError';
  }
}

/** Rejects configurations that cannot verify anything, at config load. */
export function checkPasswordHashConfig(c: PasswordHashConfig): void {
  if (c.algorithm === 'pbkdf2') {
    if (!c.macFun || !(c.macFun in macName)) throw new PasswordConfigError('pbkdf2 needs macFun sha1|sha224|sha256|sha384|sha512');
    if (!Number.isInteger(c.iterations) || (c.iterations ?? 0) < 1) throw new PasswordConfigError('pbkdf2 needs iterations ≥ 1');
    if (c.dkLength !== undefined && (!Number.isInteger(c.dkLength) || c.dkLength < 1 || c.dkLength > 1024)) {
      throw new PasswordConfigError('pbkdf2 dkLength must be 1..1024');
    }
  } else if (!['plain', 'md5', 'sha', 'sha256', 'sha512', 'bcrypt'].includes(c.algorithm)) {
    throw new PasswordConfigError(`unknown algorithm "${String(c.algorithm)}"`);
  }
}

function salted(c: PasswordHashConfig, password: Buffer, salt: string): Buffer {
  const s = Buffer.from(salt, 'utf8');
  const pos = c.saltPosition ?? 'prefix';
  if (pos === 'disable' || s.length === 0) return password;
  return pos === 'prefix' ? Buffer.concat([s, password]) : Buffer.concat([password, s]);
}

/**
 * The stored form of `password` (what goes into the users table). bcrypt generates its own salt
 * (`rounds`, default 10); for the others `salt` is the salt column's value.
 */
export async function hashPassword(c: PasswordHashConfig, password: Buffer | string, salt = '', rounds = 10): Promise<string> {
  checkPasswordHashConfig(c);
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  switch (c.algorithm) {
    case 'plain':
      return salted(c, pw, salt).toString('utf8');
    case 'md5':
    case 'sha':
    case 'sha256':
    case 'sha512':
      // crypto.hash (one-shot) avoids OpenSSL 3's per-call digest fetch of createHash: ~10× faster.
      return hash(digestName[c.algorithm], salted(c, pw, salt), 'hex');
    case 'pbkdf2': {
      const mac = c.macFun!;
      const key = await pbkdf2Async(pw, Buffer.from(salt, 'utf8'), c.iterations!, c.dkLength ?? macSize[mac], macName[mac]);
      return key.toString('hex');
    }
    case 'bcrypt':
      return bcrypt.hash(pw.toString('utf8'), rounds);
  }
}

/** Constant-time equality that does not leak the length through an early return on mismatch. */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) {
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}

/** true when `password` matches the stored hash (and salt) under `c`. Never throws on bad input. */
export async function verifyPassword(c: PasswordHashConfig, password: Buffer, stored: string, salt = ''): Promise<boolean> {
  if (c.algorithm === 'bcrypt') {
    if (!/^\$2[abxy]?\$\d\d\$/.test(stored)) return false;
    // bcrypt looks at 72 bytes only; longer passwords are refused rather than silently truncated.
    if (password.length > 72) return false;
    return bcrypt.compare(password.toString('utf8'), stored);
  }
  const computed = await hashPassword(c, password, salt);
  if (c.algorithm === 'plain') return safeEqual(Buffer.from(computed, 'utf8'), Buffer.from(stored, 'utf8'));
  return safeEqual(Buffer.from(computed, 'utf8'), Buffer.from(stored.trim().toLowerCase(), 'utf8'));
}
