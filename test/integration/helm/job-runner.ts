// Owns standing in for the kubelet and the Job controller (the test control plane runs neither):
// when the chart's pre-delete hook Job appears, run the program its pod would run — the
// uninstall guard, with the hook ServiceAccount's own token, so its RBAC is the real one — and
// write the outcome into the Job's status the way the Job controller would. Helm waits on
// exactly those conditions.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BatchV1Api } from '@kubernetes/client-node';
import { adminKubeConfig, kubectl, world } from '../../support/world.ts';
import { repoRoot, run, type RunResult } from './helm.ts';

export const guardProgram = join(repoRoot, 'images', 'operator', 'uninstall-guard.js');

/** A kubeconfig that authenticates as `serviceAccount` with a fresh bound token. */
export async function serviceAccountKubeconfig(namespace: string, serviceAccount: string): Promise<string> {
  const w = world();
  const token = (await kubectl(['-n', namespace, 'create', 'token', serviceAccount, '--duration=10m'])).stdout.trim();
  const dir = join(w.runDir, 'sa-kubeconfigs');
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${namespace}-${serviceAccount}.kubeconfig`);
  const kubeconfig = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: test\n  cluster:\n    server: ${w.kube.server}\n    certificate-authority: ${w.kube.caCertPath}`,
    'users:',
    `- name: ${serviceAccount}\n  user:\n    token: ${token}`,
    'contexts:',
    `- name: test\n  context:\n    cluster: test\n    user: ${serviceAccount}`,
    'current-context: test',
    '',
  ].join('\n');
  await writeFile(path, kubeconfig, { mode: 0o600 });
  return path;
}

/** Runs the guard program as `serviceAccount` (what the hook pod would do). */
export async function runGuard(namespace: string, serviceAccount: string): Promise<RunResult> {
  const kubeconfig = await serviceAccountKubeconfig(namespace, serviceAccount);
  return run(process.execPath, [guardProgram], { env: { KUBECONFIG: kubeconfig }, timeoutMs: 30_000 });
}

/** Waits for Job `name` to exist, runs the guard for it, and records the result in its status. */
export async function completeGuardJob(namespace: string, name: string, timeoutMs = 60_000): Promise<RunResult> {
  const batch = adminKubeConfig().makeApiClient(BatchV1Api);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const job = await batch.readNamespacedJob({ name, namespace });
      if (job.status?.startTime === undefined) break;
    } catch {
      // not created yet
    }
    if (Date.now() > deadline) throw new Error(`hook Job ${namespace}/${name} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const job = await batch.readNamespacedJob({ name, namespace });
  const serviceAccount = job.spec?.template.spec?.serviceAccountName ?? 'default';
  const result = await runGuard(namespace, serviceAccount);
  const now = new Date();
  const condition = (type: string, reason?: string, message?: string) => ({
    type,
    status: 'True',
    lastTransitionTime: now,
    lastProbeTime: now,
    ...(reason === undefined ? {} : { reason, message }),
  });
  const status =
    result.code === 0
      ? { startTime: now, completionTime: now, succeeded: 1, conditions: [condition('SuccessCriteriaMet'), condition('Complete')] }
      : {
          startTime: now,
          failed: 1,
          conditions: [
            condition('FailureTarget', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit'),
            condition('Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit'),
          ],
        };
  await batch.replaceNamespacedJobStatus({ name, namespace, body: { ...job, status } });
  return result;
}
