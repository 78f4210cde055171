// Owns `enclave-passwd`'s pure core (like HiveMQ ESE's helper): from a username, a password and
// the source's passwordHash config, the stored hash, the salt, and a ready INSERT for the users
// table in the EMQX 5, EMQX 4 or role-model shape. Values are SQL-quoted ('' doubling), never
// passed to a shell; the password itself is read from stdin by the CLI, not from argv.
import { randomBytes } from 'node:crypto';
import type { PasswordHashConfig } from './config.ts';
import { hashPassword } from './password.ts';

export type TableShape = 'emqx5' | 'emqx4' | 'role-model';

export interface PasswdRequest {
  username: string;
  password: string;
  hash: PasswordHashConfig;
  /** undefined = a random 16-hex-char salt (none for bcrypt / saltPosition disable). */
  salt?: string;
  superuser: boolean;
  shape: TableShape;
  table?: string;
  bcryptRounds?: number;
}

export interface PasswdResult {
  hash: string;
  salt: string;
  insert: string;
}

export const sqlString = (s: string): string => `'${s.replace(/'/g, "''")}'`;

const identifier = /^[A-Za-z_][A-Za-z0-9_.]*$/;

export async function makeUserRecord(r: PasswdRequest): Promise<PasswdResult> {
  const saltless = r.hash.algorithm === 'bcrypt' || r.hash.saltPosition === 'disable';
  const salt = saltless ? '' : (r.salt ?? randomBytes(8).toString('hex'));
  const hash = await hashPassword(r.hash, r.password, salt, r.bcryptRounds ?? 10);
  const table = r.table ?? (r.shape === 'role-model' ? 'users' : 'mqtt_user');
  if (!identifier.test(table)) throw new Error(`table name "${table}" is not a plain SQL identifier`);
  const cols =
    r.shape === 'emqx4'
      ? ['username', 'password', 'salt', 'is_superuser']
      : ['username', 'password_hash', 'salt', 'is_superuser'];
  const superuser = r.shape === 'role-model' ? (r.superuser ? 'true' : 'false') : r.superuser ? '1' : '0';
  const insert = `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${sqlString(r.username)}, ${sqlString(hash)}, ${sqlString(salt)}, ${superuser});`;
  return { hash, salt, insert };
}
