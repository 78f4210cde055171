// The broker Deployment: a restricted pod (non-root, read-only root filesystem, no capabilities,
// seccomp RuntimeDefault), probes on the admin port, and the config hash as a pod-template
// annotation, the only thing that varies between reconciles: a config change rolls the pods,
// nothing else does (no timestamps). The config Secret is mounted as a whole volume so rotated
// credentials and certificates reach the running broker without a restart.
import type { V1Container, V1Deployment, V1PodSpec } from '@kubernetes/client-node';
import { ADMIN_PORT, ANNOTATION_CONFIG_HASH, BROKER_CONFIG_SECRET, BROKER_NAME, brokerSelector, ownerLabels } from '../api/names.ts';
import { CONFIG_DIR } from './broker-config.ts';
import { type BuildContext, ownerOf, targetNamespace } from './context.ts';
import { servedListeners } from './listeners.ts';
import { containerResources } from './quota.ts';
import { DEFAULT_POLICY, type PlatformPolicy } from '../policy/platform.ts';

/**
 * Where broker pods may run: the tenant's nodeSelector / tolerations / affinity only when the
 * platform allows it (policy TenantScheduling, else the spec was refused), the platform's otherwise.
 */
export function scheduling(md: BuildContext['md'], policy: PlatformPolicy): Pick<V1PodSpec, 'nodeSelector' | 'tolerations' | 'affinity'> {
  const pick = <K extends 'nodeSelector' | 'tolerations' | 'affinity'>(k: K) => (policy.tenantScheduling ? md.spec[k] ?? policy.scheduling[k] : policy.scheduling[k]);
  const nodeSelector = pick('nodeSelector');
  const tolerations = pick('tolerations');
  const affinity = pick('affinity');
  return {
    ...(nodeSelector && Object.keys(nodeSelector).length > 0 ? { nodeSelector } : {}),
    ...(tolerations && tolerations.length > 0 ? { tolerations: tolerations } : {}),
    ...(affinity && Object.keys(affinity).length > 0 ? { affinity: affinity } : {}),
  };
}

/**
 * With a shared state backend each replica names itself in Redis (session owner, heartbeats): the
 * pod name, from the downward API. Only then: a memory broker needs none, and adding it to every
 * pod template would roll every existing deployment once.
 */
function replicaIdEnv(md: BuildContext['md']): Pick<V1Container, 'env'> {
  if (md.spec.state?.backend !== 'redis') return {};
  return { env: [{ name: 'ENCLAVE_REPLICA_ID', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }] };
}

export function deployment(ctx: BuildContext, configHash: string): V1Deployment {
  const md = ctx.md;
  const policy = ctx.config.policy ?? DEFAULT_POLICY;
  const labels = ownerLabels(ownerOf(md));
  const listeners = servedListeners(ctx);
  const probe = (path: string) => ({ httpGet: { path, port: 'admin' }, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 });
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: BROKER_NAME, namespace: targetNamespace(md), labels },
    spec: {
      // Nothing to serve (every listener's certificate is gone): no pods, rather than unready ones.
      replicas: listeners.length === 0 ? 0 : md.spec.replicas ?? 1,
      selector: { matchLabels: brokerSelector() },
      template: {
        metadata: { labels: { ...brokerSelector(), ...labels }, annotations: { [ANNOTATION_CONFIG_HASH]: configHash } },
        spec: {
          serviceAccountName: BROKER_NAME,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
          ...scheduling(md, policy),
          terminationGracePeriodSeconds: 30,
          containers: [{
            name: 'broker',
            image: md.spec.image ?? ctx.config.defaultImage,
            args: ['--config', `${CONFIG_DIR}/config.yaml`],
            ...replicaIdEnv(md),
            ports: [
              ...listeners.map((l) => ({ name: l.name.slice(0, 15), containerPort: l.port, protocol: 'TCP' })),
              { name: 'admin', containerPort: ADMIN_PORT, protocol: 'TCP' },
            ],
            livenessProbe: probe('/healthz'),
            readinessProbe: probe('/readyz'),
            resources: containerResources(md.spec.resources, policy),
            securityContext: {
              allowPrivilegeEscalation: false,
              readOnlyRootFilesystem: true,
              runAsNonRoot: true,
              capabilities: { drop: ['ALL'] },
              seccompProfile: { type: 'RuntimeDefault' },
            },
            volumeMounts: [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }, { name: 'tmp', mountPath: '/tmp' }],
          }],
          volumes: [
            { name: 'config', secret: { secretName: BROKER_CONFIG_SECRET, defaultMode: 0o440 } },
            { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
          ],
        },
      },
    },
  };
}
