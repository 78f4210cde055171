// Password formats as EMQX stores them; seed 003's sample row must verify with "public".
import { createHash, pbkdf2Sync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { PasswordHashConfig } from '../../../broker/auth/config.ts';
import { checkPasswordHashConfig, hashPassword, safeEqual, verifyPassword } from '../../../broker/auth/password.ts';

const pw = Buffer.from('public');
const hex = (alg: string, s: string): string => createHash(alg).update(s).digest('hex');

describe('verifyPassword', () => {
  const cases: [string, PasswordHashConfig, string, string, boolean][] = [
    ['seed 003 emqx/public sha256', { algorithm: 'sha256', saltPosition: 'disable' }, 'efa1f375d76194fa51a3556a97e641e61685f914d446979da50a551a4333ffd7', '', true],
    ['upper-case hex', { algorithm: 'sha256', saltPosition: 'prefix' }, 'EFA1F375D76194FA51A3556A97E641E61685F914D446979DA50A551A4333FFD7', '', true],
    ['sha256 prefix salt', { algorithm: 'sha256', saltPosition: 'prefix' }, hex('sha256', 'saltpublic'), 'salt', true],
    ['sha256 suffix salt', { algorithm: 'sha256', saltPosition: 'suffix' }, hex('sha256', 'publicsalt'), 'salt', true],
    ['suffix stored, prefix configured', { algorithm: 'sha256', saltPosition: 'prefix' }, hex('sha256', 'publicsalt'), 'salt', false],
    ['salt disabled ignores salt', { algorithm: 'sha256', saltPosition: 'disable' }, hex('sha256', 'public'), 'salt', true],
    ['md5', { algorithm: 'md5', saltPosition: 'disable' }, hex('md5', 'public'), '', true],
    ['sha', { algorithm: 'sha', saltPosition: 'suffix' }, hex('sha1', 'publicS'), 'S', true],
    ['sha512', { algorithm: 'sha512', saltPosition: 'prefix' }, hex('sha512', 'Spublic'), 'S', true],
    ['wrong hash', { algorithm: 'sha256' }, hex('sha256', 'other'), '', false],
    ['empty stored', { algorithm: 'sha256' }, '', '', false],
    ['plain', { algorithm: 'plain', saltPosition: 'disable' }, 'public', '', true],
    ['plain is case-sensitive', { algorithm: 'plain', saltPosition: 'disable' }, 'PUBLIC', '', false],
    ['pbkdf2 sha256 default dkLength', { algorithm: 'pbkdf2', macFun: 'sha256', iterations: 1000 }, pbkdf2Sync('public', 'NaCl', 1000, 32, 'sha256').toString('hex'), 'NaCl', true],
    ['pbkdf2 sha1 dkLength 20', { algorithm: 'pbkdf2', macFun: 'sha1', iterations: 2, dkLength: 20 }, pbkdf2Sync('public', 's', 2, 20, 'sha1').toString('hex'), 's', true],
    ['pbkdf2 wrong iterations', { algorithm: 'pbkdf2', macFun: 'sha512', iterations: 3 }, pbkdf2Sync('public', 's', 2, 64, 'sha512').toString('hex'), 's', false],
    ['bcrypt garbage', { algorithm: 'bcrypt' }, 'not-a-bcrypt-hash', '', false],
  ];
  it.each(cases)('%s', async (_name, c, stored, salt, want) => {
    expect(await verifyPassword(c, pw, stored, salt)).toBe(want);
  });

  it('bcrypt round-trips, salt column ignored, wrong password rejected', async () => {
    const stored = await hashPassword({ algorithm: 'bcrypt' }, 'public', '', 4);
    expect(stored).toMatch(/^\$2[aby]\$04\$/);
    expect(await verifyPassword({ algorithm: 'bcrypt' }, pw, stored, 'ignored')).toBe(true);
    expect(await verifyPassword({ algorithm: 'bcrypt' }, Buffer.from('Public'), stored)).toBe(false);
    expect(await verifyPassword({ algorithm: 'bcrypt' }, Buffer.alloc(100, 'a'), stored)).toBe(false);
  });

  it('hashPassword matches verifyPassword for every digest', async () => {
    for (const algorithm of ['md5', 'sha', 'sha256', 'sha512', 'plain'] as const) {
      for (const saltPosition of ['prefix', 'suffix', 'disable'] as const) {
        const c = { algorithm, saltPosition };
        expect(await verifyPassword(c, pw, await hashPassword(c, pw, 'xy'), 'xy')).toBe(true);
      }
    }
  });
});

describe('config and comparison', () => {
  it.each([
    [{ algorithm: 'pbkdf2' }, /macFun/],
    [{ algorithm: 'pbkdf2', macFun: 'sha256' }, /iterations/],
    [{ algorithm: 'pbkdf2', macFun: 'md4', iterations: 1 }, /macFun/],
    [{ algorithm: 'rot13' }, /unknown algorithm/],
  ])('rejects %j', (c, msg) => {
    expect(() => checkPasswordHashConfig(c as PasswordHashConfig)).toThrow(msg);
  });
  it('safeEqual', () => {
    expect(safeEqual(Buffer.from('ab'), Buffer.from('ab'))).toBe(true);
    expect(safeEqual(Buffer.from('ab'), Buffer.from('abc'))).toBe(false);
    expect(safeEqual(Buffer.from('ab'), Buffer.from('ac'))).toBe(false);
  });
});
