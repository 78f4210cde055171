// Owns the auth chain: the loop over configured sources that implements AuthHook with EMQX 5
// semantics and fail-closed defaults (docs/auth-semantics.md). Authentication: sources in
// order answer allow | deny | ignore; all ignore → deny unless `authentication.allowAnonymous`; a failure → deny
// unless the source says `onBackendFailure: ignore`. Authorization: superuser → allow; the ACL the
// client brought from authentication; then sources in order; the first that does not ignore wins; else `noMatch`.
// Each source's calls go through its circuit (circuit.ts): bounded by a timeout and a cap on calls in
// flight, failing fast during a backoff, one probe at a time after it, so a dead database is not
// hammered and recovers by itself. Only decisions taken while every consulted source answered are
// cached: one taken around a failed source would outlive the outage by a TTL.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { BrokerConfig } from '../config.ts';
import type { AuthSourceConfig } from './config.ts';
import { allowAllHook } from './hook.ts';
import type { AuthenticatedClient, AuthenticationResult, AuthHook, AuthorizationRequest, ConnectAttempt } from './hook.ts';
import { evaluateAcl } from './acl.ts';
import { createSource } from './backends/index.ts';
import { maxInFlightFor, SourceCircuit, SourceUnavailable } from './circuit.ts';
import { DecisionCache } from './decision-cache.ts';
import { authSourceProblems } from './source-schema.ts';
import { DEFAULT_WATCH_INTERVAL_MS } from '../mounted-files.ts';
import { createAuthMetrics, noMetrics, type AuthMetrics, type Stage } from './metrics.ts';
import { valuesOfClient, type AuthSource } from './source.ts';

export interface AuthChainDeps {
  logger: Logger;
  metrics?: { registry: Registry };
  /** Clock for the decision cache and backoff (tests). */
  now?: () => number;
  /** How often mounted files are polled for changes (default 1000 ms). */
  fileWatchIntervalMs?: number;
}

/** Per-call timeout when a source does not set `timeoutMs`. */
export const defaultTimeoutMs = 5000;

/** A JWT carried in the username (jwt source `from: username`) is a credential: never logged. */
export function loggable(username: string | undefined): string | undefined {
  return username !== undefined && /^eyJ[\w-]*\.[\w-]*\.[\w-]*$/.test(username) ? '<jwt>' : username;
}

interface SourceState {
  source: AuthSource;
  config: AuthSourceConfig;
  circuit: SourceCircuit;
}

/** An authorization answer; `cacheable` is false when a source failed on the way to it. */
interface Decision {
  allowed: boolean;
  source: string;
  cacheable: boolean;
  /** Sources that failed (skipped by `onBackendFailure: ignore`, or the one that denied). */
  failed?: string[];
}

class ChainError extends Error {
  constructor(message: string) {
    super(`auth chain: ${message}`);
    this.name = 'ChainError';
  }
}

/**
 * The hook for a config: nothing configured and anonymous allowed → allow-all (per-message
 * authorization skipped, authorization.ts); everything else goes through the auth chain.
 */
export async function createAuthHook(config: BrokerConfig, deps: AuthChainDeps): Promise<AuthHook> {
  if (config.authentication.chain.length === 0 && config.authorization.chain.length === 0
    && config.authentication.allowAnonymous && config.authorization.noMatch === 'allow') {
    return allowAllHook;
  }
  return createAuthChain(config, deps);
}

export async function createAuthChain(config: BrokerConfig, deps: AuthChainDeps): Promise<AuthHook> {
  const log = deps.logger.child({ component: 'auth' });
  const now = deps.now ?? Date.now;
  const cacheConfig = config.authorization.cache;
  const cache = new DecisionCache({ maxSize: cacheConfig.enabled ? cacheConfig.maxSize : 0, ttlMs: cacheConfig.ttlSeconds * 1000, now });
  const changeListeners: (() => void)[] = [];
  const dataChanged = (): void => {
    cache.clear();
    for (const listener of changeListeners) listener();
  };
  const states = await buildSources(config, { log, now, dataChanged, watchIntervalMs: deps.fileWatchIntervalMs ?? DEFAULT_WATCH_INTERVAL_MS });
  const metrics: AuthMetrics = deps.metrics ? createAuthMetrics(deps.metrics.registry) : noMetrics;
  const chain = new AuthChain({ config, log, metrics, cache, states });
  return {
    authenticate: (attempt) => chain.authenticate(attempt),
    authorize: (client, request) => chain.authorize(client, request),
    authorizeSync: (client, request) => chain.authorizeSync(client, request),
    clearCache: () => cache.clear(),
    onDataChanged: (listener) => {
      changeListeners.push(listener);
    },
    async close() {
      await closeSources(states);
    },
  };
}

