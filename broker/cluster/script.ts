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

  /** Replies as strings (numbers stay numbers); arguments may be binary. */
  async run(redis: Redis, keys: string[], args: Arg[]): Promise<unknown> {
    // The typed methods, not call(): with auto-pipelining on, ioredis 6 loses call()'s command name.
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
      return await redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}
