// Owns running a Lua script on Redis by its SHA1, loading it again when Redis forgot it (a restart,
// SCRIPT FLUSH). Every multi-key change of the cluster state is one script, so it is atomic and
// fenced (session writes check the owner's epoch inside the script).
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

type Arg = string | Buffer | number;

export class Script {
  readonly sha: string;
  readonly source: string;

  constructor(source: string) {
    this.source = source;
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** Replies as strings (numbers stay numbers). */
  run(redis: Redis, keys: string[], args: Arg[]): Promise<unknown> {
    return this.exec(redis, keys, args, false);
  }

  /** Replies with bulk strings as Buffers (binary envelopes). */
  runBuffer(redis: Redis, keys: string[], args: Arg[]): Promise<unknown> {
    return this.exec(redis, keys, args, true);
  }

  private async exec(redis: Redis, keys: string[], args: Arg[], binary: boolean): Promise<unknown> {
    const call = (cmd: string, first: string): Promise<unknown> => (binary
      ? redis.callBuffer(cmd, first, keys.length, ...keys, ...args)
      : redis.call(cmd, first, keys.length, ...keys, ...args));
    try {
      return await call('EVALSHA', this.sha);
    } catch (err) {
      if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
      return call('EVAL', this.source);
    }
  }
}