interface BuildContext {
  log: Logger;
  now: () => number;
  dataChanged: () => void;
  watchIntervalMs: number;
}

/**
 * Every source named by either chain, built once, in a stable order, each behind its circuit.
 * Sources already built are closed when a later one fails.
 */
async function buildSources(config: BrokerConfig, ctx: BuildContext): Promise<Map<string, SourceState>> {
  const names = [...new Set([...config.authentication.chain, ...config.authorization.chain])];
  const problems = authSourceProblems(Object.fromEntries(names.filter((n) => n in config.sources).map((n) => [n, config.sources[n]])));
  if (problems.length > 0) throw new ChainError(`invalid sources:\n  ${problems.join('\n  ')}`);
  const states = new Map<string, SourceState>();
  try {
    for (const name of names) states.set(name, await buildSource(name, config.sources[name], ctx));
  } catch (err) {
    await closeSources(states);
    throw err;
  }
  checkRoles(config, states);
  return states;
}

async function buildSource(name: string, sc: AuthSourceConfig | undefined, ctx: BuildContext): Promise<SourceState> {
  if (!sc) throw new ChainError(`no source named "${name}" in sources`);
  const source = await createSource(name, sc, {
    name,
    logger: ctx.log.child({ source: name }),
    dataChanged: ctx.dataChanged,
    watchIntervalMs: ctx.watchIntervalMs,
  });
  const circuit = new SourceCircuit({
    name,
    timeoutMs: sc.timeoutMs ?? defaultTimeoutMs,
    maxInFlight: maxInFlightFor('poolSize' in sc ? sc.poolSize : undefined),
    now: ctx.now,
    logger: ctx.log,
  });
  return { source, config: sc, circuit };
}

/**
 * What each source can do is known from its config alone (source-schema.ts sourceRoles, which the
 * operator checks before it renders); the instances are the final word.
 */
function checkRoles(config: BrokerConfig, states: Map<string, SourceState>): void {
  for (const name of config.authentication.chain) {
    if (!states.get(name)?.source.authenticate) throw new ChainError(`source "${name}" (${config.sources[name]?.type}) cannot authenticate`);
  }
  for (const name of config.authorization.chain) {
    if (!states.get(name)?.source.authorize) throw new ChainError(`source "${name}" (${config.sources[name]?.type}) cannot authorize`);
  }
}

async function closeSources(states: Map<string, SourceState>): Promise<void> {
  await Promise.allSettled([...states.values()].map((s) => s.source.close()));
}

const seconds = (started: bigint): number => Number(process.hrtime.bigint() - started) / 1e9;

interface ChainParts {
  config: BrokerConfig;
  log: Logger;
  metrics: AuthMetrics;
  cache: DecisionCache;
  states: Map<string, SourceState>;
}

/** The loops over the sources: authentication, authorization, and the access log of each decision. */
class AuthChain {
  private readonly config: BrokerConfig;
  private readonly log: Logger;
  private readonly metrics: AuthMetrics;
  private readonly cache: DecisionCache;
  private readonly states: Map<string, SourceState>;

  constructor(parts: ChainParts) {
    this.config = parts.config;
    this.log = parts.log;
    this.metrics = parts.metrics;
    this.cache = parts.cache;
    this.states = parts.states;
  }

  private accessLog(fields: Record<string, unknown>): void {
    if (this.config.logging.accessLog) this.log.info(fields, 'auth decision');
    else this.log.debug(fields, 'auth decision');
  }

  /** Whether an access-log line would be written at all (skips building it on the hot path). */
  private logging(): boolean {
    return this.config.logging.accessLog || this.log.isLevelEnabled('debug');
  }

  /** Runs one source call through its circuit; throws BackendError (counted as an error) on failure. */
  private async call<T>(state: SourceState, stage: Stage, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint();
    try {
      return await state.circuit.run(fn);
    } catch (err) {
      this.metrics.decision(state.source.name, stage, 'error', err instanceof SourceUnavailable ? undefined : seconds(started));
      throw err;
    }
  }

  /**
   * Sources in order; the first that does not ignore decides. Every source ignoring: allowed only
   * with `authentication.allowAnonymous` (a client no source claimed; not the listener's flag,
   * handlers/connect-auth.ts).
   */
  async authenticate(attempt: ConnectAttempt): Promise<AuthenticationResult> {
    const who = { clientId: attempt.clientId, username: loggable(attempt.username), peer: attempt.peerHost, action: 'connect' };
    for (const name of this.config.authentication.chain) {
      const answer = await this.authenticateWith(this.states.get(name)!, attempt, who);
      if (answer !== 'ignore') return answer;
    }
    if (this.config.authentication.allowAnonymous) {
      this.accessLog({ ...who, source: 'anonymous', result: 'allow' });
      return { outcome: 'allow', superuser: false, acl: undefined, expiresAt: undefined, source: 'anonymous' };
    }
    this.accessLog({ ...who, source: undefined, result: 'deny', reason: 'no-source-matched' });
    return { outcome: 'deny', reason: 'not-authorized', source: undefined };
  }

