// Reconcile of one AuthSource: Ready when every Secret it references is opted in (policy
// SecretReferenceOptIn) and has the keys it needs; usedBy lists the MqttDeployments whose chains
// name it. Dependents are re-queued by main.ts when the AuthSource or any Secret in its namespace changes.
import type { AuthSource, MqttDeployment } from '../api/types.ts';
import { KINDS } from '../api/owned-kinds.ts';
import { sourceSecretKeys } from '../api/auth-source-secrets.ts';
import { managesNamespace, notManagedMessage } from '../config.ts';
import { referencedSources } from '../resources/listeners.ts';
import { secretReferenceProblem } from '../policy/secret-references.ts';
import { authSourceViolations } from '../policy/platform.ts';
import { authSourceStatus } from '../status/simple.ts';
import { sameStatus } from '../status/mqtt-deployment.ts';
import type { ControllerDeps, Result } from './mqtt-deployment.ts';

export function usersOf(source: AuthSource, deployments: readonly MqttDeployment[]): string[] {
  return deployments.filter((md) => referencedSources(md).includes(source.metadata.name)).map((md) => md.metadata.name);
}

export async function reconcileAuthSource(deps: ControllerDeps, namespace: string, name: string): Promise<Result> {
  const source = deps.informers.authSources.get(name, namespace);
  if (!source) return;
  // Optional keys (a Redis user name, a backend client certificate) are used when there; their Secret must still be usable.
  const missing = [...new Set(sourceSecretKeys(source)
    .map((k) => secretReferenceProblem(deps.informers.secrets.get(k.secret, namespace), k.secret, k.optional ? undefined : k.key))
    .filter((p): p is string => p !== undefined))];
  const usedBy = usersOf(source, deps.informers.mqttDeployments.list(namespace));
  const violations = authSourceViolations(source, deps.config.policy);
  const problem = !managesNamespace(deps.config, namespace) ? { reason: 'NamespaceNotManaged', message: notManagedMessage(namespace) }
    : violations.length > 0 ? { reason: 'PolicyViolation', message: `Refused by the platform policy: ${violations.join('; ')}. No broker uses this source until it is changed.` }
    : undefined;
  const status = authSourceStatus(source, missing, usedBy, deps.now().toISOString(), problem);
  if (!sameStatus(status, source.status)) {
    await deps.client.applyStatus({ type: KINDS.authSources, namespace, name }, status);
  }
}
