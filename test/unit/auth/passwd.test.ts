// enclave-passwd: records that the sources then verify, INSERTs quoted safely, and the CLI itself.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeUserRecord } from '../../../broker/auth/passwd.ts';
import { verifyPassword } from '../../../broker/auth/password.ts';
import { repoRoot } from '../../support/paths.ts';

describe('makeUserRecord', () => {
  it.each([
    [{ algorithm: 'sha256', saltPosition: 'prefix' }],
    [{ algorithm: 'sha512', saltPosition: 'suffix' }],
    [{ algorithm: 'pbkdf2', macFun: 'sha256', iterations: 10 }],
    [{ algorithm: 'bcrypt' }],
  ] as const)('%j verifies', async (hash) => {
    const r = await makeUserRecord({ username: 'u', password: 'pw', hash, superuser: false, shape: 'emqx5', bcryptRounds: 4 });
    expect(await verifyPassword(hash, Buffer.from('pw'), r.hash, r.salt)).toBe(true);
  });
  it("seed 003's row", async () => {
    const r = await makeUserRecord({ username: 'emqx', password: 'public', hash: { algorithm: 'sha256', saltPosition: 'disable' }, superuser: false, shape: 'emqx4' });
    expect(r.insert).toBe("INSERT INTO mqtt_user (username, password, salt, is_superuser) VALUES ('emqx', 'efa1f375d76194fa51a3556a97e641e61685f914d446979da50a551a4333ffd7', '', 0);");
  });
  it('quotes hostile usernames and refuses odd table names', async () => {
    const r = await makeUserRecord({ username: "o'; DROP TABLE users; --", password: 'pw', hash: { algorithm: 'sha256', saltPosition: 'disable' }, superuser: true, shape: 'role-model' });
    expect(r.insert).toContain("VALUES ('o''; DROP TABLE users; --', ");
    expect(r.insert).toMatch(/, true\);$/);
    await expect(makeUserRecord({ username: 'u', password: 'pw', hash: { algorithm: 'md5' }, superuser: false, shape: 'emqx5', table: 'x; DROP' })).rejects.toThrow(/identifier/);
  });
});

describe('enclave-passwd CLI', () => {
  const cli = join(repoRoot, 'broker', 'auth', 'passwd-cli.ts');
  const node = join(repoRoot, 'node_modules', '.bin', 'node');
  const withStdin = (args: string[], input: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(node, [cli, ...args], (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
      child.stdin!.end(input);
    });
  it('password from stdin; prints hash, salt and INSERT', async () => {
    const r = await withStdin(['-a', 'sha256', '--salt', 'NaCl', 'alice'], 'secret\n');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('salt: NaCl');
    expect(r.stdout).toContain("INSERT INTO mqtt_user (username, password_hash, salt, is_superuser) VALUES ('alice', ");
    expect(r.stdout).not.toContain('secret');
  });
  it('no password → exit 2 with advice', async () => {
    const r = await withStdin(['alice'], '');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no password on stdin');
  });
});
