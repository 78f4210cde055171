// Owns what PostgreSQL and MySQL sources share: the default queries (compatible with EMQX 4 and
// EMQX 5 `mqtt_user` / `mqtt_acl` tables as they are), turning rows into decisions, TLS options,
// and credentials read from mounted files with a pool rebuilt when they change. Only the driver
// call differs between postgres.ts and mysql.ts.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { BackendTls, SqlSourceConfig } from '../config.ts';
import { parseRule, evaluateAcl, type Rule } from '../acl.ts';
import { compileSql, type PlaceholderName, type SqlStatement } from '../placeholders.ts';
import { checkPasswordHashConfig, defaultPasswordHash } from '../password.ts';
import { checkUserRecord, isTruthySuperuser, valuesOfAttempt, valuesOfClient, type AuthSource, type SourceContext } from '../source.ts';
import { watchTextFile, type WatchedFile } from '../../mounted-files.ts';

/**
 * `SELECT *` so one default reads both shapes: EMQX 4 (`password`, `salt`, `is_superuser`) and
 * EMQX 5 (`password_hash`, `salt`, `is_superuser`).
 */
export const defaultAuthQuery = 'SELECT * FROM mqtt_user WHERE username = ${username} LIMIT 1';
/** EMQX 4's default ACL query, ordered by id so "first match wins" is the table's order. */
export const defaultAclQuery =
  "SELECT * FROM mqtt_acl WHERE ipaddr = ${peerhost} OR username = ${username} OR username = '$all' OR clientid = ${clientid} ORDER BY id";

const authnVars = new Set<PlaceholderName>(['username', 'clientid', 'peerhost', 'cert_common_name', 'cert_subject', 'password']);
const authzVars = new Set<PlaceholderName>(['username', 'clientid', 'peerhost', 'cert_common_name', 'cert_subject']);

export type Row = Record<string, unknown>;

/** A pooled driver: run one bound statement; `end` drains the pool. */
export interface SqlPool {
  query(stmt: SqlStatement, timeoutMs: number): Promise<Row[]>;
  end(): Promise<void>;
}

export interface SqlCredentials {
  user: string | undefined;
  password: string | undefined;
}

export function tlsOptions(tls: BackendTls | undefined): ConnectionOptions | undefined {
  if (!tls?.enabled) return undefined;
  return {
    ...(tls.caFile ? { ca: readFileSync(tls.caFile) } : {}),
    ...(tls.certFile ? { cert: readFileSync(tls.certFile) } : {}),
    ...(tls.keyFile ? { key: readFileSync(tls.keyFile) } : {}),
    ...(tls.serverName ? { servername: tls.serverName } : {}),
    rejectUnauthorized: tls.verify ?? true,
  };
}

/**
 * Credentials from `usernameFile`/`username` and `passwordFile`; `onChange` fires when a file
 * changes. Returns the current credentials and a stop function.
 */
export function watchCredentials(
  c: { username?: string; usernameFile?: string; passwordFile?: string },
  intervalMs: number,
  onChange: () => void,
): { current(): SqlCredentials; stop(): void } {
  const watchers: WatchedFile[] = [];
  const userFile = c.usernameFile ? watchTextFile(c.usernameFile, onChange, { intervalMs }) : undefined;
  if (userFile) watchers.push(userFile);
  const passFile = c.passwordFile ? watchTextFile(c.passwordFile, onChange, { intervalMs }) : undefined;
  if (passFile) watchers.push(passFile);
  return {
    current: () => ({ user: userFile?.current() ?? c.username, password: passFile?.current() }),
    stop: () => watchers.forEach((w) => w.stop()),
  };
}

/** The source over any SqlPool factory; the pool is rebuilt with fresh credentials on change. */
export function createSqlSource(c: SqlSourceConfig, ctx: SourceContext, makePool: (cred: SqlCredentials) => SqlPool): AuthSource {
  const hash = c.passwordHash ?? defaultPasswordHash;
  checkPasswordHashConfig(hash);
  const dialect = c.type;
  const authQuery = compileSql(c.authQuery ?? defaultAuthQuery, dialect, authnVars);
  const superuserQuery = c.superuserQuery ? compileSql(c.superuserQuery, dialect, authnVars) : undefined;
  const aclQuery = compileSql(c.aclQuery ?? defaultAclQuery, dialect, authzVars);
  const timeoutMs = c.timeoutMs ?? 5000;

  let pool: SqlPool;
  const creds = watchCredentials(c, ctx.watchIntervalMs, () => {
    const old = pool;
    pool = makePool(creds.current());
    ctx.logger.info('database credentials changed: new connection pool');
    ctx.dataChanged();
    old.end().catch((err: unknown) => ctx.logger.warn({ err: (err as Error).message }, 'closing the previous pool failed'));
  });
  pool = makePool(creds.current());

  const rulesOf = (rows: Row[]): Rule[] =>
    rows.flatMap((row) => {
      try {
        return parseRule(row);
      } catch (err) {
        ctx.logger.warn({ err: (err as Error).message }, 'ACL row skipped');
        return [];
      }
    });

  return {
    name: ctx.name,
    type: c.type,
    async authenticate(attempt) {
      if (attempt.username === undefined || attempt.username === '') return { decision: 'ignore' };
      const values = valuesOfAttempt(attempt);
      const rows = await pool.query(authQuery(values), timeoutMs);
      const row = rows[0];
      if (!row) return { decision: 'ignore' };
      const result = await checkUserRecord(row, attempt.password, hash);
      if (result.decision === 'allow' && superuserQuery) {
        const su = (await pool.query(superuserQuery(values), timeoutMs))[0];
        result.superuser = su !== undefined && isTruthySuperuser(su.is_superuser ?? Object.values(su)[0]);
      }
      return result;
    },
    async authorize(client, request) {
      const rows = await pool.query(aclQuery(valuesOfClient(client)), timeoutMs);
      return evaluateAcl(rulesOf(rows), request, valuesOfClient(client));
    },
    async close() {
      creds.stop();
      await pool.end();
    },
  };
}
