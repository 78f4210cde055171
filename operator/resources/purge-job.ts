// The Job that deletes an external state backend's keys (every key under the deployment's prefix)
// before its runtime namespace is deleted. It runs the broker image's purge entry point
// (broker/purge-main.ts) with the broker-config Secret mounted, so it reaches exactly the Redis the
// brokers used, with their credentials, through their network policies: the pod carries the broker
// labels (allow-dns, allow-state-backend select it), and the brokers are gone by then (reconcile/
// state-purge.ts), so no Service or PDB counts it as one. A restricted pod like the broker's.
import type { V1Job } from '@kubernetes/client-node';
import { BROKER_CONFIG_SECRET, BROKER_NAME, brokerSelector, LABEL_ROLE, ownerLabels, ROLE_STATE_PURGE } from '../api/names.ts';
import type { MqttDeployment } from '../api/types.ts';
import { DEFAULT_POLICY } from '../policy/platform.ts';
import { parseQuantity } from '../policy/quantity.ts';
import { CONFIG_DIR } from './broker-config.ts';
import { type BuildContext, ownerOf, targetNamespace } from './context.ts';
import { scheduling } from './deployment.ts';

export const STATE_PURGE_JOB = 'state-purge';
/** The entry point in the broker image (images/broker/Dockerfile: WORKDIR /app, dist/ from tsc). */
export const PURGE_ENTRY_POINT = '/app/dist/broker/purge-main.js';

const smaller = (a: string, b: string): string => (parseQuantity(a)! <= parseQuantity(b)! ? a : b);

export function statePurgeJob(md: MqttDeployment, config: BuildContext['config']): V1Job {
  const policy = config.policy ?? DEFAULT_POLICY;
  const labels = { ...ownerLabels(ownerOf(md)), [LABEL_ROLE]: ROLE_STATE_PURGE };
  const memory = smaller('128Mi', policy.ceilings.memory);
  return {
    apiVersion: 'batch/v1', kind: 'Job', metadata: { name: STATE_PURGE_JOB, namespace: targetNamespace(md), labels },
    spec: {
      // A few quick retries of its own (a Redis restarting); after that the operator reports
      // PurgeFailed, deletes the Job and tries again with its backoff.
      backoffLimit: 2,
      activeDeadlineSeconds: 300,
      template: {
        metadata: { labels: { ...brokerSelector(), ...labels } },
        spec: {
          restartPolicy: 'Never',
          serviceAccountName: BROKER_NAME,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
          ...scheduling(md, policy),
          containers: [{
            name: 'purge',
            image: md.spec.image ?? config.defaultImage,
            command: ['node', PURGE_ENTRY_POINT],
            args: ['--config', `${CONFIG_DIR}/config.yaml`],
            resources: { requests: { cpu: smaller('50m', policy.ceilings.cpu), memory: smaller('64Mi', memory) }, limits: { memory } },
            securityContext: {
              allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true,
              capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
            },
            volumeMounts: [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }],
          }],
          volumes: [{ name: 'config', secret: { secretName: BROKER_CONFIG_SECRET, defaultMode: 0o440 } }],
        },
      },
    },
  };
}
