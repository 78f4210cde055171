// Operator configuration from the environment (set by the Helm chart), with defaults for local runs.
import { policyFromJson, type PlatformPolicy } from './policy/platform.ts';

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
  /**
   * The only namespaces whose Secrets the operator may read (Helm rbac.tenantSecretAccess=namespaced,
   * ENCLAVE_TENANT_NAMESPACES, comma-separated); undefined = every namespace. CRs elsewhere are
   * reported NamespaceNotManaged instead of being half-reconciled.
   */
  tenantNamespaces?: string[];
  /** What tenants may ask for (Helm values `policy`, ENCLAVE_POLICY JSON); policy/platform.ts. */
  policy: PlatformPolicy;
}

/** The broker image the chart deploys by default (values.yaml broker.image + appVersion); a unit test keeps them equal. */
export const DEFAULT_BROKER_IMAGE = 'ghcr.io/enclave-dev/enclave-broker:0.1.0';

export function operatorConfigFromEnv(env: NodeJS.ProcessEnv = process.env): OperatorConfig {
  return {
    defaultImage: env.ENCLAVE_BROKER_IMAGE ?? DEFAULT_BROKER_IMAGE,
    operatorNamespace: env.ENCLAVE_OPERATOR_NAMESPACE ?? 'enclave-system',
    leaseName: env.ENCLAVE_LEASE_NAME ?? 'enclave-operator-leader',
    metricsPort: Number(env.ENCLAVE_METRICS_PORT ?? 8080),
    metricsHost: env.ENCLAVE_METRICS_HOST ?? '0.0.0.0',
    resyncSeconds: Number(env.ENCLAVE_RESYNC_SECONDS ?? 300),
    clusterDomain: env.ENCLAVE_CLUSTER_DOMAIN ?? 'cluster.local',
    identity: env.POD_NAME ?? `${env.HOSTNAME ?? 'local'}-${process.pid}`,
    logLevel: env.ENCLAVE_LOG_LEVEL ?? 'info',
    policy: withRedisImage(policyFromJson(env.ENCLAVE_POLICY), env.ENCLAVE_REDIS_IMAGE),
    ...(env.ENCLAVE_TENANT_NAMESPACES?.trim() ? { tenantNamespaces: env.ENCLAVE_TENANT_NAMESPACES.split(',').map((n) => n.trim()).filter((n) => n.length > 0) } : {}),
  };
}

/**
 * ENCLAVE_REDIS_IMAGE replaces the policy's managed Redis image, like ENCLAVE_BROKER_IMAGE the broker
 * image: for local runs and test nodes that hold their own build. The chart sets neither; it puts
 * policy.stateBackend.redisImage into ENCLAVE_POLICY.
 */
export function withRedisImage(policy: PlatformPolicy, image: string | undefined): PlatformPolicy {
  return image?.trim() ? { ...policy, stateBackend: { ...policy.stateBackend, redisImage: image.trim() } } : policy;
}

/** Whether the operator serves CRs in `namespace` (always, unless tenantNamespaces narrows it). */
export function managesNamespace(config: Pick<OperatorConfig, 'tenantNamespaces'>, namespace: string): boolean {
  return config.tenantNamespaces === undefined || config.tenantNamespaces.includes(namespace);
}

/** The status message of a CR in a namespace the operator does not serve. */
export function notManagedMessage(namespace: string): string {
  return `Namespace ${namespace} is not one of the operator's tenant namespaces (Helm value rbac.tenantNamespaces), so the operator may not read its Secrets. Add it to that list to serve it.`;
}
