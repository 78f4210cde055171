// Owns running the built helm (and kube-linter) against the test world's control plane, and the
// chart's location. Shared by the helm, rbac and gitops integration tests.
import { join } from 'node:path';
import { tool } from '../../support/paths.ts';
import { kubectl, world } from '../../support/world.ts';

export { repoRoot, run, type RunResult } from '../../support/run.ts';
import { repoRoot, run, type RunResult } from '../../support/run.ts';
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

export const enclaveCrds = ['mqttdeployments', 'authsources', 'tlscertificates'].map((p) => `${p}.mqtt.enclave.dev`);

/**
 * Waits until the three CRDs are Established and their storage serves lists (right after
 * establishment the apiserver may still answer 429 "storage is (re)initializing").
 */
export async function waitForCrds(): Promise<void> {
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...enclaveCrds.map((c) => `crd/${c}`)]);
  const deadline = Date.now() + 30_000;
  for (const crd of enclaveCrds) {
    for (;;) {
      const r = await kubectl(['get', crd, '-A', '-o', 'name'], { allowFailure: true });
      if (r.code === 0) break;
      if (Date.now() > deadline) throw new Error(`${crd} is Established but lists fail: ${r.stderr}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  }
}
