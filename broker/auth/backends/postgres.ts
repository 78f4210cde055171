// Owns the `postgres` source's driver: a `pg` Pool with bounded size, connect and query timeouts,
// statements bound ($1…) and prepared per connection. Idle-connection errors (database restarted)
// are logged, never thrown: the pool reconnects on the next query.
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { SqlSourceConfig } from '../config.ts';
import type { AuthSource, SourceContext } from '../source.ts';
import { createSqlSource, tlsOptions, type Row, type SqlCredentials, type SqlPool } from './sql.ts';

export function createPostgresSource(c: SqlSourceConfig, ctx: SourceContext): AuthSource {
  const ssl = tlsOptions(c.tls);
  const timeoutMs = c.timeoutMs ?? 5000;
  return createSqlSource(c, ctx, (cred: SqlCredentials): SqlPool => {
    const pool = new pg.Pool({
      host: c.host,
      port: c.port,
      database: c.database,
      user: cred.user,
      password: cred.password,
      ...(ssl ? { ssl } : {}),
      max: c.poolSize ?? 8,
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      idleTimeoutMillis: 30_000,
      application_name: `enclave-auth-${ctx.name}`,
    });
    pool.on('error', (err) => ctx.logger.warn({ err: err.message }, 'idle database connection failed'));
    return {
      async query(stmt) {
        const name = `enclave_${createHash('sha1').update(stmt.text).digest('hex').slice(0, 16)}`;
        const result = await pool.query<Row>({ name, text: stmt.text, values: stmt.values });
        return result.rows;
      },
      end: () => pool.end(),
    };
  });
}
