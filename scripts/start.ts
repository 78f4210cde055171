// `npm start`: a working local Enclave in one command. Two modes:
//   - cluster mode (--kubeconfig FILE or $KUBECONFIG): install/upgrade the CRDs and run the operator
//     against that cluster (its kubelets run the brokers);
//   - local mode (neither): start the embedded control plane (test/support), install the CRDs, run
//     the operator in-process, apply examples/quickstart/, and run every broker Deployment the
//     operator renders as a local process via scripts/local-runtime (there is no kubelet here).
// Progress is printed step by step; Ctrl-C (or SIGTERM) stops everything and removes the temp dir.
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { CustomObjectsApi, KubeConfig, VersionApi } from '@kubernetes/client-node';
import { apiErrorMessage } from '../operator/kube/client.ts';
import { pino } from 'pino';
import { runOperator, type RunningOperator } from '../operator/main.ts';
import { kubectl as runKubectl } from '../test/support/kube.ts';
import { binDir } from '../test/support/paths.ts';
import { startWorld, type RunningWorld } from '../test/support/start-world.ts';
import { startLocalKubelet, type LocalKubelet } from './local-runtime/kubelet.ts';
import { mosquittoLines } from './local-runtime/print.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const step = (text: string): void => console.log(`enclave: ${text}`);

const program = new Command()
  .name('npm start --')
  .description([
    'Run Enclave locally.',
    'Cluster mode (--kubeconfig or $KUBECONFIG set): install or upgrade the CRDs, then run the operator against that cluster until Ctrl-C.',
    "Local mode (no kubeconfig): start an embedded Kubernetes control plane on 127.0.0.1, install the CRDs, run the operator, apply examples/quickstart/ (two tenants) and run each tenant's broker as a local process from the config Secret the operator rendered; print endpoints and mosquitto_sub/mosquitto_pub lines.",
    'Ctrl-C stops everything and leaves nothing running.',
  ].join('\n\n'))
  .option('--kubeconfig <file>', 'cluster mode: kubeconfig of the target cluster (default $KUBECONFIG)', (v) => {
    if (!existsSync(v)) throw new InvalidArgumentError(`kubeconfig file ${v} does not exist`);
    return v;
  })
  .option('--examples <dir>', 'local mode: manifests to apply after the operator starts', join(REPO, 'examples/quickstart'))
  .option('--no-examples', 'local mode: apply nothing, just the control plane + operator + local runtime')
  .option('--operator-namespace <ns>', 'namespace of the operator (leader Lease)', 'enclave-system')
  .showHelpAfterError('(npm start -- --help for usage)')
  .parse();
const opts = program.opts<{ kubeconfig?: string; examples: string | false; operatorNamespace: string }>();

const cleanups: (() => Promise<void>)[] = [];
let stopping = false;
async function shutdown(reason: string, code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    step(`${reason}: stopping ...`);
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        console.error(`enclave: cleanup failed: ${(err as Error).message}`);
      }
    }
    step('stopped, nothing left running');
  }
  process.exit(code);
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void shutdown(signal, 0));

async function reachable(kc: KubeConfig): Promise<string> {
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 10 s')), 10_000).unref());
  const v = await Promise.race([kc.makeApiClient(VersionApi).getCode(), timeout]);
  return v.gitVersion;
}

async function runOperatorIn(kc: KubeConfig, logFile: string, leaderElection: boolean): Promise<RunningOperator> {
  await mkdir(dirname(logFile), { recursive: true });
  const logger = pino({ level: 'info', base: { component: 'enclave-operator' } }, pino.destination({ dest: logFile, sync: true }));
  const op = await runOperator({ kubeConfig: kc, logger, leaderElection, config: { metricsPort: 0, metricsHost: '127.0.0.1', operatorNamespace: opts.operatorNamespace } });
  cleanups.push(() => op.stop());
  return op;
}

