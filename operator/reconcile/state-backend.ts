// The managed state backend's reads during reconcile: its password (generated once, then read back
// from the runtime namespace's `redis` Secret, so it never changes under running pods and the
// desired state stays the same across reconciles and operator restarts) and whether its Redis is
// available (the MqttDeployment is Ready only then). The objects themselves are built by
// resources/redis.ts and applied with everything else.
import { randomBytes } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { ownedBy } from '../api/names.ts';
import type { MqttDeployment } from '../api/types.ts';
import type { OperatorConfig } from '../config.ts';
import { cachedDeployment } from '../kube/informers.ts';
import { apiErrorMessage } from '../kube/client.ts';
import { ownerOf, targetNamespace } from '../resources/context.ts';
import { managedRedisSpec, REDIS_NAME, REDIS_PASSWORD_KEY, redisSelector } from '../resources/redis.ts';
import { podProblem } from '../status/pods.ts';
import type { ControllerDeps } from './mqtt-deployment.ts';

/**
 * What keeps a managed Redis from being run here at all: with namespaced Secret access
 * (rbac.tenantSecretAccess=namespaced) the operator may not read runtime Secrets, so it could not
 * read the generated password back and would change it on its next start.
 */
export function stateBackendViolations(md: MqttDeployment, config: Pick<OperatorConfig, 'tenantNamespaces'>): string[] {
  if (managedRedisSpec(md) === undefined || config.tenantNamespaces === undefined) return [];
  return ['spec.state.redis.managed: the operator runs with namespaced Secret access (Helm rbac.tenantSecretAccess=namespaced) and cannot keep a managed Redis\' password; use spec.state.redis.external, or ask the platform team for tenantSecretAccess=cluster'];
}

/**
 * The managed Redis' password: the one in the runtime `redis` Secret when there is one of ours,
 * else a new one (32 random bytes, base64url: no character redis.conf would need quoted). The
 * `secrets` cache holds the operator's own Secrets; it may be behind the apply that created the
 * Secret, so a miss is checked with one read (one reconcile per key runs at a time: that apply has
 * finished). Undefined without a managed Redis, or where it is refused (stateBackendViolations).
 */
export async function managedRedisPassword(deps: Pick<ControllerDeps, 'informers' | 'client' | 'config'>, md: MqttDeployment): Promise<string | undefined> {
  if (managedRedisSpec(md) === undefined || stateBackendViolations(md, deps.config).length > 0) return undefined;
  const namespace = targetNamespace(md);
  const owner = ownerOf(md);
  const ours = (s: V1Secret | null | undefined): V1Secret | undefined => (s && ownedBy(s.metadata?.labels, owner) ? s : undefined);
  const secret = ours(deps.informers.secrets.get(REDIS_NAME, namespace)) ?? ours(await deps.client.get<V1Secret>({ apiVersion: 'v1', kind: 'Secret', namespace, name: REDIS_NAME }));
  const kept = secret?.data?.[REDIS_PASSWORD_KEY];
  return kept ? Buffer.from(kept, 'base64').toString('utf8') : randomBytes(32).toString('base64url');
}

/**
 * Why the managed Redis is not available (undefined when it is, or when there is none): its
 * Deployment has no available pod of its current template. The pod's waiting reason is added when
 * the kubelet gives one; never a value from the Secret.
 */
export async function stateBackendUnavailable(deps: Pick<ControllerDeps, 'informers' | 'client' | 'now' | 'log'>, md: MqttDeployment): Promise<string | undefined> {
  if (managedRedisSpec(md) === undefined) return undefined;
  const namespace = targetNamespace(md);
  const dep = cachedDeployment(deps.informers, REDIS_NAME, namespace);
  const current = dep !== undefined && ownedBy(dep.metadata?.labels, ownerOf(md)) && (dep.status?.observedGeneration ?? 0) >= (dep.metadata?.generation ?? 0);
  if (current && (dep.status?.availableReplicas ?? 0) >= 1) return undefined;
  let why = '';
  try {
    const problem = podProblem(await deps.client.listPods(namespace, redisSelector()), deps.now());
    if (problem) why = ` (${problem.reason})`;
  } catch (err) {
    deps.log.debug({ namespace, err: apiErrorMessage(err) }, 'Listing Redis pods failed');
  }
  return `The managed Redis (Deployment ${REDIS_NAME} in namespace ${namespace}) is not available${why}; the broker replicas share their state through it.`;
}
