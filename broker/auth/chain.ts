// Owns the auth chain: the loop over configured sources that implements AuthHook with EMQX 5
// semantics and fail-closed defaults (docs/auth-semantics.md). Authentication: sources in
// order answer allow | deny | ignore; all ignore → deny unless allowAnonymous; a failure → deny
// unless the source says `onBackendFailure: ignore`. Authorization: superuser → allow; the ACL the
// client brought from authentication; then sources in order; first match wins; else `noMatch`.
// Each source's calls go through its circuit (circuit.ts): bounded by a timeout and a cap on calls in
// flight, failing fast during a backoff, one probe at a time after it, so a dead database is not
// hammered and recovers by itself. Only decisions taken while every consulted source answered are
// cached: one taken around a failed source would outlive the outage by a TTL.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { BrokerConfig } from '../config.ts';
import type { AuthSourceConfig } from './config.ts';
import type { AuthenticatedClient, AuthenticationResult, AuthHook, AuthorizationRequest, ConnectAttempt } from './hook.ts';
import { evaluateAcl } from './acl.ts';
import { createSource } from './backends/index.ts';
import { maxInFlightFor, SourceCircuit, SourceUnavailable } from './circuit.ts';
import { DecisionCache } from './decision-cache.ts';
import { authSourceProblems } from './source-schema.ts';
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

