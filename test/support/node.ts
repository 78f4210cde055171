// Owns the test world's single node: containerd (Debian's 1.6, CRI) with runc and the bridge CNI,
// the kubelet, kube-scheduler, kube-proxy (iptables mode), kube-router as the NetworkPolicy
// enforcer (firewall only) and CoreDNS as a pod behind the kube-dns Service, all from the pinned
// versions in scripts/versions.env. Started after the control plane, stopped before it; stop()
// leaves the machine as the node found it (node/host.ts). One node per machine: its bridge, the
// kubelet's ports and a few hard-coded paths are machine-global, so the world shares it.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { ControlPlaneInfo } from './control-plane.ts';
import { exportImage, type NodeImages } from './images.ts';
import { clusterDnsManifests, cniConfList, containerdConfig, kubeletConfig, nodePaths } from './node/config.ts';
import { hostSnapshot, installGuards, restoreHost, sweepStaleNode, type HostSnapshot } from './node/host.ts';
import { POD_CIDR } from './node-network.ts';
import { createLeaf, renderKubeconfig } from './pki.ts';
import { freePort, spawnService, waitUntilReady, type ServiceProcess } from './process.ts';
import { run } from './run.ts';
import { tool } from './paths.ts';
import { eventually } from './wait.ts';

export interface NodeInfo {
  /** The Node object's name (resolves to 127.0.0.1, so the API server reaches the kubelet on loopback). */
  name: string;
  /** containerd's socket (ctr --address). */
  containerdSocket: string;
  /** Images present in the node's runtime (imagePullPolicy Never). */
  images: NodeImages;
  dir: string;
}

export interface RunningNode extends NodeInfo {
  stop: () => Promise<void>;
}

export interface StartNodeOptions {
  dir: string;
  kube: ControlPlaneInfo;
  images: NodeImages;
  log?: (line: string) => void;
}

const REQUIRED = ['/usr/bin/containerd', '/usr/sbin/runc', '/usr/lib/cni/bridge', '/usr/lib/cni/host-local', '/usr/lib/cni/portmap', '/usr/lib/cni/loopback', '/usr/sbin/iptables', '/usr/sbin/ipset'];

/** The host's name when it resolves to 127.0.0.1 (the kubelet listens there only), else localhost. */
function nodeName(): string {
  const h = hostname().toLowerCase();
  const hosts = existsSync('/etc/hosts') ? readFileSync('/etc/hosts', 'utf8') : '';
  const loopback = hosts.split('\n').some((l) => {
    const [ip, ...names] = l.trim().split(/\s+/);
    return ip === '127.0.0.1' && names.includes(h);
  });
  return loopback && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(h) ? h : 'localhost';
}

async function kubectlJson(kube: ControlPlaneInfo, args: string[]): Promise<unknown> {
  const r = await run(tool('kubectl', kube.binDir), [`--kubeconfig=${kube.kubeconfigPath}`, ...args, '-o', 'json']);
  if (r.code !== 0) throw new Error(r.stderr.trim());
  return JSON.parse(r.stdout) as unknown;
}

interface Condition { type: string; status: string }

async function nodeReady(kube: ControlPlaneInfo, name: string): Promise<boolean> {
  const node = (await kubectlJson(kube, ['get', 'node', name])) as { status?: { conditions?: Condition[] }; spec?: { taints?: unknown[] } };
  const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  // The node-lifecycle controller lifts the not-ready taint a moment after Ready: wait for it too.
  return ready && (node.spec?.taints?.length ?? 0) === 0;
}

async function clientKubeconfig(kube: ControlPlaneInfo, dir: string, name: string, cn: string, groups: string[]): Promise<string> {
  const pair = await createLeaf(dir, name, { cert: kube.clientCaCertPath, key: kube.clientCaKeyPath }, { commonName: cn, organizations: groups, usage: 'clientAuth' });
  const path = join(dir, `${name}.kubeconfig`);
  await writeFile(path, await renderKubeconfig(`https://127.0.0.1:${kube.apiPort}`, kube.caCertPath, pair, cn), { mode: 0o600 });
  return path;
}

