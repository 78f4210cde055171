// Files mounted from tenant Secrets that do not parse: the error (at start, in the reload log)
// says which file and where (line/column or character), never what is in it. A users file with a
// typo, or a secretRef pointed at a private key, must not put secret material into the broker log.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBuiltinData } from '../../../broker/auth/backends/builtin.ts';
import { sleep } from '../../support/wait.ts';
import { chainOf } from './helpers.ts';

const SECRET = 'hunter2-do-not-log-me';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'auth-secret-files-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('builtin users file that is not YAML', () => {
  it.each([
    ['an unclosed quote', `users:\n  - username: alice\n    password_hash: "${SECRET}\n`, /line \d+, column \d+/],
    ['a bad indent', `users:\n  - username: alice\n password_hash: ${SECRET}\n    x: [\n`, /line \d+, column \d+/],
    ['a duplicate key', `users:\n  - username: alice\n    password_hash: ${SECRET}\n    password_hash: ${SECRET}\n`, /DUPLICATE_KEY\) at line 4, column 5/],
    ['a PEM key where users.yaml was meant', `-----BEGIN PRIVATE KEY-----\n${SECRET}: [\n-----END PRIVATE KEY-----\n`, /line \d+, column \d+/],
  ])('%s: file and position, not content', (_what, text, position) => {
    let message = '';
    try {
      parseBuiltinData(text, '/etc/enclave/source-users-data.yaml');
    } catch (err) {
      message = (err as Error).message;
      expect((err as Error).cause).toBeUndefined();
    }
    expect(message).toMatch(/^\/etc\/enclave\/source-users-data\.yaml: not valid YAML\/JSON \([A-Z_]+\) /);
    expect(message).toMatch(position);
    expect(message).not.toContain(SECRET);
  });

  it('a broken reload is logged with file and position, without content', async () => {
    const file = join(dir, 'users.yaml');
    await writeFile(file, 'users:\n  - username: alice\n    password_hash: alice-secret\nacl: []\n');
    const chain = await chainOf({ users: { type: 'builtin', dataFile: file, passwordHash: { algorithm: 'plain' } } });
    await writeFile(file, `users:\n  - username: alice\n    password_hash: "${SECRET}\n`);
    await sleep(300);
    const log = chain.logs.join('');
    expect(log).toContain('builtin auth data not reloaded');
    expect(log).toMatch(/not valid YAML\/JSON \([A-Z_]+\) at line \d+, column \d+/);
    expect(log).not.toContain(SECRET);
    await chain.hook.close?.();
  });
});

describe('jwt JWKS file that is not JSON', () => {
  it.each([
    ['an unquoted value', `{"keys": [${SECRET}]}`, 'not valid JSON'],
    ['a missing comma', `{"keys": [] "${SECRET}": 1}`, 'not valid JSON (at character 12)'],
  ])('%s: start fails naming the file (and the character), not the content', async (_what, text, expected) => {
    const file = join(dir, 'jwks.json');
    await writeFile(file, text);
    const failed = await chainOf({ idp: { type: 'jwt', from: 'password', jwksFile: file } }).then(() => undefined, (err: unknown) => err as Error);
    expect(failed?.message).toContain(`${file}: ${expected}`);
    expect(failed?.message).not.toContain(SECRET);
  });
});
