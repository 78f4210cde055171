// Owns the local Kubernetes control plane for tests and `npm start`: etcd + kube-apiserver (client-cert
// auth, RBAC, default admission incl. PodSecurity and ServiceAccount, SA token signing) +
// kube-controller-manager (namespace, GC, service accounts and tokens, deployment, replicaset,
// disruption, root CA publisher, node lifecycle, endpoint slices, pod GC), on free 127.0.0.1 ports in
// a private directory. Writes an admin kubeconfig (group system:masters) that kubectl, helm and
// client-node all use. The API server also answers pods of the test node (node.ts): it listens on
// every local address but advertises the node bridge's gateway, so the `kubernetes` Service leads
// there; node.ts drops connections to its port that arrive from outside the machine.
import { request } from 'node:https';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { binDir as defaultBinDir, tool } from './paths.ts';
import { POD_GATEWAY, SERVICE_CIDR, KUBERNETES_SERVICE_IP } from './node-network.ts';
import { createCa, createLeaf, createServiceAccountKey, renderKubeconfig, type KeyPair } from './pki.ts';
import { freePort, spawnService, waitUntilReady, type ServiceProcess } from './process.ts';

/** Everything a test needs to reach the control plane; plain data so vitest can provide() it. */
export interface ControlPlaneInfo {
  /** https://127.0.0.1:<port> */
  server: string;
  /** Admin kubeconfig (user enclave-admin, group system:masters) for kubectl, helm, client-node. */
  kubeconfigPath: string;
  /** Serving CA (what a client trusts). */
  caCertPath: string;
  /** Client CA: sign a cert with it and kube-apiserver accepts CN as user, O as groups. */
  clientCaCertPath: string;
  clientCaKeyPath: string;
  /** Private directory: certs, etcd data, and one log file per process (etcd.log, ...). */
  dir: string;
  /** Where the built kubectl/helm/kube-linter live. */
  binDir: string;
  etcdUrl: string;
  /** The API server's port (on every local address; pods reach it through the `kubernetes` Service). */
  apiPort: number;
}

export interface ControlPlane extends ControlPlaneInfo {
  stop: () => Promise<void>;
}

export interface StartControlPlaneOptions {
  dir: string;
  binDir?: string;
  /** Progress lines (e.g. console.log); silent by default. */
  log?: (line: string) => void;
}

/** Controllers kube-controller-manager runs: what the operator's integration tests rely on. */
export const CONTROLLERS = [
  'namespace-controller',
  'garbage-collector-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'deployment-controller',
  'replicaset-controller',
  'disruption-controller',
  'root-ca-certificate-publisher-controller',
  'clusterrole-aggregation-controller',
  // The test node (node.ts): untaint it once Ready, give Services their endpoints, collect the
  // pods of a deleted node.
  'node-lifecycle-controller',
  'endpointslice-controller',
  'pod-garbage-collector-controller',
  // Jobs run for real now (the chart's pre-delete uninstall guard is one).
  'job-controller',
  // A claim (the managed Redis' volume) keeps its protection finalizer until this controller
  // removes it: without it a namespace holding a claim never finishes deleting.
  'persistentvolumeclaim-protection-controller',
  // A claim binds to a volume (the node test gives the managed Redis a static one), a released
  // volume is deleted by its reclaim policy, and a volume keeps its protection finalizer until unused.
  'persistentvolume-binder-controller',
  'persistentvolume-protection-controller',
  // A runtime namespace's ResourceQuota is enforced as in a real cluster: without this controller
  // the quota has no computed status and admission lets everything through.
  'resourcequota-controller',
];

interface Pki {
  servingCa: KeyPair;
  serving: KeyPair;
  clientCa: KeyPair;
  admin: KeyPair;
  kcm: KeyPair;
  kubeletClient: KeyPair;
  saKey: string;
}

async function makePki(dir: string): Promise<Pki> {
  const [servingCa, clientCa, saKey] = await Promise.all([
    createCa(dir, 'serving-ca', 'enclave-test-serving-ca'),
    createCa(dir, 'client-ca', 'enclave-test-client-ca'),
    createServiceAccountKey(dir),
  ]);
  const [serving, admin, kcm, kubeletClient] = await Promise.all([
    createLeaf(dir, 'apiserver', servingCa, {
      commonName: 'kube-apiserver',
      altNames: ['IP:127.0.0.1', `IP:${POD_GATEWAY}`, `IP:${KUBERNETES_SERVICE_IP}`, 'DNS:localhost', 'DNS:kubernetes',
        'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local'],
      usage: 'serverAuth',
    }),
    createLeaf(dir, 'admin', clientCa, { commonName: 'enclave-admin', organizations: ['system:masters'], usage: 'clientAuth' }),
    // kcm runs every controller with its own credential (no --use-service-account-credentials).
    createLeaf(dir, 'kcm', clientCa, {
      commonName: 'system:kube-controller-manager',
      organizations: ['system:masters'],
      usage: 'clientAuth',
    }),
    // kube-apiserver → kubelet (logs, exec): the kubelet trusts the client CA.
    createLeaf(dir, 'kubelet-client', clientCa, { commonName: 'kube-apiserver-kubelet-client', usage: 'clientAuth' }),
  ]);
  return { servingCa, serving, clientCa, admin, kcm, kubeletClient, saKey };
}

interface HttpsProbe {
  url: string;
  ca?: string;
  client?: KeyPair;
}

