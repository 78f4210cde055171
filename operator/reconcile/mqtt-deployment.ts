// Reconcile of one MqttDeployment: read everything it references (from the informer caches), compute
// the desired objects (pure builders), apply them in order or delete the ones that must not exist,
// then write status. Level-triggered: it never asks what event woke it. Deletion runs the purge
// behind the finalizer: the runtime namespace (and with it every Secret, copy of credentials and
// TLS material in it) is deleted and verified gone before the finalizer is removed.
import { createHash } from 'node:crypto';
import type { V1Namespace } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { FINALIZER, LABEL_MANAGED_BY, MANAGED_BY, LABEL_OWNER_NAME, LABEL_OWNER_NAMESPACE, LABEL_OWNER_UID, BROKER_NAME, ownedBy } from '../api/names.ts';
import { GROUP, VERSION, type AuthSource, type MqttDeployment, type TlsCertificate } from '../api/types.ts';
import type { OperatorConfig } from '../config.ts';
import { ownerOf, targetNamespace, type BuildContext, type SecretData, type TlsMaterial } from '../resources/context.ts';
import { desiredState } from '../resources/index.ts';
import { referencedCertificates, referencedSources } from '../resources/listeners.ts';
import { disabledMessage, mqttDeploymentStatus, sameStatus, type Observed } from '../status/mqtt-deployment.ts';
import type { KubeClient } from '../kube/client.ts';
import type { Informers } from '../kube/informers.ts';
import { caSecretName } from './ca.ts';

export interface ControllerDeps {
  client: KubeClient;
  informers: Informers;
  config: OperatorConfig;
  log: Logger;
  /** Last desired-state hash applied per MqttDeployment UID: an unchanged world sends no writes. */
  applied: Map<string, string>;
  now: () => Date;
  /** Queues another reconcile key (`Kind/namespace/name`). */
  enqueue: (key: string) => void;
}

export type Result = { requeueAfterMs?: number } | void;

/** Secret name holding a TlsCertificate's material: its secretRef, or the one the operator issues. */
export function tlsSecretName(cert: TlsCertificate): string {
  return cert.spec.secretRef?.name ?? `${cert.metadata.name}-tls`;
}

export function gatherContext(deps: ControllerDeps, md: MqttDeployment): BuildContext {
  const ns = md.metadata.namespace;
  const secrets = new Map<string, SecretData>();
  for (const s of deps.informers.secrets.list(ns)) secrets.set(s.metadata!.name!, s.data ?? {});
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
    const data = cert ? secrets.get(tlsSecretName(cert)) : undefined;
    if (data?.['tls.crt'] && data['tls.key']) tls.set(name, { crt: data['tls.crt'], key: data['tls.key'], ...(data['ca.crt'] ? { ca: data['ca.crt'] } : {}) });
  }
  return { md, config: deps.config, sources, secrets, tls, absentCertificates };
}

export async function reconcileMqttDeployment(deps: ControllerDeps, namespace: string, name: string): Promise<Result> {
  const md = deps.informers.mqttDeployments.get(name, namespace);
  if (!md) return; // Gone, and the finalizer (if any) was already removed.
  const log = deps.log.child({ kind: 'MqttDeployment', namespace, name, generation: md.metadata.generation });
  if (md.metadata.deletionTimestamp) return purge(deps, md, log);

  if (!md.metadata.finalizers?.includes(FINALIZER)) {
    // First: nothing may be created before the finalizer that guarantees its purge is in place.
    await deps.client.setFinalizers(GROUP, VERSION, 'mqttdeployments', namespace, name, [...(md.metadata.finalizers ?? []), FINALIZER], md.metadata.resourceVersion!);
  }

  const owner = ownerOf(md);
  const runtimeNs = targetNamespace(md);
  const ctx = gatherContext(deps, md);
  const desired = desiredState(ctx);
  const observed: Observed = { namespace: runtimeNs, configHash: desired.configHash, missing: desired.missing, disabled: desired.disabled, replicas: 0, readyReplicas: 0, updatedReplicas: 0 };

  const cachedNs = deps.informers.namespaces.get(runtimeNs);
  const hash = createHash('sha256').update(JSON.stringify(desired.entries)).digest('hex');
  const upToDate = deps.applied.get(owner.uid) === hash && cachedNs !== undefined && ownedBy(cachedNs.metadata?.labels, owner);

  if (!upToDate && desired.missing.length === 0) {
    // The informer holds only our namespaces; a foreign one is found with a direct read.
    const existing = cachedNs ?? (await deps.client.get<V1Namespace>({ apiVersion: 'v1', kind: 'Namespace', name: runtimeNs }));
    if (existing && !ownedBy(existing.metadata?.labels, owner)) {
      observed.conflict = `Namespace ${runtimeNs}`;
      log.info({ conflict: observed.conflict }, 'Ownership conflict');
      if (md.status?.conditions?.find((c) => c.type === 'Ready')?.reason !== 'OwnershipConflict') {
        await deps.client.event(md, 'Warning', 'OwnershipConflict', `${observed.conflict} exists and is not owned by this MqttDeployment; left untouched.`);
      }
    } else if (existing?.metadata?.deletionTimestamp) {
      observed.applyError = `Namespace ${runtimeNs} is still terminating from an earlier deployment of the same name.`;
    } else {
      try {
        if (!existing) await deps.client.event(md, 'Normal', 'NamespaceCreated', `Creating runtime namespace ${runtimeNs}.`);
        // Entries of one stage go out in parallel; stages keep the dependency order (resources/index.ts).
        for (const stage of desired.stages) {
          await Promise.all(stage.map(async (entry) => {
            if (entry.object) {
              await deps.client.apply(entry.object);
            } else {
              const current = await deps.client.get(entry.ref);
              if (current && ownedBy(current.metadata?.labels, owner)) await deps.client.delete(entry.ref);
            }
          }));
        }
        deps.applied.set(owner.uid, hash);
        log.info({ configHash: desired.configHash }, 'Reconciled MqttDeployment');
      } catch (err) {
        observed.applyError = `Applying the runtime objects failed: ${(err as Error).message}`;
        deps.applied.delete(owner.uid);
      }
    }
  }

  const readyReason = md.status?.conditions?.find((c) => c.type === 'Ready')?.reason;
  if (desired.missing.length > 0 && readyReason !== 'InvalidReference') {
    await deps.client.event(md, 'Warning', 'InvalidReference', `Not found: ${desired.missing.join(', ')}.`);
  } else if (desired.missing.length === 0 && desired.disabled.length > 0 && readyReason !== 'ListenerDisabled' && observed.applyError === undefined && observed.conflict === undefined) {
    await deps.client.event(md, 'Warning', 'ListenerDisabled', disabledMessage(desired.disabled));
  }
  const dep = deps.informers.deployments.get(BROKER_NAME, runtimeNs);
  if (dep && ownedBy(dep.metadata?.labels, owner)) {
    observed.replicas = dep.status?.replicas ?? 0;
    observed.readyReplicas = dep.status?.readyReplicas ?? 0;
    observed.updatedReplicas = dep.status?.updatedReplicas ?? 0;
  }
  const status = mqttDeploymentStatus(md, observed, deps.now().toISOString());
  if (!sameStatus(status, md.status)) {
    await deps.client.applyStatus(GROUP, VERSION, 'mqttdeployments', 'MqttDeployment', namespace, name, status);
  }
  if (observed.applyError !== undefined) throw new Error(observed.applyError);
  // Invalid references and conflicts are not retried in a hot loop: a change to the referenced
  // objects (informers) re-queues this key.
}

