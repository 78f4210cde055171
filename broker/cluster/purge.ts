// Owns deleting every key of one deployment: SCAN MATCH <prefix>* + UNLINK in batches. The
// operator runs it for an external Redis before it removes the finalizer; the prefix comes from the
// MqttDeployment's UID, so nothing of another deployment (or of a re-created one) can match.
import type { Redis } from 'ioredis';
import { globEscape } from './shared.ts';

/** Keys under `prefix`, counted with SCAN (tests assert 0 after a purge). */
export async function countKeys(redis: Redis, prefix: string): Promise<number> {
  let n = 0;
  await scanPrefix(redis, prefix, (keys) => {
    n += keys.length;
    return Promise.resolve();
  });
  return n;
}

/** Deletes every key under `prefix`; resolves the number deleted. Refuses an empty prefix. */
export async function purgePrefix(redis: Redis, prefix: string): Promise<number> {
  if (prefix.length < 3) throw new RangeError(`refusing to purge with prefix "${prefix}": it would match foreign keys`);
  let deleted = 0;
  // Keys created during the scan (a replica still running) are caught by a second pass.
  for (let pass = 0; pass < 2; pass++) {
    await scanPrefix(redis, prefix, async (keys) => {
      deleted += await redis.unlink(...keys);
    });
  }
  return deleted;
}

async function scanPrefix(redis: Redis, prefix: string, batch: (keys: string[]) => Promise<void>): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${globEscape(prefix)}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await batch(keys);
  } while (cursor !== '0');
}
