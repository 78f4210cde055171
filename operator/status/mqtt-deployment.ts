// The MqttDeployment status from what reconcile observed (pure): conditions Ready / Progressing /
// Degraded with an actionable message, the runtime namespace, endpoints and replica counts.
import { mergeConditions, type ConditionInput } from '../api/conditions.ts';
import { BROKER_NAME } from '../api/names.ts';
import type { Endpoint, MqttDeployment, MqttDeploymentStatus } from '../api/types.ts';
import { effectiveListeners, type DisabledListener } from '../resources/listeners.ts';
import type { PodProblem } from './pods.ts';

export interface Observed {
  namespace: string;
  configHash?: string;
  /** Unresolved references (AuthSource x, Secret y key z, TlsCertificate t). */
  missing: string[];
  /** The broker's validation refused the rendered config (paths into config.yaml). */
  invalid?: string[];
  /** Declared listeners not served because a TlsCertificate they need does not exist. */
  disabled?: DisabledListener[];
  /** The namespace is outside the operator's tenant namespaces: this message says so. */
  notManaged?: string;
  /** An object in the way that is not ours (owner-UID label differs). */
  conflict?: string;
  /** What the platform policy refuses in the spec, each naming its policy (policy/platform.ts). */
  policy?: string[];
  /** The apply step failed with this message. */
  applyError?: string;
  replicas: number;
  readyReplicas: number;
  updatedReplicas: number;
  /** False while the Deployment controller has not yet seen the latest pod template. */
  deploymentCurrent?: boolean;
  /** Why the broker pods are not ready, when the kubelet or scheduler says so (status/pods.ts). */
  podProblem?: PodProblem;
}

export function endpoints(md: MqttDeployment, namespace: string, disabled: DisabledListener[] = []): Endpoint[] {
  const off = new Set(disabled.map((d) => d.name));
  return effectiveListeners(md).filter((l) => !off.has(l.name)).map((l) => ({ listener: l.name, protocol: l.protocol, address: `${BROKER_NAME}.${namespace}.svc:${l.port}` }));
}

