// Owns the map from a source's `type` to its implementation.
import type { AuthSourceConfig } from '../config.ts';
import type { AuthSource, SourceContext } from '../source.ts';
import { createBuiltinSource } from './builtin.ts';
import { createHttpSource } from './http.ts';
import { createJwtSource } from './jwt.ts';
import { createMysqlSource } from './mysql.ts';
import { createPostgresSource } from './postgres.ts';
import { createRedisSource } from './redis.ts';
import { createX509Source } from './x509.ts';

export async function createSource(name: string, c: AuthSourceConfig, ctx: SourceContext): Promise<AuthSource> {
  try {
    switch (c.type) {
      case 'builtin':
        return createBuiltinSource(c, ctx);
      case 'postgres':
        return createPostgresSource(c, ctx);
      case 'mysql':
        return createMysqlSource(c, ctx);
      case 'redis':
        return createRedisSource(c, ctx);
      case 'http':
        return createHttpSource(c, ctx);
      case 'jwt':
        return createJwtSource(c, ctx);
      case 'x509':
        return createX509Source(c, ctx);
      default:
        throw new Error(`unknown type "${(c as { type: unknown }).type as string}"`);
    }
  } catch (err) {
    throw new Error(`auth source "${name}": ${(err as Error).message}`, { cause: err });
  }
}
