// Owns the failure handling of one auth source's calls, as a circuit breaker. Every call is bounded
// by a timeout, and at most `maxInFlight` calls are on the source at once; further calls wait in
// FIFO order for a slot — never refused for a local reason, since a refusal becomes a deny (a
// SUBSCRIBE with 200 filters must not get 136 of them refused). The wait is bounded by whoever
// makes calls: one async step per connection, at most 16 calls in flight per SUBSCRIBE or
// re-check (authorization.ts many). A failure opens the circuit: calls fail fast for a backoff
// (100 ms doubling to 10 s), waiting ones too when their turn comes; when it expires the circuit
// is half-open and exactly one probe call goes through while the others keep failing fast; a
// success closes it. What a failure means (deny, skip) is the chain's business (chain.ts).
import type { Logger } from 'pino';
import { BackendError } from './source.ts';

export const backoffBaseMs = 100;
export const backoffMaxMs = 10_000;
/**
 * Calls in flight per source before further ones wait. Above the pools a healthy backend works
 * with (SQL default 8, HTTP 64 sockets, the benchmark's 32 concurrent CONNECTs); a larger SQL pool
 * raises it (see maxInFlightFor).
 */
export const minMaxInFlight = 64;

/** The cap for a source: the constant, or twice the configured pool (a queue as deep as the pool). */
export function maxInFlightFor(poolSize: number | undefined): number {
  return Math.max(minMaxInFlight, 2 * (poolSize ?? 0));
}

/** A call refused without reaching the backend (circuit open, probe in flight). */
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
  /** Calls waiting for a slot, oldest first; a finishing call hands its slot to the first. */
  readonly #waiting: (() => void)[] = [];

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

  /** Calls waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Throws SourceUnavailable while the circuit is open (or half-open with its probe out). */
  #refuseWhileOpen(): void {
    if (this.#failures === 0) return;
    const t = this.#o.now();
    if (t < this.#retryAt) throw new SourceUnavailable(this.#o.name, `backend unavailable, next retry in ${this.#retryAt - t} ms`);
    if (this.#probing) throw new SourceUnavailable(this.#o.name, 'backend unavailable, a probe call is in flight');
  }

  /** A slot for one call: at once when one is free (and nobody waits before us), else in turn. */
  async #acquire(): Promise<void> {
    if (this.#inFlight < this.#o.maxInFlight && this.#waiting.length === 0) {
      this.#inFlight++;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  #releaseSlot(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next(); // the slot passes on: #inFlight stays
    else this.#inFlight--;
  }

  /** Runs one call; throws SourceUnavailable when refused, BackendError when the call failed. */
  async run<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const { name } = this.#o;
    this.#refuseWhileOpen();
    await this.#acquire();
    let probe = false;
    try {
      this.#refuseWhileOpen(); // the circuit may have opened while this call waited
      probe = this.#failures > 0;
      if (probe) this.#probing = true;
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
      if (probe) this.#probing = false;
      this.#releaseSlot();
    }
  }
}
