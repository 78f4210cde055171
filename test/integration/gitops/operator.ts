// Owns starting the operator for the GitOps test: operator/main.ts's runOperator() in-process,
// against the world's API server, configured as the chart configures it (operator/config.ts).
import type { RunningOperator } from '../../../operator/main.ts';
import { runOperator } from '../../../operator/main.ts';
import { join } from 'node:path';
import { pino } from 'pino';
import { adminKubeConfig, kubectl, world } from '../../support/world.ts';

export type { RunningOperator };

export async function startOperator(operatorNamespace = 'enclave-gitops'): Promise<RunningOperator> {
  await kubectl(['create', 'namespace', operatorNamespace], { allowFailure: true });
  // Its log goes to the run dir (kept with ENCLAVE_KEEP_WORLD=1), not into the test output.
  const logger = pino({ level: 'info', base: { component: 'enclave-operator' } }, pino.destination({ dest: join(world().runDir, `operator-${operatorNamespace}.log`), sync: true }));
  return runOperator({
    kubeConfig: adminKubeConfig(),
    logger,
    leaderElection: false,
    config: { operatorNamespace, metricsPort: 0, metricsHost: '127.0.0.1', identity: `gitops-test-${process.pid}`, defaultImage: world().node.images.broker },
  });
}
