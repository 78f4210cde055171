// Owns the failure handling of one auth source's calls, as a circuit breaker. Every call is bounded
// by a timeout, and at most `maxInFlight` calls wait on the source at once (a hanging backend then
// holds a bounded number of CONNECTs, not every one that arrives while it hangs). A failure opens
// the circuit: calls fail fast for a backoff (100 ms doubling to 10 s); when it expires the circuit
// is half-open and exactly one probe call goes through while the others keep failing fast; a
// success closes it. What a failure means (deny, skip) is the chain's business (chain.ts).
import type { Logger } from 'pino';
import { BackendError } from './source.ts';

export const backoffBaseMs = 100;
export const backoffMaxMs = 10_000;
/**
 * Calls in flight per source before further ones fail fast. Above the pools a healthy backend
 * works with (SQL default 8, HTTP 64 sockets, the benchmark's 32 concurrent CONNECTs) so only a
 * backend that stopped answering reaches it; a larger SQL pool raises it (see maxInFlightFor).
 */
export const minMaxInFlight = 64;

/** The cap for a source: the constant, or twice the configured pool (a queue as deep as the pool). */
export function maxInFlightFor(poolSize: number | undefined): number {
  return Math.max(minMaxInFlight, 2 * (poolSize ?? 0));
}

/** A call refused without reaching the backend (circuit open, probe in flight, too many in flight). */
export class SourceUnavailable extends BackendError {}

export interface CircuitOptions {
  name: string;
  timeoutMs: number;
  maxInFlight: number;
  now: () => number;
  logger: Logger;
}

export type CircuitState = 'closed' | 'open' | 'half-open';

async function withTimeout<T>(ms: number, fn: (signal: AbortSignal) => Promise<T>, what: string): Promise<T> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ac.abort();
      reject(new BackendError(what, `no answer within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([fn(ac.signal), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class SourceCircuit {
  readonly #o: CircuitOptions;
  /** Consecutive failures seen by probes (0 = closed); sets the backoff. */
  #failures = 0;
  #retryAt = 0;
  #probing = false;
  #inFlight = 0;

  constructor(options: CircuitOptions) {
    this.#o = options;
  }

  get state(): CircuitState {
    if (this.#failures === 0) return 'closed';
    return this.#o.now() < this.#retryAt || this.#probing ? 'open' : 'half-open';
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Runs one call; throws SourceUnavailable when refused, BackendError when the call failed. */
  async run<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const { name } = this.#o;
    if (this.#failures > 0) {
      const t = this.#o.now();
      if (t < this.#retryAt) throw new SourceUnavailable(name, `backend unavailable, next retry in ${this.#retryAt - t} ms`);
      if (this.#probing) throw new SourceUnavailable(name, 'backend unavailable, a probe call is in flight');
    }
    if (this.#inFlight >= this.#o.maxInFlight) throw new SourceUnavailable(name, `${this.#inFlight} calls already waiting on the backend`);
    const probe = this.#failures > 0;
    if (probe) this.#probing = true;
    this.#inFlight++;
    try {
      const result = await withTimeout(this.#o.timeoutMs, fn, name);
      if (this.#failures > 0) this.#o.logger.info({ source: name, after: this.#failures }, 'auth source recovered');
      this.#failures = 0;
      return result;
    } catch (err) {
      // Only a probe, or the first failure while closed, moves the backoff: calls that were already
      // in flight when the circuit opened failing one after another are one outage, not many.
      if (probe || this.#failures === 0) {
        this.#failures++;
        const delay = Math.min(backoffBaseMs * 2 ** (this.#failures - 1), backoffMaxMs);
        this.#retryAt = this.#o.now() + delay;
        this.#o.logger.warn({ source: name, failures: this.#failures, retryInMs: delay, err: (err as Error).message }, 'auth source failed');
      }
      throw err instanceof BackendError ? err : new BackendError(name, (err as Error).message, { cause: err });
    } finally {
      this.#inFlight--;
      if (probe) this.#probing = false;
    }
  }
}
