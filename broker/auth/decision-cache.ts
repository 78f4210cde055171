// Owns the per-connection authorization decision cache (EMQX `authorization.cache`: default 32
// entries per client, 60 s TTL, oldest evicted first). Keyed by the connection's AuthenticatedClient object (a WeakMap,
// so a closed connection's entries go with it); `clear()` invalidates every connection at once by
// bumping a generation, which is what a source reload needs. The clock is an argument.
import type { AuthenticatedClient, AuthorizationRequest } from './hook.ts';

interface Entry {
  allowed: boolean;
  at: number;
}

interface PerClient {
  generation: number;
  entries: Map<string, Entry>;
}

export interface DecisionCacheOptions {
  maxSize: number;
  ttlMs: number;
  now?: () => number;
}

export class DecisionCache {
  readonly #maxSize: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  #generation = 0;
  #clients = new WeakMap<AuthenticatedClient, PerClient>();

  constructor(opts: DecisionCacheOptions) {
    this.#maxSize = opts.maxSize;
    this.#ttlMs = opts.ttlMs;
    this.#now = opts.now ?? Date.now;
  }

  static key(r: AuthorizationRequest): string {
    return `${r.action}\u0000${r.qos}\u0000${r.retain ? 1 : 0}\u0000${r.topic}`;
  }

  get(client: AuthenticatedClient, request: AuthorizationRequest): boolean | undefined {
    const pc = this.#clients.get(client);
    if (!pc || pc.generation !== this.#generation) return undefined;
    const key = DecisionCache.key(request);
    const e = pc.entries.get(key);
    if (!e) return undefined;
    if (this.#now() - e.at >= this.#ttlMs) {
      pc.entries.delete(key);
      return undefined;
    }
    return e.allowed;
  }

  /** Bumped by clear(); a decision started before a bump must not be stored after it. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * Stores a decision. `decidedAt` is the generation read when the decision was started: if the
   * data was reloaded meanwhile (clear()), the answer may rest on the old data and is dropped.
   */
  set(client: AuthenticatedClient, request: AuthorizationRequest, allowed: boolean, decidedAt = this.#generation): void {
    if (this.#maxSize <= 0 || this.#ttlMs <= 0 || decidedAt !== this.#generation) return;
    let pc = this.#clients.get(client);
    if (!pc || pc.generation !== this.#generation) {
      pc = { generation: this.#generation, entries: new Map() };
      this.#clients.set(client, pc);
    }
    const key = DecisionCache.key(request);
    pc.entries.delete(key);
    pc.entries.set(key, { allowed, at: this.#now() });
    // Oldest-inserted goes first (Map keeps insertion order). A hit does not reorder: with a TTL
    // every entry is re-decided soon anyway, and the hit path stays a single lookup.
    while (pc.entries.size > this.#maxSize) {
      const oldest = pc.entries.keys().next().value;
      if (oldest === undefined) break;
      pc.entries.delete(oldest);
    }
  }

  /** Number of live entries for one connection (for tests and introspection). */
  size(client: AuthenticatedClient): number {
    const pc = this.#clients.get(client);
    return pc && pc.generation === this.#generation ? pc.entries.size : 0;
  }

  clear(): void {
    this.#generation++;
  }
}