async function clusterMode(path: string): Promise<void> {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(path);
  } catch (err) {
    throw new Error(`cannot read kubeconfig ${path}: ${(err as Error).message}`, { cause: err });
  }
  step(`cluster mode: ${kc.getCurrentCluster()?.server ?? '?'} (context ${kc.getCurrentContext()})`);
  const version = await reachable(kc).catch((err: unknown) => {
    throw new Error(`the cluster at ${kc.getCurrentCluster()?.server ?? path} is unreachable: ${(err as Error).message}`);
  });
  step(`cluster reachable, Kubernetes ${version}`);
  const cp = { kubeconfigPath: path, binDir: binDir() };
  step('installing/upgrading the CRDs (kubectl apply --server-side crds/) ...');
  await runKubectl(cp, ['apply', '--server-side', '--force-conflicts', '-f', join(REPO, 'crds')]);
  await runKubectl(cp, ['create', 'namespace', opts.operatorNamespace], { allowFailure: true });
  const logFile = join(REPO, '.enclave', 'operator.log');
  const op = await runOperatorIn(kc, logFile, true);
  step(`operator running (leader election in ${opts.operatorNamespace}), metrics http://127.0.0.1:${op.metricsPort}/metrics, log ${logFile}`);
  step('press Ctrl-C to stop');
}

async function localMode(): Promise<void> {
  const t0 = Date.now();
  step('[1/5] starting the embedded control plane (etcd, kube-apiserver, kube-controller-manager) ...');
  const world: RunningWorld = await startWorld({ kubeOnly: true, log: (line) => step(`      ${line}`) });
  const { kube, runDir } = world.info;
  cleanups.push(async () => {
    await world.stop();
    await rm(runDir, { recursive: true, force: true });
  });
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  step('[2/5] installing the CRDs ...');
  await runKubectl(kube, ['apply', '--server-side', '-f', join(REPO, 'crds')]);
  await runKubectl(kube, ['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  await runKubectl(kube, ['create', 'namespace', opts.operatorNamespace]);
  step('[3/5] starting the operator ...');
  const op = await runOperatorIn(kc, join(runDir, 'operator.log'), false);
  step(`      operator running, metrics http://127.0.0.1:${op.metricsPort}/metrics, log ${join(runDir, 'operator.log')}`);
  step('[4/5] starting the local runtime (runs broker Deployments as local processes) ...');
  const kubelet: LocalKubelet = await startLocalKubelet({ kubeConfig: kc, root: join(runDir, 'brokers'), log: (line) => step(`      ${line}`) });
  cleanups.push(() => kubelet.stop());
  if (opts.examples === false) {
    step('[5/5] --no-examples: nothing applied');
  } else {
    step(`[5/5] applying ${opts.examples} ...`);
    await runKubectl(kube, ['apply', '--server-side', '-f', opts.examples]);
    const list = await kc.makeApiClient(CustomObjectsApi).listClusterCustomObject({ group: 'mqtt.enclave.dev', version: 'v1alpha1', plural: 'mqttdeployments' }) as { items: { metadata: { namespace: string; name: string }; status?: { namespace?: string } }[] };
    for (const md of list.items) {
      const deadline = Date.now() + 60_000;
      let ns: string | undefined;
      while (!ns && Date.now() < deadline) {
        const cur = await kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ group: 'mqtt.enclave.dev', version: 'v1alpha1', namespace: md.metadata.namespace, plural: 'mqttdeployments', name: md.metadata.name }) as { status?: { namespace?: string } };
        ns = cur.status?.namespace;
        if (!ns) await new Promise((r) => setTimeout(r, 200));
      }
      if (!ns) throw new Error(`MqttDeployment ${md.metadata.namespace}/${md.metadata.name} got no runtime namespace within 60 s; see the operator log`);
      // status.namespace is the deterministic name, reported before the operator may have created it
      // (e.g. while a referenced Secret is still on its way): wait for the broker itself.
      await kubelet.waitFor(ns, undefined, 60_000);
    }
  }
  console.log(`\nenclave: ready in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  console.log(`  API server:  ${kube.server}\n  kubeconfig:  export KUBECONFIG=${kube.kubeconfigPath}\n  kubectl:     ${join(kube.binDir, 'kubectl')} get mqttdeployments -A\n`);
  for (const b of kubelet.brokers()) {
    console.log(mosquittoLines(b, opts.examples !== false && resolve(opts.examples) === join(REPO, 'examples/quickstart')));
  }
  console.log('Press Ctrl-C to stop everything.');
}

try {
  const kubeconfig = opts.kubeconfig ?? process.env.KUBECONFIG;
  if (kubeconfig) await clusterMode(kubeconfig);
  else await localMode();
  setInterval(() => {}, 1 << 30);
} catch (err) {
  // An API error prints as the API server's message, not client-node's dump with response headers.
  console.error(`enclave: error: ${apiErrorMessage(err)}`);
  await shutdown('failed', 1);
}
