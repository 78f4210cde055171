// Why the broker pods are not ready, from their own status (pure): the kubelet's waiting reason
// (ImagePullBackOff, ErrImageNeverPull, CrashLoopBackOff, CreateContainerConfigError...), a failed
// readiness probe (container running but not ready), or the scheduler's refusal. The MqttDeployment's
// Ready condition carries this instead of "pods are starting" forever. Only the kubelet's and
// scheduler's own messages are quoted: never container output, which may hold tenant data.
import type { V1Pod } from '@kubernetes/client-node';

export interface PodProblem {
  /** The condition reason: the kubelet's own word where there is one. */
  reason: string;
  /** One sentence naming the pod and what to do. */
  message: string;
}

/** Waiting reasons that will not go away by themselves (a transient ContainerCreating is not one). */
const STUCK = new Set(['ImagePullBackOff', 'ErrImagePull', 'ErrImageNeverPull', 'InvalidImageName', 'CrashLoopBackOff', 'CreateContainerConfigError', 'CreateContainerError', 'RunContainerError']);

/**
 * The kubelet alternates some reasons while it retries (ErrImagePull ↔ ImagePullBackOff; a crashing
 * container is briefly Running between back-offs) and puts counters in its messages: the condition
 * uses one reason per problem and a message without them, so an unchanged problem writes no status.
 */
const REASON: Record<string, string> = { ErrImagePull: 'ImagePullBackOff' };

const HINT: Record<string, string> = {
  ImagePullBackOff: 'Check spec.image and that the node can pull it.',
  ErrImageNeverPull: 'The image is not present on the node.',
  InvalidImageName: 'Fix spec.image.',
  CrashLoopBackOff: 'The broker exits at start; see `kubectl logs` of the pod.',
  CreateContainerConfigError: 'The pod spec cannot be run as configured.',
};

const clip = (s: string | undefined, n = 300): string => (s ?? '').replace(/\s+/g, ' ').trim().slice(0, n);

type ContainerStatus = NonNullable<NonNullable<V1Pod['status']>['containerStatuses']>[number];

/** Crashing: waiting in back-off, or (between back-offs) running again or just exited, not ready. */
function crashLoop(pod: string, cs: ContainerStatus): PodProblem | undefined {
  const waiting = cs.state?.waiting?.reason;
  const last = cs.lastState?.terminated;
  if (waiting !== 'CrashLoopBackOff' && (cs.ready || cs.restartCount <= 0 || last === undefined || waiting !== undefined)) return undefined;
  const exit = last ? ` (last exit: code ${last.exitCode}${last.reason ? `, ${last.reason}` : ''})` : '';
  return { reason: 'CrashLoopBackOff', message: `Pod ${pod}: container ${cs.name} keeps exiting${exit}. ${HINT.CrashLoopBackOff}` };
}

/** Waiting for a reason that will not go away by itself (image pull, config error). */
function stuckWaiting(pod: string, cs: ContainerStatus): PodProblem | undefined {
  const waiting = cs.state?.waiting?.reason;
  if (!waiting || !STUCK.has(waiting)) return undefined;
  const reason = REASON[waiting] ?? waiting;
  const detail = reason === 'ImagePullBackOff' ? `cannot pull image ${cs.image}` : `is ${waiting}${cs.state?.waiting?.message ? `: ${clip(cs.state.waiting.message)}` : ''}`;
  return { reason, message: `Pod ${pod}: container ${cs.name} ${detail} (${reason}). ${HINT[reason] ?? ''}`.trim() };
}

/** Running for a while yet not ready: its readiness probe keeps failing. */
function probeFailing(pod: string, cs: ContainerStatus, now: Date, probeGraceMs: number): PodProblem | undefined {
  const started = cs.state?.running?.startedAt;
  if (!started || cs.ready || now.getTime() - new Date(started).getTime() <= probeGraceMs) return undefined;
  return { reason: 'ProbeFailing', message: `Pod ${pod}: container ${cs.name} is running but its readiness probe fails; see \`kubectl describe pod\` in the runtime namespace.` };
}

function containerProblem(pod: string, cs: ContainerStatus, now: Date, probeGraceMs: number): PodProblem | undefined {
  return crashLoop(pod, cs) ?? stuckWaiting(pod, cs) ?? probeFailing(pod, cs, now, probeGraceMs);
}

/** The first problem among `pods` (oldest pod first), or undefined when they are merely starting. */
export function podProblem(pods: readonly V1Pod[], now: Date, probeGraceMs = 30_000): PodProblem | undefined {
  const sorted = [...pods].filter((p) => !p.metadata?.deletionTimestamp)
    .sort((a, b) => String(a.metadata?.creationTimestamp ?? '').localeCompare(String(b.metadata?.creationTimestamp ?? '')));
  for (const pod of sorted) {
    const name = pod.metadata?.name ?? '?';
    for (const cs of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
      const problem = containerProblem(name, cs, now, probeGraceMs);
      if (problem) return problem;
    }
    const unschedulable = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable');
    if (unschedulable) return { reason: 'Unschedulable', message: `Pod ${name} cannot be scheduled: ${clip(unschedulable.message)}` };
  }
  return undefined;
}