  /** One source's answer: a result, or `ignore` (not mine, or failed with `onBackendFailure: ignore`). */
  private async authenticateWith(state: SourceState, attempt: ConnectAttempt, who: Record<string, unknown>): Promise<AuthenticationResult | 'ignore'> {
    const name = state.source.name;
    const started = process.hrtime.bigint();
    let r;
    try {
      r = await this.call(state, 'authn', (signal) => state.source.authenticate!(attempt, signal));
    } catch (err) {
      const result = state.config.onBackendFailure === 'ignore' ? 'ignore' : 'deny';
      this.accessLog({ ...who, source: name, result, reason: 'backend-failure', error: (err as Error).message });
      return result === 'ignore' ? 'ignore' : { outcome: 'deny', reason: 'unavailable', source: name };
    }
    this.metrics.decision(name, 'authn', r.decision, seconds(started));
    if (r.decision === 'ignore') return 'ignore';
    if (r.decision === 'deny') {
      this.accessLog({ ...who, source: name, result: 'deny', reason: r.reason });
      return { outcome: 'deny', reason: r.reason, source: name };
    }
    this.accessLog({ ...who, source: name, result: 'allow', superuser: r.superuser, ...(r.identity !== undefined && r.identity !== attempt.username ? { identity: loggable(r.identity) } : {}) });
    return { outcome: 'allow', superuser: r.superuser, acl: r.acl, expiresAt: r.expiresAt, source: name, ...(r.identity !== undefined ? { identity: r.identity } : {}) };
  }

  private async decide(client: AuthenticatedClient, request: AuthorizationRequest): Promise<Decision> {
    if (client.superuser) return { allowed: true, source: 'superuser', cacheable: false };
    if (client.acl && client.acl.length > 0) {
      const v = evaluateAcl(client.acl, request, valuesOfClient(client));
      if (v !== 'ignore') return { allowed: v === 'allow', source: 'client-acl', cacheable: true };
    }
    // A source skipped because it failed might have answered differently: whatever is decided
    // after it holds for this request only, never for the cache's TTL.
    const failed: string[] = [];
    const after = (d: Omit<Decision, 'cacheable' | 'failed'>): Decision =>
      failed.length === 0 ? { ...d, cacheable: true } : { ...d, cacheable: false, failed };
    for (const name of this.config.authorization.chain) {
      const state = this.states.get(name)!;
      const started = process.hrtime.bigint();
      let v;
      try {
        v = await this.call(state, 'authz', (signal) => state.source.authorize!(client, request, signal));
      } catch {
        failed.push(name);
        if (state.config.onBackendFailure === 'ignore') continue;
        return { allowed: false, source: name, cacheable: false, failed };
      }
      this.metrics.decision(name, 'authz', v, seconds(started));
      if (v !== 'ignore') return after({ allowed: v === 'allow', source: name });
    }
    return after({ allowed: this.config.authorization.noMatch === 'allow', source: 'no-match' });
  }

  /** Superuser or cache hit: answered without I/O. */
  authorizeSync(client: AuthenticatedClient, request: AuthorizationRequest): boolean | undefined {
    if (client.superuser) return true;
    const cached = this.cache.get(client, request);
    if (cached === undefined) return undefined;
    this.metrics.cacheHit();
    if (this.logging()) {
      const a = client.attempt;
      this.accessLog({ clientId: a.clientId, username: loggable(a.username), peer: a.peerHost, action: request.action, topic: request.topic, source: 'cache', result: cached ? 'allow' : 'deny' });
    }
    return cached;
  }

  async authorize(client: AuthenticatedClient, request: AuthorizationRequest): Promise<boolean> {
    const known = this.authorizeSync(client, request);
    if (known !== undefined) return known;
    const who = { clientId: client.attempt.clientId, username: loggable(client.attempt.username), peer: client.attempt.peerHost, action: request.action, topic: request.topic };
    let d;
    const generation = this.cache.generation;
    try {
      d = await this.decide(client, request);
    } catch (err) {
      // authorize must never throw (hook contract): an unexpected bug denies.
      this.log.error({ err, ...who }, 'authorization failed unexpectedly');
      return false;
    }
    // Only clean decisions are cached: a failing backend must neither lock the client out for a TTL
    // nor leave it an allow that the failed source might have refused.
    // ...and only if no source reloaded its data while this one was being decided.
    if (d.cacheable) this.cache.set(client, request, d.allowed, generation);
    this.accessLog({ ...who, source: d.source, result: d.allowed ? 'allow' : 'deny', ...(d.failed ? { failed: d.failed } : {}) });
    return d.allowed;
  }
}
