// Deletion of an MqttDeployment, behind its finalizer: the runtime namespace (and with it every
// Secret, copy of credentials and TLS material in it, and a managed Redis with its claim) is deleted
// and verified gone before the finalizer is removed; an external state backend's keys are deleted
// first (reconcile/state-purge.ts: it needs the namespace). With deletionPolicy Retain the namespace
// is detached and kept instead, and an external Redis keeps its keys. The last deployment of a
// tenant namespace takes the tenant's CA with it.
import type { V1Namespace } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { FINALIZER, LABEL_MANAGED_BY, LABEL_OWNER_NAME, LABEL_OWNER_NAMESPACE, LABEL_OWNER_UID, MANAGED_BY, ownedBy } from '../api/names.ts';
import { KINDS } from '../api/owned-kinds.ts';
import type { MqttDeployment } from '../api/types.ts';
import { ownerOf, targetNamespace } from '../resources/context.ts';
import { caSecretName } from './ca.ts';
import { reconcileKey } from './keys.ts';
import { purgeExternalState } from './state-purge.ts';
import { forgetManagedRedisPassword } from './state-backend.ts';
import type { ControllerDeps, Result } from './mqtt-deployment.ts';

export async function purge(deps: ControllerDeps, md: MqttDeployment, log: Logger): Promise<Result> {
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
        const state = await purgeExternalState(deps, md, log);
        if (state !== 'done') return state;
        log.info({ runtimeNamespace: runtimeNs }, 'Purging runtime namespace');
        await deps.client.event(md, 'Normal', 'PurgeStarted', `Deleting runtime namespace ${runtimeNs} and everything in it.`);
        await deps.client.delete(ref);
      }
      // Verified gone before the finalizer goes: poll until the namespace controller has emptied it.
      return { requeueAfterMs: 1000 };
    }
  }
  deps.applied.delete(owner.uid);
  await forgetManagedRedisPassword(deps, md);
  if (md.spec.deletionPolicy !== 'Retain') await retireTenantCa(deps, namespace, name);
  const finalizers = (md.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
  await deps.client.setFinalizers({ type: KINDS.mqttDeployments, namespace, name }, { finalizers, resourceVersion: md.metadata.resourceVersion! });
  await deps.client.event(md, 'Normal', 'PurgeFinished', md.spec.deletionPolicy === 'Retain' ? `Runtime namespace ${runtimeNs} detached and kept (deletionPolicy Retain).` : `Runtime namespace ${runtimeNs} is gone; removing the finalizer.`);
  log.info({ runtimeNamespace: runtimeNs }, 'Purged MqttDeployment');
}

/**
 * When the last MqttDeployment of a tenant namespace is purged, its CA goes too: a deployment
 * re-created later gets a fresh CA, and nothing signed by the old one is trusted again. The
 * namespace's TlsCertificates are re-queued and re-issue from the new CA.
 */
async function retireTenantCa(deps: ControllerDeps, namespace: string, name: string): Promise<void> {
  // Siblings being purged too do not keep the CA alive (else two deleted together leave it behind).
  const others = deps.informers.mqttDeployments.list(namespace).filter((o) => o.metadata.name !== name && !o.metadata.deletionTimestamp);
  if (others.length > 0) return;
  const caName = caSecretName(namespace);
  const ca = deps.informers.secrets.get(caName, deps.config.operatorNamespace);
  if (ca && ca.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY) {
    await deps.client.delete({ apiVersion: 'v1', kind: 'Secret', namespace: deps.config.operatorNamespace, name: caName });
  }
  for (const cert of deps.informers.tlsCertificates.list(namespace)) deps.enqueue(reconcileKey('TlsCertificate', namespace, cert.metadata.name));
}