/** GET over TLS; resolves with the status code (and never throws on a non-2xx). */
function httpsStatus(probe: HttpsProbe): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      probe.url,
      {
        method: 'GET',
        timeout: 2_000,
        ca: probe.ca === undefined ? undefined : readFileSync(probe.ca),
        cert: probe.client === undefined ? undefined : readFileSync(probe.client.cert),
        key: probe.client === undefined ? undefined : readFileSync(probe.client.key),
        rejectUnauthorized: probe.ca !== undefined,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout GET ${probe.url}`)));
    req.on('error', reject);
    req.end();
  });
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  return res.ok;
}

export async function startControlPlane(opts: StartControlPlaneOptions): Promise<ControlPlane> {
  const log = opts.log ?? (() => {});
  const bins = opts.binDir ?? defaultBinDir();
  const etcdBin = tool('etcd', bins);
  const apiserverBin = tool('kube-apiserver', bins);
  const kcmBin = tool('kube-controller-manager', bins);
  const dir = opts.dir;
  const pkiDir = join(dir, 'pki');
  await mkdir(pkiDir, { recursive: true, mode: 0o700 });

  const t0 = Date.now();
  const [pki, etcdPort, etcdPeerPort, apiPort, kcmPort] = await Promise.all([
    makePki(pkiDir),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  log(`control plane: certificates ready in ${Date.now() - t0} ms`);

  const started: ServiceProcess[] = [];
  const stop = async () => {
    // Reverse order: controllers first, etcd last, so nothing logs a storm of connection errors.
    for (const service of started.reverse()) await service.stop();
    started.length = 0;
  };

  const server = `https://127.0.0.1:${apiPort}`;
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const kubeconfigPath = join(dir, 'admin.kubeconfig');
  try {
    const etcd = spawnService({
      name: 'etcd',
      command: etcdBin,
      logFile: join(dir, 'etcd.log'),
      args: [
        `--data-dir=${join(dir, 'etcd-data')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
    });
    started.push(etcd);
    await waitUntilReady(etcd, () => httpOk(`${etcdUrl}/health`));
    log(`control plane: etcd ready at ${etcdUrl} (${Date.now() - t0} ms)`);

    const apiserver = spawnService({
      name: 'kube-apiserver',
      command: apiserverBin,
      logFile: join(dir, 'kube-apiserver.log'),
      args: [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=0.0.0.0',
        `--advertise-address=${POD_GATEWAY}`,
        `--kubelet-client-certificate=${pki.kubeletClient.cert}`,
        `--kubelet-client-key=${pki.kubeletClient.key}`,
        '--kubelet-preferred-address-types=Hostname,InternalIP',
        `--secure-port=${apiPort}`,
        `--cert-dir=${pkiDir}`,
        `--tls-cert-file=${pki.serving.cert}`,
        `--tls-private-key-file=${pki.serving.key}`,
        `--client-ca-file=${pki.clientCa.cert}`,
        '--authorization-mode=RBAC',
        '--anonymous-auth=false',
        // The defaults already include these; naming them documents what the tests rely on.
        '--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,LimitRanger,ResourceQuota',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${pki.saKey}`,
        `--service-account-signing-key-file=${pki.saKey}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--allow-privileged=true',
        '--profiling=false',
        '--v=1',
      ],
    });
    started.push(apiserver);
    await waitUntilReady(apiserver, async () => (await httpsStatus({ url: `${server}/readyz`, ca: pki.servingCa.cert, client: pki.admin })) === 200, 60_000);
    log(`control plane: kube-apiserver ready at ${server} (${Date.now() - t0} ms)`);

    await writeFile(kubeconfigPath, await renderKubeconfig(server, pki.servingCa.cert, pki.admin, 'enclave-admin'), { mode: 0o600 });
    const kcmKubeconfig = join(dir, 'kcm.kubeconfig');
    await writeFile(kcmKubeconfig, await renderKubeconfig(server, pki.servingCa.cert, pki.kcm, 'kube-controller-manager'), { mode: 0o600 });

    const kcm = spawnService({
      name: 'kube-controller-manager',
      command: kcmBin,
      logFile: join(dir, 'kube-controller-manager.log'),
      args: [
        `--kubeconfig=${kcmKubeconfig}`,
        `--authentication-kubeconfig=${kcmKubeconfig}`,
        `--authorization-kubeconfig=${kcmKubeconfig}`,
        `--controllers=${CONTROLLERS.join(',')}`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${kcmPort}`,
        `--cert-dir=${join(dir, 'kcm-certs')}`,
        `--service-account-private-key-file=${pki.saKey}`,
        `--root-ca-file=${pki.servingCa.cert}`,
        '--profiling=false',
        '--v=1',
      ],
    });
    started.push(kcm);
    await waitUntilReady(kcm, async () => (await httpsStatus({ url: `https://127.0.0.1:${kcmPort}/healthz` })) === 200, 60_000);
    // Proof the controllers act (not just that the process listens): the SA controller makes `default`.
    await waitUntilReady(
      kcm,
      async () =>
        (await httpsStatus({
          url: `${server}/api/v1/namespaces/default/serviceaccounts/default`,
          ca: pki.servingCa.cert,
          client: pki.admin,
        })) === 200,
      60_000,
    );
    log(`control plane: kube-controller-manager ready (${Date.now() - t0} ms)`);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    server,
    kubeconfigPath,
    caCertPath: pki.servingCa.cert,
    clientCaCertPath: pki.clientCa.cert,
    clientCaKeyPath: pki.clientCa.key,
    dir,
    binDir: bins,
    etcdUrl,
    apiPort,
    stop,
  };
}
