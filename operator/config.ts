// Operator configuration from the environment (set by the Helm chart), with defaults for local runs.
export interface OperatorConfig {
  /** Broker image used when an MqttDeployment sets none. */
  defaultImage: string;
  /** Namespace the operator runs in: admin ports are reachable from here only, the leader Lease lives here. */
  operatorNamespace: string;
  leaseName: string;
  /** Port of /healthz /readyz /metrics; 0 = any free port. */
  metricsPort: number;
  metricsHost: string;
  /** Periodic full re-queue of every object (catches anything an event missed). */
  resyncSeconds: number;
  clusterDomain: string;
  identity: string;
  logLevel: string;
}

export function operatorConfigFromEnv(env: NodeJS.ProcessEnv = process.env): OperatorConfig {
  return {
    defaultImage: env.ENCLAVE_BROKER_IMAGE ?? 'ghcr.io/enclave/broker:0.1.0',
    operatorNamespace: env.ENCLAVE_OPERATOR_NAMESPACE ?? 'enclave-system',
    leaseName: env.ENCLAVE_LEASE_NAME ?? 'enclave-operator-leader',
    metricsPort: Number(env.ENCLAVE_METRICS_PORT ?? 8080),
    metricsHost: env.ENCLAVE_METRICS_HOST ?? '0.0.0.0',
    resyncSeconds: Number(env.ENCLAVE_RESYNC_SECONDS ?? 300),
    clusterDomain: env.ENCLAVE_CLUSTER_DOMAIN ?? 'cluster.local',
    identity: env.POD_NAME ?? `${env.HOSTNAME ?? 'local'}-${process.pid}`,
    logLevel: env.ENCLAVE_LOG_LEVEL ?? 'info',
  };
}
