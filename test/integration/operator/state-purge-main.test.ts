// The purge Job's program (broker/purge-main.ts), run as the Job runs it (`node purge-main --config
// FILE`, a broker config with the password in a file) against the world's Redis: every key under the
// deployment's prefix is gone afterwards (SCAN says 0), another deployment's keys are untouched, a
// config without a Redis backend purges nothing, and a failure exits 1 with a message that names
// the problem and never the password.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { countKeys } from '../../../broker/cluster/purge.ts';
import { repoRoot } from '../../support/paths.ts';
import { run } from '../../support/run.ts';
import { world } from '../../support/world.ts';

let admin: Redis;
let dir: string;
const node = join(repoRoot, 'node_modules', '.bin', 'node');
const main = join(repoRoot, 'broker', 'purge-main.ts');

/** A broker config as the operator renders it for an external Redis (password as a copied file). */
async function configFile(name: string, state: Record<string, unknown>, password?: string): Promise<string> {
  const passwordFile = join(dir, `${name}.password`);
  if (password !== undefined) await writeFile(passwordFile, password);
  const redis = state['redis'] as Record<string, unknown> | undefined;
  const config = {
    listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '0.0.0.0', port: 1883 }],
    state: redis ? { ...state, redis: { ...redis, ...(password !== undefined ? { passwordFile } : {}) } } : state,
  };
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, stringify(config));
  return file;
}

beforeAll(async () => {
  const w = world().redis;
  admin = new Redis({ host: w.host, port: w.port, password: w.password, maxRetriesPerRequest: 1 });
  admin.on('error', () => undefined);
  dir = await mkdtemp(join(tmpdir(), 'purge-main-'));
});
afterAll(() => {
  admin?.disconnect();
});

describe('purge-main', () => {
  it('deletes every key under the prefix (glob characters included) and nothing of another deployment', async () => {
    const w = world().redis;
    const mine = `enclave:${randomUUID()}:`;
    const other = `enclave:${randomUUID()}:`;
    for (let i = 0; i < 2500; i++) await admin.set(`${mine}s:dev-${i}*?`, 'x');
    await admin.xadd(`${mine}bus`, '*', 'e', 'x');
    await admin.hset(`${mine}retained`, 'a/b', 'x');
    await admin.set(`${other}s:dev-0`, 'keep');
    const file = await configFile('mine', { backend: 'redis', redis: { host: w.host, port: w.port, keyPrefix: mine } }, w.password);
    const r = await run(node, [main, '--config', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('"deleted":2502');
    expect(await countKeys(admin, mine)).toBe(0);
    expect(await admin.get(`${other}s:dev-0`)).toBe('keep');
    await admin.del(`${other}s:dev-0`);
  });

  it('purges nothing without a Redis backend', async () => {
    const r = await run(node, [main, '--config', await configFile('memory', { backend: 'memory' })]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('nothing to purge');
  });

  it('fails with exit 1 and a message that names the problem, never the password', async () => {
    const w = world().redis;
    const wrong = 'wrong-password-5f2a';
    const file = await configFile('wrong', { backend: 'redis', redis: { host: w.host, port: w.port, keyPrefix: `enclave:${randomUUID()}:` } }, wrong);
    const r = await run(node, [main, '--config', file], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Purging the state backend failed: /m);
    expect(r.stderr + r.stdout).not.toContain(wrong);
  });
});