async function purge(deps: ControllerDeps, md: MqttDeployment, log: Logger): Promise<Result> {
  const { namespace, name } = md.metadata;
  if (!md.metadata.finalizers?.includes(FINALIZER)) return;
  const owner = ownerOf(md);
  const runtimeNs = targetNamespace(md);
  const ref = { apiVersion: 'v1', kind: 'Namespace', name: runtimeNs };
  const ns = await deps.client.get<V1Namespace>(ref);
  if (ns && ownedBy(ns.metadata?.labels, owner)) {
    if (md.spec.deletionPolicy === 'Retain') {
      await deps.client.removeLabels(ref, [LABEL_OWNER_UID, LABEL_OWNER_NAME, LABEL_OWNER_NAMESPACE, LABEL_MANAGED_BY]);
      log.info({ runtimeNamespace: runtimeNs }, 'Detached runtime namespace (deletionPolicy Retain)');
    } else {
      if (!ns.metadata?.deletionTimestamp) {
        log.info({ runtimeNamespace: runtimeNs }, 'Purging runtime namespace');
        await deps.client.event(md, 'Normal', 'PurgeStarted', `Deleting runtime namespace ${runtimeNs} and everything in it.`);
        await deps.client.delete(ref);
      }
      // Verified gone before the finalizer goes: poll until the namespace controller has emptied it.
      return { requeueAfterMs: 1000 };
    }
  }
  deps.applied.delete(owner.uid);
  if (md.spec.deletionPolicy !== 'Retain') await retireTenantCa(deps, namespace, name);
  const finalizers = (md.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
  await deps.client.setFinalizers(GROUP, VERSION, 'mqttdeployments', namespace, name, finalizers, md.metadata.resourceVersion!);
  await deps.client.event(md, 'Normal', 'PurgeFinished', md.spec.deletionPolicy === 'Retain' ? `Runtime namespace ${runtimeNs} detached and kept (deletionPolicy Retain).` : `Runtime namespace ${runtimeNs} is gone; removing the finalizer.`);
  log.info({ runtimeNamespace: runtimeNs }, 'Purged MqttDeployment');
}

/**
 * When the last MqttDeployment of a tenant namespace is purged, its CA goes too: a deployment
 * re-created later gets a fresh CA, and nothing signed by the old one is trusted again. The
 * namespace's TlsCertificates are re-queued and re-issue from the new CA.
 */
async function retireTenantCa(deps: ControllerDeps, namespace: string, name: string): Promise<void> {
  const others = deps.informers.mqttDeployments.list(namespace).filter((o) => o.metadata.name !== name);
  if (others.length > 0) return;
  const caName = caSecretName(namespace);
  const ca = deps.informers.secrets.get(caName, deps.config.operatorNamespace);
  if (ca && ca.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY) {
    await deps.client.delete({ apiVersion: 'v1', kind: 'Secret', namespace: deps.config.operatorNamespace, name: caName });
  }
  for (const cert of deps.informers.tlsCertificates.list(namespace)) deps.enqueue(`TlsCertificate/${namespace}/${cert.metadata.name}`);
}
