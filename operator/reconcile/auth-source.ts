// Reconcile of one AuthSource: Ready when every Secret it references is opted in (policy
// SecretReferenceOptIn) and has the keys it needs; usedBy lists the MqttDeployments whose chains
// name it. Dependents are re-queued by main.ts when the AuthSource or any Secret in its namespace changes.
import { GROUP, VERSION, type AuthSource, type MqttDeployment } from '../api/types.ts';
import { managesNamespace, notManagedMessage } from '../config.ts';
import { referencedSources } from '../resources/listeners.ts';
import { secretReferenceProblem } from '../policy/secret-references.ts';
import { authSourceViolations } from '../policy/platform.ts';
import { authSourceStatus } from '../status/simple.ts';
import { sameStatus } from '../status/mqtt-deployment.ts';
import type { ControllerDeps, Result } from './mqtt-deployment.ts';

/** (Secret name, key) pairs an AuthSource needs, key undefined = any key. */
export function secretRefsOf(source: AuthSource): { name: string; key?: string }[] {
  const s = source.spec;
  const refs: { name: string; key?: string }[] = [];
  if (s.builtin) refs.push({ name: s.builtin.secretRef.name, key: s.builtin.secretRef.key ?? 'users.yaml' });
  for (const q of [s.postgres, s.mysql, s.redis]) {
    if (q?.credentialsSecretRef) refs.push({ name: q.credentialsSecretRef.name, key: 'password' });
    // SQL logins need the user name too (the broker config names both files); Redis may go without.
    if (q?.credentialsSecretRef && q !== s.redis) refs.push({ name: q.credentialsSecretRef.name, key: 'username' });
    if (q?.tls?.secretRef) refs.push({ name: q.tls.secretRef.name, key: 'ca.crt' });
  }
  if (s.http?.bearerTokenSecretRef) refs.push({ name: s.http.bearerTokenSecretRef.name, key: s.http.bearerTokenSecretRef.key ?? 'token' });
  if (s.http?.tls?.secretRef) refs.push({ name: s.http.tls.secretRef.name, key: 'ca.crt' });
  if (s.jwt?.secretRef) refs.push({ name: s.jwt.secretRef.name, key: s.jwt.secretRef.key ?? 'secret' });
  if (s.jwt?.publicKeySecretRef) refs.push({ name: s.jwt.publicKeySecretRef.name, key: s.jwt.publicKeySecretRef.key ?? 'public.pem' });
  if (s.jwt?.jwksSecretRef) refs.push({ name: s.jwt.jwksSecretRef.name, key: s.jwt.jwksSecretRef.key ?? 'jwks.json' });
  return refs;
}

export function usersOf(source: AuthSource, deployments: readonly MqttDeployment[]): string[] {
  return deployments.filter((md) => referencedSources(md).includes(source.metadata.name)).map((md) => md.metadata.name);
}

export async function reconcileAuthSource(deps: ControllerDeps, namespace: string, name: string): Promise<Result> {
  const source = deps.informers.authSources.get(name, namespace);
  if (!source) return;
  const missing = [...new Set(secretRefsOf(source)
    .map((r) => secretReferenceProblem(deps.informers.secrets.get(r.name, namespace), r.name, r.key))
    .filter((p): p is string => p !== undefined))];
  const usedBy = usersOf(source, deps.informers.mqttDeployments.list(namespace));
  const violations = authSourceViolations(source, deps.config.policy);
  const problem = !managesNamespace(deps.config, namespace) ? { reason: 'NamespaceNotManaged', message: notManagedMessage(namespace) }
    : violations.length > 0 ? { reason: 'PolicyViolation', message: `Refused by the platform policy: ${violations.join('; ')}. No broker uses this source until it is changed.` }
    : undefined;
  const status = authSourceStatus(source, missing, usedBy, deps.now().toISOString(), problem);
  if (!sameStatus(status, source.status)) {
    await deps.client.applyStatus(GROUP, VERSION, 'authsources', 'AuthSource', namespace, name, status);
  }
}