/** Kills every process of every pod (kubepods cgroups) and every shim of our containerd. */
function killPodProcesses(socket: string): void {
  const pids = new Set<number>();
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    try {
      for (const p of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) pids.add(Number(p));
    } catch {
      // not a cgroup directory
    }
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
  };
  walk('/sys/fs/cgroup/pids/kubepods');
  walk('/sys/fs/cgroup/memory/kubepods');
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.startsWith('/usr/bin/containerd-shim') && cmd.includes(socket)) pids.add(Number(pid));
    } catch {
      // exited meanwhile
    }
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

export async function startNode(opts: StartNodeOptions): Promise<RunningNode> {
  const log = opts.log ?? (() => {});
  if (process.getuid?.() !== 0) throw new Error('the test node needs root (containerd, iptables, network namespaces)');
  const missing = REQUIRED.filter((p) => !existsSync(p));
  if (missing.length > 0) throw new Error(`the test node needs ${missing.join(', ')}: run \`npm run setup\``);
  const bins = opts.kube.binDir;
  const [kubelet, proxy, scheduler, router] = ['kubelet', 'kube-proxy', 'kube-scheduler', 'kube-router'].map((b) => tool(b, bins)) as [string, string, string, string];
  const p = nodePaths(opts.dir);
  const name = nodeName();
  const t0 = Date.now();
  await sweepStaleNode();
  const before: HostSnapshot = await hostSnapshot(opts.dir);
  for (const d of ['containerd', 'cni/net.d', 'cni/ipam', 'kubelet', 'pod-logs', 'volume-plugins', 'pki']) await mkdir(join(p.dir, d), { recursive: true, mode: 0o700 });
  const pki = join(p.dir, 'pki');
  const [kubeletKc, proxyKc, schedulerKc, routerKc] = await Promise.all([
    // A test node: the kubelet and kube-router get admin rights rather than the Node authorizer.
    clientKubeconfig(opts.kube, pki, 'kubelet', `system:node:${name}`, ['system:nodes', 'system:masters']),
    clientKubeconfig(opts.kube, pki, 'kube-proxy', 'system:kube-proxy', []),
    clientKubeconfig(opts.kube, pki, 'kube-scheduler', 'system:kube-scheduler', []),
    clientKubeconfig(opts.kube, pki, 'kube-router', 'kube-router', ['system:masters']),
  ]);
  await writeFile(join(p.dir, 'containerd', 'config.toml'), containerdConfig(p, opts.images.pause));
  await writeFile(join(p.cniConfDir, '10-enclave.conflist'), cniConfList(p));
  await writeFile(join(p.dir, 'kubelet-config.yaml'), kubeletConfig(p, opts.kube.clientCaCertPath));
  await writeFile(join(p.dir, 'resolv.conf'), 'nameserver 127.0.0.1\n');

  const started: ServiceProcess[] = [];
  const stop = async () => {
    const t = Date.now();
    // Controllers first so nothing restarts what is being torn down, containerd last.
    for (const s of [...started].reverse()) {
      if (s.name === 'containerd') killPodProcesses(p.containerdSocket);
      await s.stop(3_000);
    }
    started.length = 0;
    killPodProcesses(p.containerdSocket);
    await run(proxy, ['--cleanup', '--v=0']);
    await restoreHost({ nodeDir: p.dir, before });
    log(`node: stopped and host restored in ${Date.now() - t} ms`);
  };

  try {
    await installGuards(opts.kube.apiPort);
    const containerd = spawnService({ name: 'containerd', command: '/usr/bin/containerd', args: ['--config', join(p.dir, 'containerd', 'config.toml')], logFile: join(p.dir, 'containerd.log') });
    started.push(containerd);
    const ctr = (args: string[]) => run('ctr', ['--address', p.containerdSocket, '--namespace', 'k8s.io', ...args], { timeoutMs: 300_000 });
    await waitUntilReady(containerd, async () => (await ctr(['version'])).code === 0, 30_000);
    // Every image the node needs (Object.values would type them as any).
    const tags = (Object.keys(opts.images) as (keyof NodeImages)[]).map((k) => opts.images[k]);
    const archives = await Promise.all(tags.map((tag) => exportImage(tag)));
    await Promise.all(archives.map(async (a) => {
      const r = await ctr(['images', 'import', a]);
      if (r.code !== 0) throw new Error(`ctr images import ${a}: ${r.stderr}`);
    }));
    log(`node: containerd ready, ${archives.length} images imported (${Date.now() - t0} ms)`);

    const kubeletProc = spawnService({
      name: 'kubelet', command: kubelet, logFile: join(p.dir, 'kubelet.log'),
      args: [`--config=${join(p.dir, 'kubelet-config.yaml')}`, `--kubeconfig=${kubeletKc}`, `--root-dir=${p.kubeletDir}`,
        `--hostname-override=${name}`, '--v=1'],
    });
    started.push(kubeletProc);
    const schedulerPort = await freePort();
    started.push(spawnService({
      name: 'kube-scheduler', command: scheduler, logFile: join(p.dir, 'kube-scheduler.log'),
      args: [`--kubeconfig=${schedulerKc}`, `--authentication-kubeconfig=${schedulerKc}`, `--authorization-kubeconfig=${schedulerKc}`,
        '--leader-elect=false', '--bind-address=127.0.0.1', `--secure-port=${schedulerPort}`, `--cert-dir=${join(p.dir, 'scheduler-certs')}`, '--v=1'],
    }));
    const [proxyHealth, proxyMetrics] = [await freePort(), await freePort()];
    const proxyProc = spawnService({
      name: 'kube-proxy', command: proxy, logFile: join(p.dir, 'kube-proxy.log'),
      args: [`--kubeconfig=${proxyKc}`, `--hostname-override=${name}`, '--proxy-mode=iptables', `--cluster-cidr=${POD_CIDR}`,
        // No sysctl or oom_score_adj writes this machine refuses or that outlive the node.
        '--conntrack-max-per-core=0', '--conntrack-tcp-timeout-established=0', '--conntrack-tcp-timeout-close-wait=0', '--oom-score-adj=0',
        `--healthz-bind-address=127.0.0.1:${proxyHealth}`, `--metrics-bind-address=127.0.0.1:${proxyMetrics}`, '--v=1'],
    });
    started.push(proxyProc);
    await eventually(`node ${name} Ready and untainted`, () => nodeReady(opts.kube, name), 60_000, 200);
    // After the Node object exists: kube-router identifies its node by it at start.
    const routerProc = spawnService({
      name: 'kube-router', command: router, logFile: join(p.dir, 'kube-router.log'),
      args: [`--kubeconfig=${routerKc}`, `--hostname-override=${name}`, '--run-firewall=true', '--run-router=false', '--run-service-proxy=false',
        // Its health port would listen on every address: off; its chains in the filter table say it runs.
        '--enable-ipv6=false', '--health-port=0', '--metrics-port=0', '--v=1'],
    });
    started.push(routerProc);
    await waitUntilReady(proxyProc, async () => (await fetch(`http://127.0.0.1:${proxyHealth}/healthz`, { signal: AbortSignal.timeout(2_000) })).ok, 30_000);
    await waitUntilReady(routerProc, async () => (await run('iptables', ['-w', '5', '-S', 'KUBE-ROUTER-FORWARD'])).code === 0, 30_000);
    log(`node: ${name} Ready (${Date.now() - t0} ms)`);

    const kubectlBin = tool('kubectl', bins);
    const applied = await run(kubectlBin, [`--kubeconfig=${opts.kube.kubeconfigPath}`, 'apply', '--server-side', '-f', '-'], { input: clusterDnsManifests(opts.images.coredns) });
    if (applied.code !== 0) throw new Error(`applying cluster DNS: ${applied.stderr}`);
    await eventually('CoreDNS available', async () => {
      const d = (await kubectlJson(opts.kube, ['-n', 'kube-system', 'get', 'deployment', 'coredns'])) as { status?: { availableReplicas?: number } };
      return (d.status?.availableReplicas ?? 0) >= 1;
    }, 60_000, 200).catch(async (err: unknown) => {
      const logs = await run(kubectlBin, [`--kubeconfig=${opts.kube.kubeconfigPath}`, '-n', 'kube-system', 'logs', 'deployment/coredns', '--tail=20']);
      throw new Error(`${(err as Error).message}; CoreDNS log:\n${logs.stdout}${logs.stderr}`, { cause: err });
    });
    log(`node: cluster DNS ready (${Date.now() - t0} ms)`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { name, containerdSocket: p.containerdSocket, images: opts.images, dir: p.dir, stop };
}
