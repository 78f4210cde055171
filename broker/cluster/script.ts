// Owns running a Lua script on Redis by its SHA1, loading it again when Redis forgot it (a restart,
// SCRIPT FLUSH). Every multi-key change of the cluster state is one script, so it is atomic and
// fenced (session writes check the owner's epoch inside the script).
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

type Arg = string | Buffer | number;

export class Script {
  /** Every script this process defines (they are module constants): loadAll() loads them. */
  private static readonly all: Script[] = [];
  readonly sha: string;
  readonly source: string;

  constructor(source: string) {
    this.source = source;
    this.sha = createHash('sha1').update(source).digest('hex');
    Script.all.push(this);
  }

  /**
   * Loads every script before the link is declared up (link.ts `prepare`). Without it the first
   * calls after a connect to an empty Redis fail with NOSCRIPT and are sent again as EVAL, after
   * calls that followed them: pipelined writes of one session (queue appends, in-flight set and
   * delete) would land out of order.
   */
  static async loadAll(redis: Redis): Promise<void> {
    await Promise.all(Script.all.map((s) => redis.script('LOAD', s.source)));
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
