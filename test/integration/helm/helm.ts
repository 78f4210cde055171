// Owns the chart's location and running the built kube-linter on rendered manifests. Shared by the
// helm and rbac integration tests; helm itself runs through `helm()` of test/support/world.ts.
import { join } from 'node:path';
import { repoRoot, tool } from '../../support/paths.ts';
import { run, type RunResult } from '../../support/run.ts';
import { world } from '../../support/world.ts';

export const chartDir = join(repoRoot, 'charts', 'enclave');
export const kubeLinterConfig = join(chartDir, '.kube-linter.yaml');

export function kubeLinter(manifests: string): Promise<RunResult> {
  return run(tool('kube-linter', world().kube.binDir), ['lint', '--config', kubeLinterConfig, '-'], { input: manifests });
}
