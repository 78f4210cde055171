// Owns waiting in tests, benchmarks and the harness: a plain `sleep`, `eventually` (poll until the
// world reaches a state) and `within` (a promise, or a named timeout). Controllers, kubelets and
// brokers act asynchronously, so a test polls the world rather than sleeping for a guessed time; a
// timeout says what was waited for and the last error the check threw, so a failure can be read
// without re-running.
import { setTimeout as delay } from 'node:timers/promises';

export const sleep = (ms: number): Promise<void> => delay(ms);

function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  return JSON.stringify(err) ?? String(err);
}

/**
 * Polls `check` every `intervalMs` until it returns a value other than `undefined`/`false`, and
 * returns that value. A check that throws is retried (the world may not be there yet); after
 * `timeoutMs` the error names `what` and carries the last thrown error's message.
 */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let threw = false;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      threw = false;
    } catch (err) {
      last = err;
      threw = true;
    }
    await sleep(intervalMs);
  }
  const lastError = last === undefined ? '' : ` (last error${threw ? '' : ', before the check last answered "not yet"'}: ${describeError(last)})`;
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}${lastError}`, last === undefined ? undefined : { cause: last });
}

/** `promise`, or a rejection naming `what` after `timeoutMs` (for events that may never come). */
export async function within<T>(what: string, promise: Promise<T>, timeoutMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
