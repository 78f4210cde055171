// Owns starting the operator for the GitOps test: operator/main.ts run as its own process against
// the world's API server (KUBECONFIG), exactly as the image's entrypoint runs dist/operator/main.js.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { world } from '../../support/world.ts';
import { repoRoot } from '../helm/helm.ts';

export interface RunningOperator {
  logFile: string;
  stop(): Promise<void>;
}

export const operatorMain = join(repoRoot, 'operator', 'main.ts');

export async function startOperator(): Promise<RunningOperator> {
  if (!existsSync(operatorMain)) throw new Error(`${operatorMain} does not exist yet (the operator issue delivers it)`);
  const w = world();
  const logFile = join(w.runDir, `operator-gitops-${process.pid}.log`);
  const log = createWriteStream(logFile);
  // Configured the way the chart configures it (environment, operator/config.ts).
  const child: ChildProcess = spawn(process.execPath, [operatorMain], {
    cwd: repoRoot,
    env: {
      ...process.env,
      KUBECONFIG: w.kube.kubeconfigPath,
      ENCLAVE_OPERATOR_NAMESPACE: 'enclave-gitops',
      ENCLAVE_METRICS_PORT: '0',
      ENCLAVE_METRICS_HOST: '127.0.0.1',
      POD_NAME: `gitops-test-${process.pid}`,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // Give it a moment to fail fast on bad flags before the test starts waiting on status.
  const early = await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 1500))]);
  if (early !== 'running') throw new Error(`operator exited with ${String(early)} at start; log: ${logFile}`);
  return {
    logFile,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      log.end();
    },
  };
}
