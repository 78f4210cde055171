// Deleting an external state backend's keys when an MqttDeployment is deleted (deletionPolicy
// Delete), before its runtime namespace goes: the keys live outside the cluster's reach of the
// namespace deletion. The operator's own pod may not reach tenants' backends (chart
// networkpolicy.yaml), so a Job in the runtime namespace does it (resources/purge-job.ts). Steps,
// each re-entered on the next reconcile until done: stop the brokers (none may write while the keys
// go), run the Job, wait for it. A failed Job is reported (PurgeFailed, quoting its pod's
// termination message), deleted, and tried again with the queue's backoff. A managed Redis needs
// none of this: it and its claim go with the namespace.
import type { V1Job, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { mergeConditions } from '../api/conditions.ts';
import { BROKER_CONFIG_SECRET, BROKER_NAME, brokerSelector, LABEL_ROLE, ownedBy, ROLE_STATE_PURGE } from '../api/names.ts';
import { KINDS } from '../api/owned-kinds.ts';
import type { MqttDeployment } from '../api/types.ts';
import { apiErrorMessage } from '../kube/client.ts';
import { cachedDeployment } from '../kube/informers.ts';
import { ownerOf, targetNamespace } from '../resources/context.ts';
import { STATE_PURGE_JOB, statePurgeJob } from '../resources/purge-job.ts';
import { stateKeyPrefix } from '../resources/redis.ts';
import { externalRedisSpec } from '../resources/state.ts';
import { sameStatus } from '../status/mqtt-deployment.ts';
import type { ControllerDeps, Result } from './mqtt-deployment.ts';

const RECHECK_MS = 2_000;

const readyReason = (md: MqttDeployment): string | undefined => md.status?.conditions?.find((c) => c.type === 'Ready')?.reason;

export class PurgeFailedError extends Error {}

/** 'done' once the keys are gone (or there never were any); otherwise when to look again. */
export async function purgeExternalState(deps: ControllerDeps, md: MqttDeployment, log: Logger): Promise<'done' | Result> {
  if (externalRedisSpec(md) === undefined) return 'done';
  const namespace = targetNamespace(md);
  const running = await stopBrokers(deps, md);
  if (running > 0) {
    await purgeStatus(deps, md, 'Purging', `Waiting for ${running} broker pod(s) to stop before the state backend's keys are deleted.`);
    return { requeueAfterMs: RECHECK_MS };
  }
  const ref = { apiVersion: 'batch/v1', kind: 'Job', namespace, name: STATE_PURGE_JOB };
  const job = await deps.client.get<V1Job>(ref);
  if (!job || !ownedBy(job.metadata?.labels, ownerOf(md))) {
    // No broker config: no broker of this deployment ever ran, so no key was ever written.
    if (!(await brokerConfigExists(deps, md))) return 'done';
    await deps.client.apply(statePurgeJob(md, deps.config));
    log.info({ runtimeNamespace: namespace, job: STATE_PURGE_JOB }, 'Purging external state backend');
    // A retry keeps the last failure in status until it succeeds or fails again: what went wrong
    // stays readable for as long as the deletion is stuck on it.
    if (readyReason(md) !== 'PurgeFailed') await purgeStatus(deps, md, 'Purging', `Deleting every key under ${stateKeyPrefix(md)} in the external Redis (Job ${STATE_PURGE_JOB} in namespace ${namespace}).`);
    return { requeueAfterMs: RECHECK_MS };
  }
  const finished = job.status?.conditions?.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
  if (finished?.type === 'Complete') {
    await deps.client.event(md, 'Normal', 'StatePurged', `Deleted every key under ${stateKeyPrefix(md)} in the external Redis.`);
    return 'done';
  }
  if (finished?.type !== 'Failed') return { requeueAfterMs: RECHECK_MS };
  const why = (await terminationMessage(deps, namespace)) ?? finished.message ?? finished.reason ?? 'the Job failed';
  const message = `Deleting the external state backend's keys failed: ${why}. Retrying with backoff; set spec.deletionPolicy: Retain to keep the keys and finish the deletion.`;
  await purgeStatus(deps, md, 'PurgeFailed', message);
  if (readyReason(md) !== 'PurgeFailed') await deps.client.event(md, 'Warning', 'PurgeFailed', message);
  await deps.client.delete(ref, 'Background');
  throw new PurgeFailedError(message);
}

/** Deletes the broker Deployment (its pods follow); how many broker pods still run. */
async function stopBrokers(deps: ControllerDeps, md: MqttDeployment): Promise<number> {
  const namespace = targetNamespace(md);
  const dep = cachedDeployment(deps.informers, BROKER_NAME, namespace);
  if (dep && ownedBy(dep.metadata?.labels, ownerOf(md)) && !dep.metadata?.deletionTimestamp) {
    await deps.client.delete({ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: BROKER_NAME }, 'Background');
  }
  const pods = await deps.client.listPods(namespace, brokerSelector());
  return pods.filter((p) => p.metadata?.labels?.[LABEL_ROLE] !== ROLE_STATE_PURGE).length;
}

/** From the owned cache; without it (namespaced Secret access) the API cannot tell us, so assume it is there. */
async function brokerConfigExists(deps: ControllerDeps, md: MqttDeployment): Promise<boolean> {
  const cache = deps.informers.owned.get('Secret');
  if (cache) return cache.get(BROKER_CONFIG_SECRET, targetNamespace(md)) !== undefined || (await readable(deps, md));
  return true;
}

async function readable(deps: ControllerDeps, md: MqttDeployment): Promise<boolean> {
  try {
    return (await deps.client.get<V1Secret>({ apiVersion: 'v1', kind: 'Secret', namespace: targetNamespace(md), name: BROKER_CONFIG_SECRET })) !== null;
  } catch (err) {
    deps.log.debug({ err: apiErrorMessage(err) }, 'Reading the broker config failed; purging anyway');
    return true;
  }
}

/** What purge-main wrote to its termination log (its own words: an error code or first line, never a credential). */
async function terminationMessage(deps: ControllerDeps, namespace: string): Promise<string | undefined> {
  let pods: V1Pod[];
  try {
    pods = await deps.client.listPods(namespace, { [LABEL_ROLE]: ROLE_STATE_PURGE });
  } catch {
    return undefined;
  }
  const messages = pods.flatMap((p) => p.status?.containerStatuses ?? []).map((s) => s.state?.terminated?.message?.trim()).filter((m): m is string => Boolean(m));
  return messages.at(-1)?.replace(/\s+/g, ' ').slice(0, 300);
}

/** Ready False with the purge's reason; the rest of the status as it was (a status apply replaces what it leaves out). */
async function purgeStatus(deps: ControllerDeps, md: MqttDeployment, reason: 'Purging' | 'PurgeFailed', message: string): Promise<void> {
  const generation = md.metadata.generation ?? 0;
  const c = (type: 'Ready' | 'Progressing' | 'Degraded', status: 'True' | 'False', msg: string) => ({ type, status, reason, message: msg, observedGeneration: generation });
  const conditions = mergeConditions(md.status?.conditions, [
    c('Ready', 'False', message),
    c('Progressing', 'True', reason === 'Purging' ? 'Deleting the deployment.' : 'Retrying with backoff.'),
    c('Degraded', reason === 'PurgeFailed' ? 'True' : 'False', message),
  ], deps.now().toISOString());
  const status = { ...md.status, conditions };
  if (!sameStatus(status, md.status)) await deps.client.applyStatus({ type: KINDS.mqttDeployments, namespace: md.metadata.namespace, name: md.metadata.name }, status);
}
