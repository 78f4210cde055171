// Owns starting the operator for the GitOps test: operator/main.ts's runOperator() in-process,
// against the world's API server, configured as the chart configures it (operator/config.ts).
import type { RunningOperator } from '../../../operator/main.ts';
import { runOperator } from '../../../operator/main.ts';
import { adminKubeConfig, kubectl } from '../../support/world.ts';

export type { RunningOperator };

export async function startOperator(operatorNamespace = 'enclave-gitops'): Promise<RunningOperator> {
  await kubectl(['create', 'namespace', operatorNamespace], { allowFailure: true });
  return runOperator({
    kubeConfig: adminKubeConfig(),
    leaderElection: false,
    config: { operatorNamespace, metricsPort: 0, metricsHost: '127.0.0.1', identity: `gitops-test-${process.pid}` },
  });
}
