// `npm start`: a working local Enclave in one command. Two modes:
//   - cluster mode (--kubeconfig FILE or $KUBECONFIG): install/upgrade the CRDs and run the operator
//     against that cluster (its kubelets run the brokers);
//   - local mode (neither): start the embedded control plane and a real single node (test/support:
//     kubelet, containerd, kube-proxy, kube-router, CoreDNS; the broker image built and imported),
//     install the CRDs, run the operator in-process, apply examples/quickstart/, wait until every
//     tenant is Ready (its broker pods really run), and print how to reach each one.
// Progress is printed step by step; Ctrl-C (or SIGTERM) stops everything and removes the temp dir.
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig, VersionApi } from '@kubernetes/client-node';
import { apiErrorMessage } from '../operator/kube/client.ts';
import { pino } from 'pino';
import { runOperator, type RunningOperator } from '../operator/main.ts';
import { operatorConfigFromEnv, withRedisImage } from '../operator/config.ts';
import { kubectl as runKubectl } from '../test/support/kube.ts';
import { binDir } from '../test/support/paths.ts';
import { startWorld, type RunningWorld } from '../test/support/start-world.ts';
import { mosquittoLines, type TenantBroker } from './start-print.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const step = (text: string): void => console.log(`enclave: ${text}`);

const program = new Command()
  .name('npm start --')
  .description([
    'Run Enclave locally.',
    'Cluster mode (--kubeconfig or $KUBECONFIG set): install or upgrade the CRDs, then run the operator against that cluster until Ctrl-C.',
    "Local mode (no kubeconfig, needs root): start an embedded Kubernetes control plane on 127.0.0.1 and a real single node (kubelet, containerd, kube-proxy, kube-router for NetworkPolicies, CoreDNS), install the CRDs, run the operator, apply examples/quickstart/ (two tenants) and wait until each tenant's broker pods are Ready; print endpoints and mosquitto_sub/mosquitto_pub lines.",
    'Ctrl-C stops everything and leaves nothing running.',
  ].join('\n\n'))
  .option('--kubeconfig <file>', 'cluster mode: kubeconfig of the target cluster (default $KUBECONFIG)', (v) => {
    if (!existsSync(v)) throw new InvalidArgumentError(`kubeconfig file ${v} does not exist`);
    return v;
  })
  .option('--examples <dir>', 'local mode: manifests to apply after the operator starts', join(REPO, 'examples/quickstart'))
  .option('--no-examples', 'local mode: apply nothing, just the control plane, the node and the operator')
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

async function runOperatorIn(kc: KubeConfig, logFile: string, leaderElection: boolean, images?: { broker: string; redis: string }): Promise<RunningOperator> {
  await mkdir(dirname(logFile), { recursive: true });
  const logger = pino({ level: 'info', base: { component: 'enclave-operator' } }, pino.destination({ dest: logFile, sync: true }));
  const op = await runOperator({ kubeConfig: kc, logger, leaderElection, config: { metricsPort: 0, metricsHost: '127.0.0.1', operatorNamespace: opts.operatorNamespace, ...(images ? { defaultImage: images.broker, policy: withRedisImage(operatorConfigFromEnv().policy, images.redis) } : {}) } });
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

interface ListedMd { metadata: { namespace: string; name: string }; status?: { namespace?: string; conditions?: { type: string; status: string; reason: string; message: string }[] } }

/** Waits until MqttDeployment ns/name is Ready (its broker pods passed their readiness probes). */
async function waitReady(kc: KubeConfig, md: ListedMd['metadata'], timeoutMs: number): Promise<ListedMd> {
  const api = kc.makeApiClient(CustomObjectsApi);
  const deadline = Date.now() + timeoutMs;
  let last: ListedMd | undefined;
  while (Date.now() < deadline) {
    last = await api.getNamespacedCustomObject({ group: 'mqtt.enclave.dev', version: 'v1alpha1', namespace: md.namespace, plural: 'mqttdeployments', name: md.name }) as ListedMd;
    if (last.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) return last;
    await new Promise((r) => setTimeout(r, 300));
  }
  const ready = last?.status?.conditions?.find((c) => c.type === 'Ready');
  throw new Error(`MqttDeployment ${md.namespace}/${md.name} not Ready within ${timeoutMs / 1000} s: ${ready ? `${ready.reason}: ${ready.message}` : 'no status yet'}; see the operator log`);
}

async function tenantBroker(kc: KubeConfig, md: ListedMd): Promise<TenantBroker> {
  const ns = md.status!.namespace!;
  const core = kc.makeApiClient(CoreV1Api);
  const svc = await core.readNamespacedService({ namespace: ns, name: 'broker' });
  const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: 'app.kubernetes.io/name=enclave-broker' });
  return {
    owner: `${md.metadata.namespace}/${md.metadata.name}`,
    runtimeNamespace: ns,
    clusterIP: svc.spec?.clusterIP ?? '?',
    ports: (svc.spec?.ports ?? []).map((p) => ({ name: p.name ?? String(p.port), port: p.port })),
    pods: pods.items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => `${p.metadata?.name ?? '?'} ${p.status?.podIP ?? ''}`.trim()),
  };
}

