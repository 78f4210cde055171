// Owns running the built helm (and kube-linter) against the test world's control plane, and the
// chart's location. Shared by the helm, rbac and gitops integration tests (it passes on the
// repository root and the CRD wait from test/support, which own them).
import { join } from 'node:path';
import { tool } from '../../support/paths.ts';
import { world } from '../../support/world.ts';

export { repoRoot } from '../../support/paths.ts';
export { run, type RunResult } from '../../support/run.ts';
export { enclaveCrds, waitForCrds } from '../../support/operator.ts';
import { repoRoot } from '../../support/paths.ts';
import { run, type RunResult } from '../../support/run.ts';
export const chartDir = join(repoRoot, 'charts', 'enclave');
export const kubeLinterConfig = join(chartDir, '.kube-linter.yaml');

/** helm against the world (admin kubeconfig); HELM_* dirs kept inside the run dir. */
export async function helm(args: string[], opts: { allowFailure?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  const w = world();
  const home = join(w.runDir, 'helm');
  const result = await run(tool('helm', w.kube.binDir), [`--kubeconfig=${w.kube.kubeconfigPath}`, ...args], {
    env: { HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') },
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
  });
  if (result.code !== 0 && !opts.allowFailure) {
    throw new Error(`helm ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
  }
  return result;
}

export function kubeLinter(manifests: string): Promise<RunResult> {
  return run(tool('kube-linter', world().kube.binDir), ['lint', '--config', kubeLinterConfig, '-'], { input: manifests });
}
