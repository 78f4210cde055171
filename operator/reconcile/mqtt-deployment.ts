// Reconcile of one MqttDeployment: read everything it references (from the informer caches), compute
// the desired objects (pure builders), apply them in order or delete the ones that must not exist,
// then write status. Level-triggered: it never asks what event woke it. Deletion runs the purge
// behind the finalizer (reconcile/purge.ts).
import { createHash } from 'node:crypto';
import type { KubernetesObject, V1Namespace, V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { FINALIZER, BROKER_NAME, brokerSelector, ownedBy, resolveRuntimeNamespace, type Owner } from '../api/names.ts';
import type { AuthSource, MqttDeployment, TlsCertificate } from '../api/types.ts';
import { KINDS } from '../api/owned-kinds.ts';
import { managesNamespace, notManagedMessage, type OperatorConfig } from '../config.ts';
import { ownerOf, targetNamespace, withRuntimeNamespace, type BuildContext, type SecretData, type TlsMaterial } from '../resources/context.ts';
import { desiredState, type DesiredEntry, type DesiredState } from '../resources/index.ts';
import { referencedCertificates, referencedSources } from '../resources/listeners.ts';
import { disabledMessage, mqttDeploymentStatus, sameStatus, type Observed } from '../status/mqtt-deployment.ts';
import { podProblem } from '../status/pods.ts';
import { apiErrorMessage, type KubeClient } from '../kube/client.ts';
import { cachedDeployment, cachedNamespace, type Informers } from '../kube/informers.ts';
import { purge } from './purge.ts';
import { referenceable } from '../policy/secret-references.ts';
import { authSourceViolations, mqttDeploymentViolations } from '../policy/platform.ts';
import { managedRedisPassword, stateBackendUnavailable } from './state-backend.ts';

export interface ControllerDeps {
  client: KubeClient;
  informers: Informers;
  config: OperatorConfig;
  log: Logger;
  /** What was last applied per MqttDeployment UID: an unchanged, undrifted world sends no writes. */
  applied: Map<string, AppliedState>;
  now: () => Date;
  /** Queues another reconcile key (`Kind/namespace/name`). */
  enqueue: (key: string) => void;
}

export type Result = { requeueAfterMs?: number } | void;

/** The desired-state hash last applied, and the version of each object as the apply returned it. */
export interface AppliedState {
  hash: string;
  /** `Kind/namespace/name` → version token (see versionOf); ABSENT for objects that must not exist. */
  versions: Map<string, string>;
}

const ABSENT = '-';

const refKey = (ref: { kind: string; namespace?: string; name: string }): string => `${ref.kind}/${ref.namespace ?? ''}/${ref.name}`;

/**
 * The token that changes when someone changes the object: `generation` where the API server keeps
 * one that status writes do not move (Deployment, PDB: their controllers write status constantly),
 * else resourceVersion (these kinds have no status writer).
 */
function versionOf(kind: string, o: KubernetesObject | undefined): string | undefined {
  // `kind` is passed, never read from the object: items of a list (an informer's relist) carry none.
  if (!o?.metadata) return undefined;
  return kind === 'Deployment' || kind === 'PodDisruptionBudget' ? `g${o.metadata.generation ?? 0}` : `r${o.metadata.resourceVersion ?? ''}`;
}

/** `a` newer than `b`? Versions are etcd revisions / generations: integers in practice; unparsable counts as newer. */
function newer(a: string, b: string): boolean {
  const x = Number(a.slice(1));
  const y = Number(b.slice(1));
  return !Number.isInteger(x) || !Number.isInteger(y) || x > y;
}

/**
 * Whether anything owned changed since our apply: an object edited (version newer than ours), deleted
 * (gone from the cache and, read directly, from the API server) or created where none must be. A
 * cache that is merely behind our own write (older version) is not drift: its event re-queues us.
 */
async function drifted(deps: ControllerDeps, entries: DesiredEntry[], state: AppliedState): Promise<string | undefined> {
  for (const entry of entries) {
    const key = refKey(entry.ref);
    const cache = deps.informers.owned.get(entry.ref.kind);
    const recorded = state.versions.get(key);
    if (!cache || recorded === undefined) continue;
    const cached = cache.get(entry.ref.name, entry.ref.namespace);
    const now = versionOf(entry.ref.kind, cached);
    if (recorded === ABSENT) {
      if (cached) return key;
    } else if (now === undefined) {
      if (!(await deps.client.get(entry.ref))) return key;
    } else if (now !== recorded && newer(now, recorded)) {
      return key;
    }
  }
  return undefined;
}

/** Secret name holding a TlsCertificate's material: its secretRef, or the one the operator issues. */
export function tlsSecretName(cert: TlsCertificate): string {
  return cert.spec.secretRef?.name ?? `${cert.metadata.name}-tls`;
}

/**
 * The cached Secret whose material a TlsCertificate may hand to a broker: its secretRef when opted in
 * (policy SecretReferenceOptIn), or the one the operator issued for exactly this TlsCertificate.
 */
export function tlsSecretOf(deps: Pick<ControllerDeps, 'informers'>, cert: TlsCertificate): V1Secret | undefined {
  const secret = deps.informers.secrets.get(tlsSecretName(cert), cert.metadata.namespace);
  if (cert.spec.secretRef) return referenceable(secret) ? secret : undefined;
  return secret && ownedBy(secret.metadata?.labels, { namespace: cert.metadata.namespace, name: cert.metadata.name, uid: cert.metadata.uid ?? '' }) ? secret : undefined;
}

/**
 * The CR as read, with its runtime namespace decided: the one it already owns (recorded in status,
 * or its pre-hash name), else the hashed name. Status comparisons use the CR as read, not this copy.
 */
export function withResolvedNamespace(deps: Pick<ControllerDeps, 'informers'>, md: MqttDeployment): MqttDeployment {
  const owner = ownerOf(md);
  return withRuntimeNamespace(md, resolveRuntimeNamespace(md, (ns) => ownedBy(cachedNamespace(deps.informers, ns)?.metadata?.labels, owner)));
}

export function gatherContext(deps: ControllerDeps, md: MqttDeployment, redisPassword?: string): BuildContext {
  const ns = md.metadata.namespace;
  // Only opted-in Secrets reach the builders: nothing else can be copied into a runtime namespace.
  const secrets = new Map<string, SecretData>();
  for (const s of deps.informers.secrets.list(ns)) if (referenceable(s)) secrets.set(s.metadata!.name!, s.data ?? {});
  const sources = new Map<string, AuthSource>();
  for (const name of referencedSources(md)) {
    const source = deps.informers.authSources.get(name, ns);
    if (source) sources.set(name, source);
  }
  const tls = new Map<string, TlsMaterial>();
  const absentCertificates = new Set<string>();
  for (const name of referencedCertificates(md)) {
    const cert = deps.informers.tlsCertificates.get(name, ns);
    if (!cert) absentCertificates.add(name);
    const data = cert ? tlsSecretOf(deps, cert)?.data : undefined;
    if (data?.['tls.crt'] && data['tls.key']) tls.set(name, { crt: data['tls.crt'], key: data['tls.key'], ...(data['ca.crt'] ? { ca: data['ca.crt'] } : {}) });
  }
  return { md, config: deps.config, sources, secrets, tls, absentCertificates, ...(redisPassword !== undefined ? { redisPassword } : {}) };
}

/**
 * The reconcile as named steps. Order: the finalizer before anything is created (it guarantees the
 * purge); apply only what the policy and references allow; events and pod reasons after the apply,
 * since they describe its result; status last, from everything observed.
 */
export async function reconcileMqttDeployment(deps: ControllerDeps, namespace: string, name: string): Promise<Result> {
  const cr = deps.informers.mqttDeployments.get(name, namespace);
  if (!cr) return; // Gone, and the finalizer (if any) was already removed.
  const md = withResolvedNamespace(deps, cr);
  const log = deps.log.child({ kind: 'MqttDeployment', namespace, name, generation: md.metadata.generation });
  if (md.metadata.deletionTimestamp) return purge(deps, md, log);
  if (!managesNamespace(deps.config, namespace)) return reportNotManaged(deps, cr, md);
  await ensureFinalizer(deps, md);
  const plan = planOf(deps, md, await managedRedisPassword(deps, md));
  const outcome = await applyPlan(deps, plan, log);
  await reportWarning(deps, plan, outcome);
  const observed: Observed = { ...plan.observed, ...refusalOf(outcome), ...observeDeployment(deps, plan) };
  // The managed Redis is part of being Ready, once it was applied (a refusal says why instead).
  if ('done' in outcome && outcome.done !== 'blocked') observed.stateBackend = await stateBackendUnavailable(deps, md);
  const waiting = (await observePods(deps, observed, plan.runtimeNs, md.spec.replicas ?? 1)) || observed.stateBackend !== undefined;
  const status = mqttDeploymentStatus(md, observed, deps.now().toISOString());
  if (!sameStatus(status, cr.status)) await deps.client.applyStatus({ type: KINDS.mqttDeployments, namespace, name }, status);
  if (observed.applyError !== undefined) throw new Error(observed.applyError);
  // Pod states (image pulls, crash loops, probes) move no Deployment field we watch: look again soon.
  if (waiting) return { requeueAfterMs: POD_RECHECK_MS };
  // Invalid references and conflicts are not retried in a hot loop: a change to the referenced
  // objects (informers) re-queues this key.
}

/**
 * Its Secrets are unreadable to us (namespaced Secret access): say so rather than report every
 * reference as missing. No finalizer, nothing created; onboarding the namespace re-queues it.
 */
async function reportNotManaged(deps: ControllerDeps, cr: MqttDeployment, md: MqttDeployment): Promise<Result> {
  const { namespace, name } = md.metadata;
  const status = mqttDeploymentStatus(md, { namespace: targetNamespace(md), missing: [], notManaged: notManagedMessage(namespace), replicas: 0, readyReplicas: 0, updatedReplicas: 0 }, deps.now().toISOString());
  if (!sameStatus(status, cr.status)) await deps.client.applyStatus({ type: KINDS.mqttDeployments, namespace, name }, status);
}

/** First: nothing may be created before the finalizer that guarantees its purge is in place. */
async function ensureFinalizer(deps: ControllerDeps, md: MqttDeployment): Promise<void> {
  if (md.metadata.finalizers?.includes(FINALIZER)) return;
  const { namespace, name } = md.metadata;
  await deps.client.setFinalizers({ type: KINDS.mqttDeployments, namespace, name }, { finalizers: [...(md.metadata.finalizers ?? []), FINALIZER], resourceVersion: md.metadata.resourceVersion! });
}

/** What this reconcile wants: the desired objects, what stops them from being applied, and the status facts known so far. */
interface Plan {
  md: MqttDeployment;
  owner: Owner;
  runtimeNs: string;
  desired: DesiredState;
  /** Hash of the desired entries: unchanged + undrifted = nothing to send. */
  hash: string;
  /** What the platform policy refuses (the spec's own, then each referenced AuthSource's). */
  violations: string[];
  observed: Observed;
}

function planOf(deps: ControllerDeps, md: MqttDeployment, redisPassword: string | undefined): Plan {
  const ctx = gatherContext(deps, md, redisPassword);
  const desired = desiredState(ctx);
  // The platform policy (chart values): admission refuses most of this already; what got through
  // (admission off, or the policy tightened since) is reported and never applied.
  const violations = [
    ...mqttDeploymentViolations(md, deps.config.policy, deps.config.defaultImage),
    ...[...ctx.sources.values()].flatMap((s) => authSourceViolations(s, deps.config.policy).map((v) => `AuthSource ${s.metadata.name} ${v}`)),
  ];
  const runtimeNs = targetNamespace(md);
  return {
    md, owner: ownerOf(md), runtimeNs, desired, violations,
    hash: createHash('sha256').update(JSON.stringify(desired.entries)).digest('hex'),
    observed: { namespace: runtimeNs, configHash: desired.configHash, missing: desired.missing, invalid: desired.invalid, disabled: desired.disabled, policy: violations, replicas: 0, readyReplicas: 0, updatedReplicas: 0 },
  };
}

/** What the apply step did: nothing needed, applied, or refused (an object in the way, or an error retried with backoff). */
type ApplyOutcome = { done: 'blocked' | 'up-to-date' | 'applied' } | { conflict: string } | { applyError: string };

function refusalOf(outcome: ApplyOutcome): Pick<Observed, 'conflict' | 'applyError'> {
  return 'done' in outcome ? {} : outcome;
}

/** Applies the plan unless the spec is refused or the world already matches it (memo and drift). */
async function applyPlan(deps: ControllerDeps, plan: Plan, log: Logger): Promise<ApplyOutcome> {
  const { desired } = plan;
  if (plan.violations.length > 0 || desired.missing.length > 0 || desired.invalid.length > 0) return { done: 'blocked' };
  if (await upToDate(deps, plan, log)) return { done: 'up-to-date' };
  const claim = await claimNamespace(deps, plan, log);
  if (claim !== 'ours' && claim !== 'absent') return claim;
  try {
    if (claim === 'absent') await deps.client.event(plan.md, 'Normal', 'NamespaceCreated', `Creating runtime namespace ${plan.runtimeNs}.`);
    deps.applied.set(plan.owner.uid, { hash: plan.hash, versions: await applyStages(deps, plan) });
    log.info({ configHash: desired.configHash }, 'Reconciled MqttDeployment');
    return { done: 'applied' };
  } catch (err) {
    deps.applied.delete(plan.owner.uid);
    return { applyError: `Applying the runtime objects failed: ${apiErrorMessage(err)}` };
  }
}

/** The same desired state was applied before, the namespace is still ours, and nothing owned drifted since. */
async function upToDate(deps: ControllerDeps, plan: Plan, log: Logger): Promise<boolean> {
  const memo = deps.applied.get(plan.owner.uid);
  const cachedNs = cachedNamespace(deps.informers, plan.runtimeNs);
  if (memo?.hash !== plan.hash || cachedNs === undefined || !ownedBy(cachedNs.metadata?.labels, plan.owner)) return false;
  const changed = await drifted(deps, plan.desired.entries, memo);
  if (!changed) return true;
  // Level-triggered: whoever deleted a NetworkPolicy or edited the pod template, the desired
  // state is simply applied again (force: the operator owns these fields).
  log.info({ object: changed }, 'Owned object changed outside the operator; re-applying');
  return false;
}

/** Whether the runtime namespace is ours or free; a refusal when someone else's, or still terminating. */
async function claimNamespace(deps: ControllerDeps, plan: Plan, log: Logger): Promise<'ours' | 'absent' | { conflict: string } | { applyError: string }> {
  const { md, runtimeNs } = plan;
  // The informer holds only our namespaces; a foreign one is found with a direct read.
  const existing = cachedNamespace(deps.informers, runtimeNs) ?? (await deps.client.get<V1Namespace>({ apiVersion: 'v1', kind: 'Namespace', name: runtimeNs }));
  if (!existing) return 'absent';
  if (!ownedBy(existing.metadata?.labels, plan.owner)) {
    const conflict = `Namespace ${runtimeNs}`;
    log.info({ conflict }, 'Ownership conflict');
    if (readyReason(md) !== 'OwnershipConflict') {
      await deps.client.event(md, 'Warning', 'OwnershipConflict', `${conflict} exists and is not owned by this MqttDeployment; left untouched.`);
    }
    return { conflict };
  }
  if (existing.metadata?.deletionTimestamp) return { applyError: `Namespace ${runtimeNs} is still terminating from an earlier deployment of the same name.` };
  return 'ours';
}

/** Applies (or deletes) every entry, stage by stage; the version each object has now, for drift. */
async function applyStages(deps: ControllerDeps, plan: Plan): Promise<Map<string, string>> {
  // Entries of one stage go out in parallel; stages keep the dependency order (resources/index.ts).
  const versions = new Map<string, string>();
  for (const stage of plan.desired.stages) {
    await Promise.all(stage.map(async (entry) => {
      if (entry.object) {
        const applied = await deps.client.apply(entry.object);
        versions.set(refKey(entry.ref), versionOf(entry.ref.kind, applied) ?? ABSENT);
        return;
      }
      // The label-filtered cache answers "is there one of ours?"; a read only where no cache is
      // kept. A cache behind our own create shows up as drift later (ABSENT recorded) and is fixed then.
      const cache = deps.informers.owned.get(entry.ref.kind);
      // No Secret cache: Secret access is namespaced and runtime Secrets are unreadable. The only
      // one ever deleted there is the managed Redis' (backend switched away): left for the
      // namespace's deletion, it is unused meanwhile (nothing mounts it, no pod reads it).
      if (!cache && entry.ref.kind === 'Secret') return;
      const current = cache ? cache.get(entry.ref.name, entry.ref.namespace) : await deps.client.get(entry.ref);
      if (current && ownedBy(current.metadata?.labels, plan.owner)) await deps.client.delete(entry.ref);
      versions.set(refKey(entry.ref), ABSENT);
    }));
  }
  return versions;
}

const readyReason = (md: MqttDeployment): string | undefined => md.status?.conditions?.find((c) => c.type === 'Ready')?.reason;

/** The Warning event for what keeps the spec from being served, if anything (an ownership conflict has its own, in claimNamespace). */
function warningOf(plan: Plan, outcome: ApplyOutcome): { reason: string; message: string } | undefined {
  const { desired, violations } = plan;
  if (violations.length > 0) return { reason: 'PolicyViolation', message: `Refused by the platform policy: ${violations.slice(0, 3).join('; ')}.` };
  if (desired.missing.length > 0) return { reason: 'InvalidReference', message: `Not found: ${desired.missing.join(', ')}.` };
  if (desired.invalid.length > 0) return { reason: 'InvalidConfig', message: `The broker would refuse the rendered configuration: ${desired.invalid.slice(0, 3).join('; ')}.` };
  if (desired.disabled.length > 0 && 'done' in outcome) return { reason: 'ListenerDisabled', message: disabledMessage(desired.disabled) };
  return undefined;
}

/** Recorded once per change of the Ready reason, not on every reconcile. */
async function reportWarning(deps: ControllerDeps, plan: Plan, outcome: ApplyOutcome): Promise<void> {
  const warning = warningOf(plan, outcome);
  if (warning && readyReason(plan.md) !== warning.reason) await deps.client.event(plan.md, 'Warning', warning.reason, warning.message);
}

/** Replica counts of our broker Deployment, as its controller reports them. */
function observeDeployment(deps: ControllerDeps, plan: Plan): Partial<Pick<Observed, 'replicas' | 'readyReplicas' | 'updatedReplicas' | 'deploymentCurrent'>> {
  const dep = cachedDeployment(deps.informers, BROKER_NAME, plan.runtimeNs);
  if (!dep || !ownedBy(dep.metadata?.labels, plan.owner)) return {};
  return {
    replicas: dep.status?.replicas ?? 0,
    readyReplicas: dep.status?.readyReplicas ?? 0,
    updatedReplicas: dep.status?.updatedReplicas ?? 0,
    deploymentCurrent: (dep.status?.observedGeneration ?? 0) >= (dep.metadata?.generation ?? 0),
  };
}

const POD_RECHECK_MS = 5_000;

/**
 * While the broker is not fully ready, reads its pods once (a direct list: pods are not cached, the
 * operator keeps no per-pod state) for the reason the kubelet or scheduler gives. True while the
 * rollout is still waiting, so the caller looks again.
 */
async function observePods(deps: ControllerDeps, observed: Observed, runtimeNs: string, desired: number): Promise<boolean> {
  const settled = observed.conflict !== undefined || observed.applyError !== undefined || observed.missing.length > 0 || (observed.invalid?.length ?? 0) > 0;
  const rolledOut = observed.readyReplicas >= desired && observed.updatedReplicas >= desired && observed.replicas <= desired && observed.deploymentCurrent !== false;
  if (settled || desired === 0 || rolledOut) return false;
  try {
    const pods = await deps.client.listPods(runtimeNs, brokerSelector());
    observed.podProblem = podProblem(pods, deps.now());
  } catch (err) {
    deps.log.debug({ namespace: runtimeNs, err: apiErrorMessage(err) }, 'Listing broker pods failed');
  }
  return true;
}
