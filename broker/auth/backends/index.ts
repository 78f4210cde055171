// Owns the map from a source's `type` to its implementation. Each backend is imported when a
// source of its type is configured: loading them all (the mysql2, pg and ioredis clients among
// them) cost every broker ~16 MB of RSS at start, whatever its config used.
import type { AuthSourceConfig } from '../config.ts';
import type { AuthSource, SourceContext } from '../source.ts';

export async function createSource(name: string, c: AuthSourceConfig, ctx: SourceContext): Promise<AuthSource> {
  try {
    switch (c.type) {
      case 'builtin':
        return (await import('./builtin.ts')).createBuiltinSource(c, ctx);
      case 'postgres':
        return (await import('./postgres.ts')).createPostgresSource(c, ctx);
      case 'mysql':
        return (await import('./mysql.ts')).createMysqlSource(c, ctx);
      case 'redis':
        return (await import('./redis.ts')).createRedisSource(c, ctx);
      case 'http':
        return (await import('./http.ts')).createHttpSource(c, ctx);
      case 'jwt':
        return (await import('./jwt.ts')).createJwtSource(c, ctx);
      case 'x509':
        return (await import('./x509.ts')).createX509Source(c, ctx);
      default:
        throw new Error(`unknown type "${(c as { type: unknown }).type as string}"`);
    }
  } catch (err) {
    throw new Error(`auth source "${name}": ${(err as Error).message}`, { cause: err });
  }
}