async function localMode(): Promise<void> {
  const t0 = Date.now();
  if (process.getuid?.() !== 0) throw new Error('local mode runs a real Kubernetes node (containerd, iptables, network namespaces) and needs root; run as root, or use --kubeconfig with a cluster of yours');
  step('[1/5] starting the embedded control plane and a node (etcd, kube-apiserver, kube-controller-manager; images, containerd, kubelet, kube-proxy, kube-router, CoreDNS) ...');
  const world: RunningWorld = await startWorld({ kubeOnly: true, log: (line) => step(`      ${line}`) });
  const { kube, runDir, node } = world.info;
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
  const op = await runOperatorIn(kc, join(runDir, 'operator.log'), false, node.images);
  step(`      operator running, metrics http://127.0.0.1:${op.metricsPort}/metrics, log ${join(runDir, 'operator.log')}`);
  const brokers: TenantBroker[] = [];
  if (opts.examples === false) {
    step('[4/5] --no-examples: nothing applied');
    step('[5/5] nothing to wait for');
  } else {
    step(`[4/5] applying ${opts.examples} ...`);
    await runKubectl(kube, ['apply', '--server-side', '-f', opts.examples]);
    step('[5/5] waiting until every tenant is Ready (its broker pods pass their readiness probes) ...');
    const list = await kc.makeApiClient(CustomObjectsApi).listClusterCustomObject({ group: 'mqtt.enclave.dev', version: 'v1alpha1', plural: 'mqttdeployments' }) as { items: ListedMd[] };
    for (const item of list.items) {
      const md = await waitReady(kc, item.metadata, 120_000);
      brokers.push(await tenantBroker(kc, md));
      step(`      ${item.metadata.namespace}/${item.metadata.name} Ready`);
    }
  }
  console.log(`\nenclave: ready in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  const kubectlBin = join(kube.binDir, 'kubectl');
  console.log(`  API server:  ${kube.server}\n  kubeconfig:  export KUBECONFIG=${kube.kubeconfigPath}\n  kubectl:     ${kubectlBin} get mqttdeployments -A\n               ${kubectlBin} get nodes,pods -A -o wide\n`);
  const quickstart = opts.examples !== false && resolve(opts.examples) === join(REPO, 'examples/quickstart');
  for (const b of brokers) console.log(mosquittoLines(b, quickstart));
  console.log('Press Ctrl-C to stop everything.');
}

try {
  const kubeconfig = opts.kubeconfig ?? process.env.KUBECONFIG;
  if (kubeconfig) await clusterMode(kubeconfig);
  else await localMode();
  setInterval(() => {}, 1 << 30);
} catch (err) {
  // An API error prints as the API server's message, not client-node's dump with response headers;
  // our own errors (a service that failed to start) print whole: their detail is the log tail.
  console.error(`enclave: error: ${err instanceof ApiException ? apiErrorMessage(err) : err instanceof Error ? err.message : String(err)}`);
  await shutdown('failed', 1);
}
