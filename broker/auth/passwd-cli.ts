#!/usr/bin/env node
// `enclave-passwd [options] USERNAME` (run: node broker/auth/passwd-cli.ts): reads the password
// from stdin (first line) so it never appears in argv or shell history, prints the stored hash, the
// salt and an INSERT for the users table. Options mirror a source's `passwordHash` config.
import { Command, Option } from 'commander';
import type { PasswordHashConfig } from './config.ts';
import { checkPasswordHashConfig } from './password.ts';
import { makeUserRecord, type TableShape } from './passwd.ts';

async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

const program = new Command('enclave-passwd')
  .description('hash a password for an Enclave auth source and print the INSERT for its users table (password on stdin)')
  .argument('<username>')
  .addOption(new Option('-a, --algorithm <name>', 'hash algorithm').choices(['bcrypt', 'pbkdf2', 'sha512', 'sha256', 'sha', 'md5', 'plain']).default('bcrypt'))
  .addOption(new Option('--salt-position <pos>', 'digests only').choices(['prefix', 'suffix', 'disable']).default('prefix'))
  .option('--salt <salt>', 'salt to use (default: 16 random hex chars)')
  .addOption(new Option('--mac-fun <fn>', 'pbkdf2 only').choices(['sha1', 'sha224', 'sha256', 'sha384', 'sha512']).default('sha256'))
  .option('--iterations <n>', 'pbkdf2 only', (v) => Number(v), 100_000)
  .option('--dk-length <n>', 'pbkdf2 only (default: digest size)', (v) => Number(v))
  .option('--rounds <n>', 'bcrypt cost', (v) => Number(v), 10)
  .option('--superuser', 'mark the user as superuser', false)
  .addOption(new Option('--shape <shape>', 'users table shape').choices(['emqx5', 'emqx4', 'role-model']).default('emqx5'))
  .option('--table <name>', 'table name (default mqtt_user, or users for role-model)');

program.parse();
const o = program.opts<{
  algorithm: PasswordHashConfig['algorithm']; saltPosition: 'prefix' | 'suffix' | 'disable'; salt?: string; macFun: PasswordHashConfig['macFun'];
  iterations: number; dkLength?: number; rounds: number; superuser: boolean; shape: TableShape; table?: string;
}>();
const hash: PasswordHashConfig = {
  algorithm: o.algorithm,
  ...(o.algorithm === 'pbkdf2' ? { macFun: o.macFun, iterations: o.iterations, ...(o.dkLength ? { dkLength: o.dkLength } : {}) } : { saltPosition: o.saltPosition }),
};
try {
  checkPasswordHashConfig(hash);
  if (o.algorithm === 'plain') process.stderr.write('warning: plain stores the password itself; use it only to migrate existing tables\n');
  const password = await readStdinLine();
  if (password === '') throw new Error('no password on stdin (try: printf %s "$PASSWORD" | enclave-passwd USER)');
  const r = await makeUserRecord({ username: program.args[0]!, password, hash, ...(o.salt !== undefined ? { salt: o.salt } : {}), superuser: o.superuser, shape: o.shape, ...(o.table ? { table: o.table } : {}), bcryptRounds: o.rounds });
  process.stdout.write(`passwordHash: ${JSON.stringify(hash)}\nhash: ${r.hash}\nsalt: ${r.salt}\n${r.insert}\n`);
} catch (err) {
  process.stderr.write(`enclave-passwd: ${(err as Error).message}\n`);
  process.exit(2);
}
