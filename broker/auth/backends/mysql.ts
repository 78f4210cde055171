// Owns the `mysql` source's driver (MySQL and MariaDB): a `mysql2` pool with bounded size and a
// bounded wait queue, statements bound (?) and executed as prepared statements.
import mysql from 'mysql2/promise';
import type { SslOptions } from 'mysql2';
import type { SqlSourceConfig } from '../config.ts';
import type { AuthSource, SourceContext } from '../source.ts';
import { createSqlSource, tlsOptions, type Row, type SqlCredentials, type SqlPool } from './sql.ts';

export function createMysqlSource(c: SqlSourceConfig, ctx: SourceContext): AuthSource {
  const ssl = tlsOptions(c.tls);
  const timeoutMs = c.timeoutMs ?? 5000;
  return createSqlSource(c, ctx, (cred: SqlCredentials): SqlPool => {
    const pool = mysql.createPool({
      host: c.host,
      port: c.port,
      database: c.database,
      ...(cred.user !== undefined ? { user: cred.user } : {}),
      ...(cred.password !== undefined ? { password: cred.password } : {}),
      ...(ssl ? { ssl: ssl as SslOptions } : {}),
      connectionLimit: c.poolSize ?? 8,
      waitForConnections: true,
      queueLimit: 1000,
      connectTimeout: timeoutMs,
      enableKeepAlive: true,
      supportBigNumbers: true,
    });
    pool.pool.on('error', (err: Error) => ctx.logger.warn({ err: err.message }, 'database connection failed'));
    return {
      async query(stmt) {
        const [rows] = await pool.execute({ sql: stmt.text, timeout: timeoutMs }, stmt.values);
        return rows as Row[];
      },
      end: () => pool.end(),
    };
  });
}
