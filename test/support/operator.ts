// Owns putting Enclave's API and operator into the test world: installing the CRDs from crds/ (the
// single source of CRD YAML; charts/enclave/crds is a checked copy) and starting the operator.
//
// The operator runs two ways, because tests need two different things from it:
// - startOperator(): `node operator/main.ts` as its own process, configured only through the
//   environment the chart sets, as the image runs it. Tests that need the process boundary use it:
//   a kubeconfig of its own (the chart's ServiceAccount, so RBAC decides), SIGKILL without lease
//   release (leader election), /metrics and /healthz over HTTP, a log file per start.
// - startOperatorInProcess(): operator/main.ts's runOperator() in the test's process. Tests that
//   need to look inside use it: `idle()` (the work queue is empty) and `writes()` (API writes sent),
//   which only exist in-process.
// Installing through the chart (`helm install`) is a third, deliberate way: the tests of the chart
// itself (test/integration/helm, rbac, and the node e2e) install it that way and use waitForCrds().
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { runOperator, type RunningOperator } from '../../operator/main.ts';
import { operatorConfigFromEnv, withRedisImage, type OperatorConfig } from '../../operator/config.ts';
import { repoRoot } from './paths.ts';
import { freePort, spawnService, waitUntilReady, type ServiceProcess } from './process.ts';
import { adminKubeConfig, kubectl, world } from './world.ts';
import { eventually } from './wait.ts';

export type { RunningOperator };

export const crdDir = join(repoRoot, 'crds');
export const operatorMain = join(repoRoot, 'operator', 'main.ts');
export const enclaveCrds = ['mqttdeployments', 'authsources', 'tlscertificates'].map((p) => `${p}.mqtt.enclave.dev`);

/**
 * Waits until the three CRDs are Established and their storage serves lists (right after
 * establishment the apiserver may still answer 429 "storage is (re)initializing").
 */
export async function waitForCrds(): Promise<void> {
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...enclaveCrds.map((c) => `crd/${c}`)]);
  for (const crd of enclaveCrds) {
    await eventually(`${crd} is Established and serves lists`, async () => {
      const r = await kubectl(['get', crd, '-A', '-o', 'name'], { allowFailure: true });
      if (r.code !== 0) throw new Error(r.stderr.trim());
      return true;
    }, 30_000, 200);
  }
}

/**
 * Installs the CRDs from crds/ (server-side, idempotent; `--force-conflicts` takes the fields over
 * from an earlier helm install of the same CRDs) and waits until they serve lists.
 */
export async function installCrds(): Promise<void> {
  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', crdDir]);
  await waitForCrds();
}

export async function ensureNamespace(name: string): Promise<void> {
  await kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }) });
}

export interface TestOperator {
  service: ServiceProcess;
  metricsPort: number;
  logFile: string;
  /** Graceful stop (SIGTERM). */
  stop(): Promise<void>;
  /** `kill -9` of the whole process group: no cleanup, no lease release. */
  kill(): Promise<void>;
}

/**
 * Starts `node operator/main.ts` against the world's API server. `identity` is the leader-election
 * identity: a restarted operator with the same identity takes its own Lease back at once.
 */
export async function startOperator(operatorNamespace: string, identity: string, opts: { kubeconfigPath?: string; env?: Record<string, string> } = {}): Promise<TestOperator> {
  const w = world();
  const metricsPort = await freePort();
  const logFile = join(w.runDir, `operator-${identity}.log`);
  appendFileSync(logFile, `---- start ${new Date().toISOString()}\n`);
  const service = spawnService({
    name: `operator ${identity}`,
    command: process.execPath,
    args: [operatorMain],
    logFile,
    cwd: repoRoot,
    env: {
      ...process.env,
      KUBECONFIG: opts.kubeconfigPath ?? w.kube.kubeconfigPath,
      ENCLAVE_OPERATOR_NAMESPACE: operatorNamespace,
      ENCLAVE_METRICS_PORT: String(metricsPort),
      ENCLAVE_METRICS_HOST: '127.0.0.1',
      // The broker image the test node holds: broker pods really run. A world without a node
      // (ENCLAVE_WORLD_NODE=0) has no images; the operator then renders its default image.
      ...(w.node.images ? { ENCLAVE_BROKER_IMAGE: w.node.images.broker, ENCLAVE_REDIS_IMAGE: w.node.images.redis } : {}),
      POD_NAME: identity,
      ...opts.env,
    },
  });
  await waitUntilReady(service, async () => (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).ok, 60_000);
  return {
    service,
    metricsPort,
    logFile,
    stop: () => service.stop(10_000),
    async kill() {
      try {
        process.kill(-service.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await service.exited;
    },
  };
}

/** Everything the operator process has logged (all its starts, each after a `---- start` line). */
export function operatorLog(op: TestOperator): string {
  return readFileSync(op.logFile, 'utf8');
}

export interface InProcessOptions {
  /** Namespace the operator runs in (created if missing). */
  operatorNamespace: string;
  /** Where its JSON log goes (kept in the run dir with ENCLAVE_KEEP_WORLD=1), not into the test output. */
  logFile: string;
  logLevel?: string;
  /** Overrides of the configuration the chart would set (operator/config.ts). */
  config?: Partial<OperatorConfig>;
}

/** The managed Redis image the test node holds, over the policy given (or the environment's). */
function withNodeImages(config: Partial<OperatorConfig>): Partial<OperatorConfig> {
  const images = world().node.images;
  return images ? { ...config, policy: withRedisImage(config.policy ?? operatorConfigFromEnv().policy, images.redis) } : config;
}

/** runOperator() in this process, admin kubeconfig, no leader election (one operator per test file). */
export async function startOperatorInProcess(opts: InProcessOptions): Promise<RunningOperator> {
  await ensureNamespace(opts.operatorNamespace);
  const logger = pino({ level: opts.logLevel ?? 'info', base: { component: 'enclave-operator' } }, pino.destination({ dest: opts.logFile, sync: true }));
  return runOperator({
    kubeConfig: adminKubeConfig(),
    logger,
    leaderElection: false,
    config: withNodeImages({ operatorNamespace: opts.operatorNamespace, metricsPort: 0, metricsHost: '127.0.0.1', ...opts.config }),
  });
}
