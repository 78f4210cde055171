// Owns the auth chain's Prometheus metrics: per source and stage (authn|authz) a decision counter
// by result (allow|deny|ignore|error) and a latency histogram, plus cache hits. Metrics are
// looked up before being created so a chain rebuilt on config reload reuses the same series.
import { Counter, Histogram, type Registry } from 'prom-client';

export type Stage = 'authn' | 'authz';
export type MetricResult = 'allow' | 'deny' | 'ignore' | 'error';

export interface AuthMetrics {
  decision(source: string, stage: Stage, result: MetricResult, seconds: number | undefined): void;
  cacheHit(): void;
}

export const noMetrics: AuthMetrics = { decision() {}, cacheHit() {} };

export function createAuthMetrics(registry: Registry): AuthMetrics {
  const decisions =
    (registry.getSingleMetric('enclave_auth_decisions_total') as Counter<'source' | 'stage' | 'result'> | undefined) ??
    new Counter({
      name: 'enclave_auth_decisions_total',
      help: 'Auth decisions per source and stage (authn = CONNECT, authz = publish/subscribe), by result',
      labelNames: ['source', 'stage', 'result'] as const,
      registers: [registry],
    });
  const latency =
    (registry.getSingleMetric('enclave_auth_source_duration_seconds') as Histogram<'source' | 'stage'> | undefined) ??
    new Histogram({
      name: 'enclave_auth_source_duration_seconds',
      help: 'Time one auth source took to answer (including failures and timeouts)',
      labelNames: ['source', 'stage'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
  const hits =
    (registry.getSingleMetric('enclave_auth_cache_hits_total') as Counter | undefined) ??
    new Counter({ name: 'enclave_auth_cache_hits_total', help: 'Authorization decisions answered from the per-connection cache', registers: [registry] });
  return {
    decision(source, stage, result, seconds) {
      decisions.inc({ source, stage, result });
      if (seconds !== undefined) latency.observe({ source, stage }, seconds);
    },
    cacheHit() {
      hits.inc();
    },
  };
}
