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
  /**
   * Why the managed state backend (Redis) is not available, naming it; `stuck` when the kubelet
   * gives a reason that will not pass by itself. Undefined when it is available or there is none.
   */
  stateBackend?: { message: string; stuck: boolean };
}

export function endpoints(md: MqttDeployment, namespace: string, disabled: DisabledListener[] = []): Endpoint[] {
  const off = new Set(disabled.map((d) => d.name));
  return effectiveListeners(md).filter((l) => !off.has(l.name)).map((l) => ({ listener: l.name, protocol: l.protocol, address: `${BROKER_NAME}.${namespace}.svc:${l.port}` }));
}

/** Builds one condition at the CR's generation. */
type Cond = (type: ConditionInput['type'], status: ConditionInput['status'], reason: string, message: string) => ConditionInput;

/** Ready/Progressing/Degraded for one refusal: Ready False, Progressing False (waiting), Degraded True. */
function refused(c: Cond, reason: string, ready: string, waiting: string, degraded = ready): ConditionInput[] {
  return [c('Ready', 'False', reason, ready), c('Progressing', 'False', reason, waiting), c('Degraded', 'True', reason, degraded)];
}

type Rule = (md: MqttDeployment, o: Observed, c: Cond) => ConditionInput[] | undefined;

/** What keeps the spec from being served, in order of precedence: the first that applies decides the conditions. */
const REFUSALS: Rule[] = [
  (_md, o, c) => (o.notManaged === undefined ? undefined : refused(c, 'NamespaceNotManaged', o.notManaged, 'Nothing is created for this MqttDeployment.')),
  (_md, o, c) => (o.conflict === undefined ? undefined
    : refused(c, 'OwnershipConflict', `${o.conflict} exists and is not owned by this MqttDeployment; it was left untouched. Rename the MqttDeployment or remove that object.`, 'Waiting for the conflicting object to go away.', `${o.conflict} belongs to someone else.`)),
  (_md, o, c) => (!o.policy?.length ? undefined
    : refused(c, 'PolicyViolation', `Refused by the platform policy, so nothing was changed: ${o.policy.join('; ')}. Change the spec, or ask the platform team to change the policy.`, 'Waiting for a spec the policy allows.')),
  (md, o, c) => (o.missing.length === 0 ? undefined
    : refused(c, 'InvalidReference', `Not found: ${o.missing.join(', ')}. Create them in namespace ${md.metadata.namespace} or fix the references.`, 'Waiting for the referenced objects.', `${o.missing.length} unresolved reference(s).`)),
  (_md, o, c) => (!o.invalid?.length ? undefined
    : refused(c, 'InvalidConfig', `The broker would refuse this configuration, so nothing was changed: ${o.invalid.slice(0, 5).join('; ')}${o.invalid.length > 5 ? ` (and ${o.invalid.length - 5} more)` : ''}. Fix the MqttDeployment or the AuthSource it names.`, 'Waiting for a valid spec.')),
  (_md, o, c) => (o.applyError !== undefined || !o.disabled?.length ? undefined
    : refused(c, 'ListenerDisabled', disabledMessage(o.disabled), 'Waiting for the TlsCertificate to be re-created or the listener to be removed.', `${o.disabled.length} listener(s) not served.`)),
  (_md, o, c) => (o.applyError === undefined ? undefined
    : [c('Ready', 'False', 'ApplyFailed', o.applyError), c('Progressing', 'True', 'Retrying', 'The operator retries with backoff.'), c('Degraded', 'True', 'ApplyFailed', o.applyError)]),
];

/** Everything applied: Ready once rolled out, else why the pods are not ready yet. */
function rollout(md: MqttDeployment, o: Observed, c: Cond): ConditionInput[] {
  // Brokers without their shared state lose messages across replicas: not Ready, whatever the pods
  // say. Degraded (like for broker pods) only when the Redis pod is stuck, not while it starts.
  if (o.stateBackend !== undefined) {
    return [
      c('Ready', 'False', 'StateBackendUnavailable', o.stateBackend.message),
      c('Progressing', 'True', 'RollingOut', 'Waiting for the managed Redis to become available.'),
      o.stateBackend.stuck ? c('Degraded', 'True', 'StateBackendUnavailable', o.stateBackend.message) : c('Degraded', 'False', 'AsExpected', 'All objects applied.'),
    ];
  }
  const desired = md.spec.replicas ?? 1;
  // Rolled out: enough ready pods of the current template and no pod of an older one left (a new
  // pod that cannot start keeps the old one serving; that is still a rollout, not Ready).
  const rolledOut = o.readyReplicas >= desired && o.updatedReplicas >= desired && o.replicas <= desired && o.deploymentCurrent !== false;
  const problem = rolledOut ? undefined : o.podProblem;
  const ready = rolledOut
    ? c('Ready', 'True', 'Available', `${o.readyReplicas}/${desired} replicas ready.`)
    : problem
      ? c('Ready', 'False', problem.reason, `${o.readyReplicas}/${desired} replicas ready. ${problem.message}`)
      : c('Ready', 'False', 'RollingOut', `${o.readyReplicas}/${desired} replicas ready; pods are starting.`);
  return [
    ready,
    rolledOut ? c('Progressing', 'False', 'Complete', 'Rollout complete.') : c('Progressing', 'True', 'RollingOut', 'Waiting for broker pods to become ready.'),
    problem ? c('Degraded', 'True', problem.reason, problem.message) : c('Degraded', 'False', 'AsExpected', 'All objects applied.'),
  ];
}

export function mqttDeploymentStatus(md: MqttDeployment, o: Observed, now: string): MqttDeploymentStatus {
  const generation = md.metadata.generation ?? 0;
  const c: Cond = (type, status, reason, message) => ({ type, status, reason, message, observedGeneration: generation });
  let conditions: ConditionInput[] | undefined;
  for (const rule of REFUSALS) {
    conditions = rule(md, o, c);
    if (conditions) break;
  }
  const eps = o.conflict === undefined && o.notManaged === undefined ? endpoints(md, o.namespace, o.disabled) : [];
  return {
    observedGeneration: generation,
    conditions: mergeConditions(md.status?.conditions, conditions ?? rollout(md, o, c), now),
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
