// Informers (list + watch + cache) for everything the operator reacts to: the three kinds in every
// namespace, Secrets (referenced ones are found in the cache by name), and the operator's own
// Namespaces and Deployments, label-filtered so the cache holds only ours.
import {
  AppsV1Api, CoreV1Api, CustomObjectsApi, makeInformer,
  type Informer, type KubeConfig, type KubernetesObject, type ObjectCache, type V1Deployment, type V1Namespace, type V1Secret,
} from '@kubernetes/client-node';
import { GROUP, VERSION, type AuthSource, type MqttDeployment, type TlsCertificate } from '../api/types.ts';
import { LABEL_MANAGED_BY, MANAGED_BY } from '../api/names.ts';

export type Cache<T> = Informer<T & KubernetesObject> & ObjectCache<T & KubernetesObject>;

export interface Informers {
  mqttDeployments: Cache<MqttDeployment>;
  authSources: Cache<AuthSource>;
  tlsCertificates: Cache<TlsCertificate>;
  secrets: Cache<V1Secret>;
  namespaces: Cache<V1Namespace>;
  deployments: Cache<V1Deployment>;
}

export function makeInformers(kc: KubeConfig): Informers {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const ours = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;
  const crd = <T extends KubernetesObject>(plural: string): Cache<T> =>
    makeInformer<T>(kc, `/apis/${GROUP}/${VERSION}/${plural}`, async () => (await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as never);
  return {
    mqttDeployments: crd<MqttDeployment & KubernetesObject>('mqttdeployments'),
    authSources: crd<AuthSource & KubernetesObject>('authsources'),
    tlsCertificates: crd<TlsCertificate & KubernetesObject>('tlscertificates'),
    secrets: makeInformer(kc, '/api/v1/secrets', () => core.listSecretForAllNamespaces()),
    namespaces: makeInformer(kc, '/api/v1/namespaces', () => core.listNamespace({ labelSelector: ours }), ours),
    deployments: makeInformer(kc, '/apis/apps/v1/deployments', () => apps.listDeploymentForAllNamespaces({ labelSelector: ours }), ours),
  };
}

/** Starts every informer and resolves once each has listed (caches are warm). */
export async function startInformers(informers: Informers, onError: (what: string, err: unknown) => void): Promise<void> {
  await Promise.all(Object.entries(informers).map(async ([name, informer]: [string, Cache<unknown>]) => {
    // A watch that drops is restarted with a relist; an error must not end the informer for good.
    informer.on('error', (err: unknown) => {
      onError(name, err);
      setTimeout(() => void informer.start().catch((e: unknown) => onError(name, e)), 2000).unref();
    });
    await informer.start();
  }));
}

export async function stopInformers(informers: Informers): Promise<void> {
  await Promise.all(Object.values(informers).map((i: Cache<unknown>) => i.stop()));
}
