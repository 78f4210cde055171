// The operator's only door to the API server for writes and fresh reads: server-side apply with one
// field manager and force (the operator owns every field it sets, and takes them back from anyone
// who edits them), deletes that tolerate "already gone", status via SSA on the /status subresource,
// and finalizer edits guarded by resourceVersion. Counts every write for the metrics and the bench.
import {
  ApiException, CoreV1Api, CustomObjectsApi, KubernetesObjectApi, PatchStrategy, setHeaderOptions,
  type KubeConfig, type KubernetesObject, type V1Pod,
} from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../api/names.ts';
import type { KindInfo } from '../api/owned-kinds.ts';

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

/** One of the operator's own custom resources: its kind's table entry (api/owned-kinds.ts KINDS) and where it is. */
export interface CustomResourceRef {
  type: Pick<KindInfo, 'group' | 'version' | 'plural' | 'kind'>;
  namespace: string;
  name: string;
}

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiException && err.code === 404;
}

/**
 * A short, tenant-safe message for an API error: the Status `message` the API server returned (it
 * names the field and the problem), never client-node's full text with response headers and body.
 */
export function apiErrorMessage(err: unknown): string {
  if (err instanceof ApiException) {
    let message: unknown;
    try {
      const body: unknown = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
      message = (body as { message?: unknown } | undefined)?.message;
    } catch {
      message = undefined;
    }
    const text = typeof message === 'string' && message.length > 0 ? message : `HTTP ${err.code}`;
    return text.length > 300 ? `${text.slice(0, 297)}...` : text;
  }
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.slice(0, 300);
}

export function isConflict(err: unknown): boolean {
  return err instanceof ApiException && err.code === 409;
}

export class KubeClient {
  readonly objects: KubernetesObjectApi;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  /** Writes sent (apply, delete, status, finalizer): the idle-resync bench expects this to stay flat. */
  writes = 0;
  /** The same writes by operation (apply, delete, status, finalizer, event, labels), for /metrics. */
  readonly writesBy = new Map<string, number>();

  private count(operation: string): void {
    this.writes++;
    this.writesBy.set(operation, (this.writesBy.get(operation) ?? 0) + 1);
  }

  constructor(kc: KubeConfig) {
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  async apply<T extends KubernetesObject>(object: T): Promise<T> {
    this.count('apply');
    return this.objects.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }

  async get<T extends KubernetesObject>(ref: ObjectRef): Promise<T | null> {
    try {
      return await this.objects.read<T>({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /**
   * Deletes; true if it was there. Foreground for namespaces is the API server's own business.
   * `propagation` Background for a Job: its API default orphans the pods.
   */
  async delete(ref: ObjectRef, propagation?: 'Background' | 'Foreground'): Promise<boolean> {
    this.count('delete');
    try {
      await this.objects.delete({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } }, undefined, undefined, undefined, undefined, propagation);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Applies `status` to a custom resource's /status subresource (the operator's only write to its CRs besides the finalizer). */
  async applyStatus(ref: CustomResourceRef, status: object): Promise<void> {
    this.count('status');
    const { type: { group, version, plural, kind }, namespace, name } = ref;
    await this.custom.patchNamespacedCustomObjectStatus(
      { group, version, plural, namespace, name, fieldManager: FIELD_MANAGER, force: true, body: { apiVersion: `${group}/${version}`, kind, metadata: { name, namespace }, status } },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
  }

  /** Sets metadata.finalizers, failing with 409 if the object changed since `resourceVersion` was read. */
  async setFinalizers(ref: CustomResourceRef, change: { finalizers: string[]; resourceVersion: string }): Promise<void> {
    this.count('finalizer');
    const { type: { group, version, plural }, namespace, name } = ref;
    await this.custom.patchNamespacedCustomObject(
      { group, version, plural, namespace, name, body: { metadata: { finalizers: change.finalizers, resourceVersion: change.resourceVersion } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /**
   * Records a core/v1 Event on a custom resource (what `kubectl describe` shows). Best effort: an
   * Event that cannot be written must not fail the reconcile that reports it.
   */
  async event(involved: { apiVersion: string; kind: string; metadata: { name: string; namespace: string; uid?: string } }, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    this.count('event');
    const now = new Date();
    try {
      await this.core.createNamespacedEvent({
        namespace: involved.metadata.namespace,
        body: {
          metadata: { generateName: `${involved.metadata.name}.`, namespace: involved.metadata.namespace },
          involvedObject: { apiVersion: involved.apiVersion, kind: involved.kind, name: involved.metadata.name, namespace: involved.metadata.namespace, ...(involved.metadata.uid ? { uid: involved.metadata.uid } : {}) },
          type, reason, message: message.slice(0, 1024),
          firstTimestamp: now, lastTimestamp: now, count: 1,
          source: { component: FIELD_MANAGER },
          reportingComponent: FIELD_MANAGER,
        },
      });
    } catch {
      // Events are advisory.
    }
  }

  /** Pods of `namespace` matching `labels` (the broker pods, for their waiting reasons). */
  async listPods(namespace: string, labels: Record<string, string>): Promise<V1Pod[]> {
    const list = await this.core.listNamespacedPod({ namespace, labelSelector: Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',') });
    return list.items;
  }

  /** Removes one label from an object (detach on deletionPolicy Retain). */
  async removeLabels(ref: ObjectRef, keys: string[]): Promise<void> {
    this.count('labels');
    await this.objects.patch(
      { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}), labels: Object.fromEntries(keys.map((k) => [k, null])) } } as unknown as KubernetesObject,
      undefined, undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch,
    );
  }
}