export async function createAuthChain(config: BrokerConfig, deps: AuthChainDeps): Promise<AuthHook> {
  const log = deps.logger.child({ component: 'auth' });
  const now = deps.now ?? Date.now;
  const metrics: AuthMetrics = deps.metrics ? createAuthMetrics(deps.metrics.registry) : noMetrics;
  const accessLog = (fields: Record<string, unknown>): void => {
    if (config.logging.accessLog) log.info(fields, 'auth decision');
    else log.debug(fields, 'auth decision');
  };
  /** Whether an access-log line would be written at all (skips building it on the hot path). */
  const logging = (): boolean => config.logging.accessLog || log.isLevelEnabled('debug');
  const cacheConfig = config.authorization.cache;
  const cache = new DecisionCache({ maxSize: cacheConfig.enabled ? cacheConfig.maxSize : 0, ttlMs: cacheConfig.ttlSeconds * 1000, now });
  const changeListeners: (() => void)[] = [];
  const dataChanged = (): void => {
    cache.clear();
    for (const listener of changeListeners) listener();
  };

  // Build every source named by either chain, once, in a stable order.
  const states = new Map<string, SourceState>();
  const names = [...new Set([...config.authentication.chain, ...config.authorization.chain])];
  const problems = authSourceProblems(Object.fromEntries(names.filter((n) => n in config.sources).map((n) => [n, config.sources[n]])));
  if (problems.length > 0) throw new ChainError(`invalid sources:\n  ${problems.join('\n  ')}`);
  try {
    for (const name of names) {
      const sc = config.sources[name];
      if (!sc) throw new ChainError(`no source named "${name}" in sources`);
      const source = await createSource(name, sc, {
        name,
        logger: log.child({ source: name }),
        dataChanged,
        watchIntervalMs: deps.fileWatchIntervalMs ?? 1000,
      });
      const circuit = new SourceCircuit({
        name,
        timeoutMs: sc.timeoutMs ?? defaultTimeoutMs,
        maxInFlight: maxInFlightFor('poolSize' in sc ? sc.poolSize : undefined),
        now,
        logger: log,
      });
      states.set(name, { source, config: sc, circuit });
    }
  } catch (err) {
    await Promise.allSettled([...states.values()].map((s) => s.source.close()));
    throw err;
  }
  // What each source can do is known from its config alone (source-schema.ts sourceRoles, which the
  // operator checks before it renders); the instances are the final word.
  for (const name of config.authentication.chain) {
    if (!states.get(name)?.source.authenticate) throw new ChainError(`source "${name}" (${config.sources[name]?.type}) cannot authenticate`);
  }
  for (const name of config.authorization.chain) {
    if (!states.get(name)?.source.authorize) throw new ChainError(`source "${name}" (${config.sources[name]?.type}) cannot authorize`);
  }

  const seconds = (started: bigint): number => Number(process.hrtime.bigint() - started) / 1e9;

  /** Runs one source call through its circuit; throws BackendError (counted as an error) on failure. */
  async function call<T>(state: SourceState, stage: Stage, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint();
    try {
      return await state.circuit.run(fn);
    } catch (err) {
      metrics.decision(state.source.name, stage, 'error', err instanceof SourceUnavailable ? undefined : seconds(started));
      throw err;
    }
  }

  async function authenticate(attempt: ConnectAttempt): Promise<AuthenticationResult> {
    const who = { clientId: attempt.clientId, username: loggable(attempt.username), peer: attempt.peerHost, action: 'connect' };
    for (const name of config.authentication.chain) {
      const state = states.get(name)!;
      const started = process.hrtime.bigint();
      let r;
      try {
        r = await call(state, 'authn', (signal) => state.source.authenticate!(attempt, signal));
      } catch (err) {
        if (state.config.onBackendFailure === 'ignore') {
          accessLog({ ...who, source: name, result: 'ignore', reason: 'backend-failure', error: (err as Error).message });
          continue;
        }
        accessLog({ ...who, source: name, result: 'deny', reason: 'backend-failure', error: (err as Error).message });
        return { outcome: 'deny', reason: 'unavailable', source: name };
      }
      metrics.decision(name, 'authn', r.decision, seconds(started));
      if (r.decision === 'ignore') continue;
      if (r.decision === 'deny') {
        accessLog({ ...who, source: name, result: 'deny', reason: r.reason });
        return { outcome: 'deny', reason: r.reason, source: name };
      }
      accessLog({ ...who, source: name, result: 'allow', superuser: r.superuser, ...(r.identity !== undefined && r.identity !== attempt.username ? { identity: loggable(r.identity) } : {}) });
      return { outcome: 'allow', superuser: r.superuser, acl: r.acl, expiresAt: r.expiresAt, source: name, ...(r.identity !== undefined ? { identity: r.identity } : {}) };
    }
    if (config.authentication.allowAnonymous) {
      accessLog({ ...who, source: 'anonymous', result: 'allow' });
      return { outcome: 'allow', superuser: false, acl: undefined, expiresAt: undefined, source: 'anonymous' };
    }
    accessLog({ ...who, source: undefined, result: 'deny', reason: 'no-source-matched' });
    return { outcome: 'deny', reason: 'not-authorized', source: undefined };
  }

  async function decide(client: AuthenticatedClient, request: AuthorizationRequest): Promise<Decision> {
    if (client.superuser) return { allowed: true, source: 'superuser', cacheable: false };
    const values = valuesOfClient(client);
    if (client.acl && client.acl.length > 0) {
      const v = evaluateAcl(client.acl, request, values);
      if (v !== 'nomatch') return { allowed: v === 'allow', source: 'client-acl', cacheable: true };
    }
    // A source skipped because it failed might have answered differently: whatever is decided
    // after it holds for this request only, never for the cache's TTL.
    const failed: string[] = [];
    const after = (d: Omit<Decision, 'cacheable' | 'failed'>): Decision =>
      failed.length === 0 ? { ...d, cacheable: true } : { ...d, cacheable: false, failed };
    for (const name of config.authorization.chain) {
      const state = states.get(name)!;
      const started = process.hrtime.bigint();
      let v;
      try {
        v = await call(state, 'authz', (signal) => state.source.authorize!(client, request, signal));
      } catch {
        failed.push(name);
        if (state.config.onBackendFailure === 'ignore') continue;
        return { allowed: false, source: name, cacheable: false, failed };
      }
      metrics.decision(name, 'authz', v, seconds(started));
      if (v !== 'nomatch') return after({ allowed: v === 'allow', source: name });
    }
    return after({ allowed: config.authorization.noMatch === 'allow', source: 'no-match' });
  }

  /** Superuser or cache hit: answered without I/O. */
  function authorizeSync(client: AuthenticatedClient, request: AuthorizationRequest): boolean | undefined {
    if (client.superuser) return true;
    const cached = cache.get(client, request);
    if (cached === undefined) return undefined;
    metrics.cacheHit();
    if (logging()) {
      const a = client.attempt;
      accessLog({ clientId: a.clientId, username: loggable(a.username), peer: a.peerHost, action: request.action, topic: request.topic, source: 'cache', result: cached ? 'allow' : 'deny' });
    }
    return cached;
  }

  async function authorize(client: AuthenticatedClient, request: AuthorizationRequest): Promise<boolean> {
    const known = authorizeSync(client, request);
    if (known !== undefined) return known;
    const who = { clientId: client.attempt.clientId, username: loggable(client.attempt.username), peer: client.attempt.peerHost, action: request.action, topic: request.topic };
    let d;
    const generation = cache.generation;
    try {
      d = await decide(client, request);
    } catch (err) {
      // authorize must never throw (hook contract): an unexpected bug denies.
      log.error({ err, ...who }, 'authorization failed unexpectedly');
      return false;
    }
    // Only clean decisions are cached: a failing backend must neither lock the client out for a TTL
    // nor leave it an allow that the failed source might have refused.
    // ...and only if no source reloaded its data while this one was being decided.
    if (d.cacheable) cache.set(client, request, d.allowed, generation);
    accessLog({ ...who, source: d.source, result: d.allowed ? 'allow' : 'deny', ...(d.failed ? { failed: d.failed } : {}) });
    return d.allowed;
  }

  return {
    authenticate,
    authorize,
    authorizeSync,
    clearCache: () => cache.clear(),
    onDataChanged: (listener) => {
      changeListeners.push(listener);
    },
    async close() {
      await Promise.allSettled([...states.values()].map((s) => s.source.close()));
    },
  };
}
