// Owns the `redis` source (ioredis). Authentication: `HMGET mqtt_user:${username} password_hash
// salt is_superuser` (EMQX 5; `password` accepted as the EMQX 4 field) or HGET/HGETALL; each
// template word is one argument, so a username cannot add arguments. Authorization: `HGETALL
// mqtt_acl:${username}` where each field is a topic filter and the value the allowed action;
// Redis rules are allow-only (EMQX). Credentials come from files; a change reconnects.
import { Redis } from 'ioredis';
import type { RedisSourceConfig } from '../config.ts';
import { evaluateAcl, parseRedisAcl, type Rule } from '../acl.ts';
import { compileRedisCommand, TemplateError, type PlaceholderName } from '../placeholders.ts';
import { checkPasswordHashConfig, defaultPasswordHash } from '../password.ts';
import { checkUserRecord, valuesOfAttempt, valuesOfClient, type AuthSource, type SourceContext } from '../source.ts';
import { tlsOptions, watchCredentials, type SqlCredentials } from './sql.ts';

/** EMQX 5's default plus `password`, so EMQX 4 hashes (field `password`) work unchanged. */
export const defaultRedisAuthCommand = 'HMGET mqtt_user:${username} password_hash salt is_superuser password';
export const defaultRedisAclCommand = 'HGETALL mqtt_acl:${username}';

const authnVars = new Set<PlaceholderName>(['username', 'clientid', 'peerhost', 'cert_common_name', 'cert_subject']);

type Command = ReturnType<typeof compileRedisCommand>;

/** The authentication and ACL commands, checked to be the forms this source knows how to read. */
function commandsOf(c: RedisSourceConfig): { authCmd: Command; aclCmd: Command } {
  const authCmd = compileRedisCommand(c.authCommand ?? defaultRedisAuthCommand, authnVars);
  if (!['HMGET', 'HGET', 'HGETALL'].includes(authCmd.command)) throw new TemplateError(c.authCommand ?? '', 'authCommand must be HMGET, HGET or HGETALL');
  const aclCmd = compileRedisCommand(c.aclCommand ?? defaultRedisAclCommand, authnVars);
  if (aclCmd.command !== 'HGETALL') throw new TemplateError(c.aclCommand ?? '', 'aclCommand must be HGETALL');
  return { authCmd, aclCmd };
}

/** A client for the configured server with these credentials; reconnects forever with backoff. */
function connectRedis(c: RedisSourceConfig, ctx: SourceContext, creds: SqlCredentials, tls: ReturnType<typeof tlsOptions>): Redis {
  const timeoutMs = c.timeoutMs ?? 5000;
  const r = new Redis({
    host: c.host,
    port: c.port,
    db: c.db ?? 0,
    ...(creds.user !== undefined ? { username: creds.user } : {}),
    ...(creds.password !== undefined ? { password: creds.password } : {}),
    ...(tls ? { tls } : {}),
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
    // Reconnect forever with backoff: a Redis that comes back is used again without a restart.
    retryStrategy: (times) => Math.min(times * 200, 5000),
    connectionName: `enclave-auth-${ctx.name}`,
  });
  r.on('error', (err: Error) => ctx.logger.warn({ err: err.message }, 'redis connection error'));
  return r;
}

/** The user record the authentication command reads; undefined when there is none. */
async function fetchRecord(redis: Redis, authCmd: Command, args: string[]): Promise<Record<string, unknown> | undefined> {
  const [key, ...fields] = args;
  if (key === undefined) return undefined;
  if (authCmd.command === 'HGETALL') {
    const h = await redis.hgetall(key);
    return Object.keys(h).length === 0 ? undefined : h;
  }
  const values = authCmd.command === 'HGET' ? [await redis.hget(key, fields[0] ?? 'password')] : await redis.hmget(key, ...fields);
  if (values.every((v) => v === null)) return undefined;
  const rec: Record<string, unknown> = {};
  fields.forEach((f, i) => {
    if (values[i] !== null && values[i] !== undefined) rec[f] = values[i];
  });
  if (authCmd.command === 'HGET' && fields.length === 0) rec.password = values[0];
  return rec;
}

export function createRedisSource(c: RedisSourceConfig, ctx: SourceContext): AuthSource {
  const hash = c.passwordHash ?? defaultPasswordHash;
  checkPasswordHashConfig(hash);
  const { authCmd, aclCmd } = commandsOf(c);
  const tls = tlsOptions(c.tls);
  let redis: Redis;
  const creds = watchCredentials(c, ctx.watchIntervalMs, () => {
    const old = redis;
    redis = connectRedis(c, ctx, creds.current(), tls);
    ctx.logger.info('redis credentials changed: reconnected');
    ctx.dataChanged();
    old.disconnect();
  });
  redis = connectRedis(c, ctx, creds.current(), tls);
  return {
    name: ctx.name,
    type: 'redis',
    async authenticate(attempt) {
      if (attempt.username === undefined || attempt.username === '') return { decision: 'ignore' };
      const rec = await fetchRecord(redis, authCmd, authCmd.args(valuesOfAttempt(attempt)));
      if (!rec) return { decision: 'ignore' };
      return checkUserRecord(rec, attempt.password, hash);
    },
    async authorize(client, request) {
      const [key] = aclCmd.args(valuesOfClient(client));
      if (key === undefined) return 'ignore';
      const h = await redis.hgetall(key);
      let rules: Rule[];
      try {
        rules = parseRedisAcl(h);
      } catch (err) {
        ctx.logger.warn({ err: (err as Error).message }, 'ACL hash skipped');
        return 'ignore';
      }
      return evaluateAcl(rules, request, valuesOfClient(client));
    },
    async close() {
      creds.stop();
      redis.disconnect();
    },
  };
}
