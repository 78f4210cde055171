// The managed state backend's reads during reconcile: its password (generated once, then read back
// from the runtime namespace's `redis` Secret, or with namespaced Secret access from a copy in the
// operator's namespace, so it never changes under running pods and the desired state stays the
// same across reconciles and operator restarts) and whether its Redis is available (the
// MqttDeployment is Ready only then). The objects themselves are built by
// resources/redis.ts and applied with everything else.
import { randomBytes } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { LABEL_ROLE, ownedBy, ownerLabels, ROLE_STATE_BACKEND } from '../api/names.ts';
import type { MqttDeployment } from '../api/types.ts';
import { cachedDeployment } from '../kube/informers.ts';
import { apiErrorMessage } from '../kube/client.ts';
import { ownerOf, targetNamespace } from '../resources/context.ts';
import { managedRedisSpec, REDIS_NAME, REDIS_PASSWORD_KEY, redisSelector } from '../resources/redis.ts';
import { podProblem } from '../status/pods.ts';
import type { ControllerDeps } from './mqtt-deployment.ts';

/**
 * Where the password is kept when Secret access is namespaced (rbac.tenantSecretAccess=namespaced):
 * runtime Secrets are unreadable then, so a copy lives in the operator's own namespace (readable in
 * both modes, like the tenant CAs), named after the deployment's UID; the purge deletes it.
 */
export function keptPasswordSecretName(uid: string): string {
  return `enclave-redis-${uid}`;
}

const ours = (md: MqttDeployment) => (s: V1Secret | null | undefined): V1Secret | undefined => (s && ownedBy(s.metadata?.labels, ownerOf(md)) ? s : undefined);

/** The cached Secret, else one read (the cache may be behind the apply that created it; one reconcile per key runs at a time). */
async function ownSecret(deps: Pick<ControllerDeps, 'informers' | 'client'>, md: MqttDeployment, namespace: string, name: string): Promise<V1Secret | undefined> {
  return ours(md)(deps.informers.secrets.get(name, namespace)) ?? ours(md)(await deps.client.get<V1Secret>({ apiVersion: 'v1', kind: 'Secret', namespace, name }));
}

const newPassword = (): string => randomBytes(32).toString('base64url');

/**
 * The managed Redis' password: the one in the runtime `redis` Secret when there is one of ours
 * (the `secrets` cache holds the operator's own Secrets), else a new one (32 random bytes,
 * base64url: no character redis.conf would need quoted). With namespaced Secret access, the copy in
 * the operator's namespace instead, written as soon as it is made. Undefined without a managed Redis.
 */
export async function managedRedisPassword(deps: Pick<ControllerDeps, 'informers' | 'client' | 'config'>, md: MqttDeployment): Promise<string | undefined> {
  if (managedRedisSpec(md) === undefined) return undefined;
  const decode = (s: V1Secret | undefined): string | undefined => {
    const kept = s?.data?.[REDIS_PASSWORD_KEY];
    return kept ? Buffer.from(kept, 'base64').toString('utf8') : undefined;
  };
  if (deps.config.tenantNamespaces === undefined) return decode(await ownSecret(deps, md, targetNamespace(md), REDIS_NAME)) ?? newPassword();
  const namespace = deps.config.operatorNamespace;
  const name = keptPasswordSecretName(ownerOf(md).uid);
  const kept = decode(await ownSecret(deps, md, namespace, name));
  if (kept !== undefined) return kept;
  const password = newPassword();
  await deps.client.apply<V1Secret>({
    apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
    metadata: { name, namespace, labels: { ...ownerLabels(ownerOf(md)), [LABEL_ROLE]: ROLE_STATE_BACKEND } },
    stringData: { [REDIS_PASSWORD_KEY]: password },
  });
  return password;
}

/** At the purge: the operator-namespace copy of the password (namespaced Secret access) goes too. */
export async function forgetManagedRedisPassword(deps: Pick<ControllerDeps, 'informers' | 'client' | 'config'>, md: MqttDeployment): Promise<void> {
  const namespace = deps.config.operatorNamespace;
  const name = keptPasswordSecretName(ownerOf(md).uid);
  if (ours(md)(deps.informers.secrets.get(name, namespace))) await deps.client.delete({ apiVersion: 'v1', kind: 'Secret', namespace, name });
}

/**
 * Why the managed Redis is not available (undefined when it is, or when there is none): its
 * Deployment has no available pod of its current template. The pod's waiting reason is added when
 * the kubelet gives one; never a value from the Secret.
 */
export async function stateBackendUnavailable(deps: Pick<ControllerDeps, 'informers' | 'client' | 'now' | 'log'>, md: MqttDeployment): Promise<{ message: string; stuck: boolean } | undefined> {
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
  return { message: `The managed Redis (Deployment ${REDIS_NAME} in namespace ${namespace}) is not available${why}; the broker replicas share their state through it.`, stuck: why !== '' };
}