export function mqttDeploymentStatus(md: MqttDeployment, o: Observed, now: string): MqttDeploymentStatus {
  const generation = md.metadata.generation ?? 0;
  const desired = md.spec.replicas ?? 1;
  const c = (type: ConditionInput['type'], status: ConditionInput['status'], reason: string, message: string): ConditionInput =>
    ({ type, status, reason, message, observedGeneration: generation });
  let conditions: ConditionInput[];
  if (o.notManaged !== undefined) {
    conditions = [
      c('Ready', 'False', 'NamespaceNotManaged', o.notManaged),
      c('Progressing', 'False', 'NamespaceNotManaged', 'Nothing is created for this MqttDeployment.'),
      c('Degraded', 'True', 'NamespaceNotManaged', o.notManaged),
    ];
  } else if (o.conflict !== undefined) {
    conditions = [
      c('Ready', 'False', 'OwnershipConflict', `${o.conflict} exists and is not owned by this MqttDeployment; it was left untouched. Rename the MqttDeployment or remove that object.`),
      c('Progressing', 'False', 'OwnershipConflict', 'Waiting for the conflicting object to go away.'),
      c('Degraded', 'True', 'OwnershipConflict', `${o.conflict} belongs to someone else.`),
    ];
  } else if ((o.policy?.length ?? 0) > 0) {
    const message = `Refused by the platform policy, so nothing was changed: ${o.policy!.join('; ')}. Change the spec, or ask the platform team to change the policy.`;
    conditions = [
      c('Ready', 'False', 'PolicyViolation', message),
      c('Progressing', 'False', 'PolicyViolation', 'Waiting for a spec the policy allows.'),
      c('Degraded', 'True', 'PolicyViolation', message),
    ];
  } else if (o.missing.length > 0) {
    conditions = [
      c('Ready', 'False', 'InvalidReference', `Not found: ${o.missing.join(', ')}. Create them in namespace ${md.metadata.namespace} or fix the references.`),
      c('Progressing', 'False', 'InvalidReference', 'Waiting for the referenced objects.'),
      c('Degraded', 'True', 'InvalidReference', `${o.missing.length} unresolved reference(s).`),
    ];
  } else if ((o.invalid?.length ?? 0) > 0) {
    const message = `The broker would refuse this configuration, so nothing was changed: ${o.invalid!.slice(0, 5).join('; ')}${o.invalid!.length > 5 ? ` (and ${o.invalid!.length - 5} more)` : ''}. Fix the MqttDeployment or the AuthSource it names.`;
    conditions = [
      c('Ready', 'False', 'InvalidConfig', message),
      c('Progressing', 'False', 'InvalidConfig', 'Waiting for a valid spec.'),
      c('Degraded', 'True', 'InvalidConfig', message),
    ];
  } else if (o.applyError === undefined && (o.disabled?.length ?? 0) > 0) {
    const message = disabledMessage(o.disabled!);
    conditions = [
      c('Ready', 'False', 'ListenerDisabled', message),
      c('Progressing', 'False', 'ListenerDisabled', 'Waiting for the TlsCertificate to be re-created or the listener to be removed.'),
      c('Degraded', 'True', 'ListenerDisabled', `${o.disabled!.length} listener(s) not served.`),
    ];
  } else if (o.applyError !== undefined) {
    conditions = [
      c('Ready', 'False', 'ApplyFailed', o.applyError),
      c('Progressing', 'True', 'Retrying', 'The operator retries with backoff.'),
      c('Degraded', 'True', 'ApplyFailed', o.applyError),
    ];
  } else {
    // Rolled out: enough ready pods of the current template and no pod of an older one left (a new
    // pod that cannot start keeps the old one serving; that is still a rollout, not Ready).
    const rolledOut = o.readyReplicas >= desired && o.updatedReplicas >= desired && o.replicas <= desired && o.deploymentCurrent !== false;
    const problem = rolledOut ? undefined : o.podProblem;
    conditions = [
      rolledOut
        ? c('Ready', 'True', 'Available', `${o.readyReplicas}/${desired} replicas ready.`)
        : problem
          ? c('Ready', 'False', problem.reason, `${o.readyReplicas}/${desired} replicas ready. ${problem.message}`)
          : c('Ready', 'False', 'RollingOut', `${o.readyReplicas}/${desired} replicas ready; pods are starting.`),
      rolledOut ? c('Progressing', 'False', 'Complete', 'Rollout complete.') : c('Progressing', 'True', 'RollingOut', 'Waiting for broker pods to become ready.'),
      problem ? c('Degraded', 'True', problem.reason, problem.message) : c('Degraded', 'False', 'AsExpected', 'All objects applied.'),
    ];
  }
  const eps = o.conflict === undefined && o.notManaged === undefined ? endpoints(md, o.namespace, o.disabled) : [];
  return {
    observedGeneration: generation,
    conditions: mergeConditions(md.status?.conditions, conditions, now),
    namespace: o.namespace,
    endpoints: eps,
    ...(eps[0] ? { endpoint: eps[0].address } : {}),
    replicas: o.replicas,
    readyReplicas: o.readyReplicas,
    ...(o.configHash !== undefined ? { configHash: o.configHash } : {}),
  };
}

/** "Listener mqtts is not served (TlsCertificate server not found): ..." — what happened and what to do. */
export function disabledMessage(disabled: DisabledListener[]): string {
  const what = disabled.map((d) => `listener ${d.name} (${d.absent.map((n) => `TlsCertificate ${n} not found`).join(', ')})`).join(', ');
  return `Not serving ${what}: its clients were disconnected. Re-create the TlsCertificate or remove the listener.`;
}

/** Status equality ignoring key order, so an unchanged status is never written. */
export function sameStatus(a: unknown, b: unknown): boolean {
  return stable(a) === stable(b);
}

function stable(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([p], [q]) => p.localeCompare(q))) : x);
}
