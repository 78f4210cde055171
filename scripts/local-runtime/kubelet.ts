// A "local kubelet" for broker Deployments: there is no kubelet in the embedded control plane, so
// this runs each Deployment the operator rendered (label managed-by=enclave-operator) as a local
// `node broker/main.ts` process, from exactly the Secrets/ConfigMaps its pod template mounts. Volumes
// are materialized under <root>/<namespace><mountPath> with the kubelet's atomic `..data` swap and
// re-synced when a Secret changes (rotation reaches the running broker's hot reload); the process is
// restarted only when the pod template's config-hash annotation changes (what a rollout would do).
// A Deployment with N replicas runs N processes, each with its own ports and replica id.
// Listeners and the admin port move to free 127.0.0.1 ports; the mapping is stable per namespace.
import { mkdir, rm, writeFile, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { parse as parseYaml, stringify } from 'yaml';
import { freePort, spawnService, waitUntilReady, type ServiceProcess } from '../../test/support/process.ts';
import { containerPorts, rewriteConfig } from './rewrite.ts';
import { volumeFiles, writeAtomicVolume } from './volumes.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MANAGED = 'app.kubernetes.io/managed-by=enclave-operator';
const HASH = 'mqtt.enclave.dev/config-hash';

export interface Endpoint { name: string; protocol: string; containerPort: number; port: number }

export interface LocalBroker {
  namespace: string;
  /** 0..replicas-1: one process per replica of the Deployment (ENCLAVE_REPLICA_ID <namespace>-<replica>). */
  replica: number;
  /** Owner MqttDeployment `namespace/name` (from the Deployment's labels). */
  owner: string;
  configHash: string;
  endpoints: Endpoint[];
  adminPort: number;
  logFile: string;
  /** Times the process was (re)started; 1 after the first start. */
  starts: number;
}

export interface LocalKubelet {
  brokers(): LocalBroker[];
  /** Resolves with the broker of `namespace` once it runs (and `accept` says yes, e.g. a new hash). */
  waitFor(namespace: string, accept?: (b: LocalBroker) => boolean, timeoutMs?: number): Promise<LocalBroker>;
  /**
   * Ends one replica's process the way a pod goes away: `graceful` is SIGTERM (a deleted pod),
   * otherwise SIGKILL (a crashed node). The sync loop starts it again, as a kubelet would.
   */
  endReplica(namespace: string, replica: number, graceful: boolean): Promise<void>;
  stop(): Promise<void>;
}

export interface LocalKubeletOptions {
  kubeConfig: KubeConfig;
  /** Where volumes, rewritten configs and broker logs go (created; removed on stop). */
  root: string;
  log?: (line: string) => void;
  /** Poll period of the Deployment/Secret sync (ms). */
  intervalMs?: number;
  /** Only Deployments whose owner MqttDeployment lives in one of these namespaces (default: all). */
  ownerNamespaces?: readonly string[];
}

interface Running {
  info: LocalBroker;
  proc: ServiceProcess | undefined;
  ports: Map<number, number>;
  adminPort: number;
  /** volume dir → resourceVersion last written */
  synced: Map<string, string>;
}

export async function startLocalKubelet(opts: LocalKubeletOptions): Promise<LocalKubelet> {
  const apps = opts.kubeConfig.makeApiClient(AppsV1Api);
  const core = opts.kubeConfig.makeApiClient(CoreV1Api);
  const log = opts.log ?? (() => undefined);
  const running = new Map<string, Running>();
  await mkdir(opts.root, { recursive: true });
  let stopped = false;
  let lastError = '';

  async function syncVolumes(ns: string, dep: V1Deployment, r: Running): Promise<string[]> {
    const pod = dep.spec?.template.spec;
    const container = pod?.containers[0];
    const mounts: string[] = [];
    for (const mount of container?.volumeMounts ?? []) {
      const vol = pod?.volumes?.find((v) => v.name === mount.name);
      const dir = join(opts.root, ns, mount.mountPath);
      if (vol?.secret?.secretName) {
        const s = await core.readNamespacedSecret({ name: vol.secret.secretName, namespace: ns });
        if (r.synced.get(dir) !== s.metadata?.resourceVersion) {
          await writeAtomicVolume(dir, volumeFiles(s.data, s.stringData));
          r.synced.set(dir, s.metadata?.resourceVersion ?? '');
          if (r.proc) log(`${ns}: Secret ${vol.secret.secretName} changed, files updated in place`);
        }
        mounts.push(mount.mountPath);
      } else if (vol?.configMap?.name) {
        const c = await core.readNamespacedConfigMap({ name: vol.configMap.name, namespace: ns });
        if (r.synced.get(dir) !== c.metadata?.resourceVersion) {
          await writeAtomicVolume(dir, volumeFiles(c.data, undefined, false));
          r.synced.set(dir, c.metadata?.resourceVersion ?? '');
        }
        mounts.push(mount.mountPath);
      } else {
        await mkdir(dir, { recursive: true }); // emptyDir and the like
      }
    }
    return mounts;
  }

  async function start(ns: string, dep: V1Deployment, r: Running, mounts: string[]): Promise<void> {
    const container = dep.spec!.template.spec!.containers[0]!;
    const args = container.args ?? [];
    const configPath = args[args.indexOf('--config') + 1];
    if (!configPath) throw new Error(`${ns}: broker container has no --config argument`);
    const rendered = parseYaml(await readFile(join(opts.root, ns, configPath), 'utf8')) as Parameters<typeof rewriteConfig>[0];
    const wanted = containerPorts(rendered);
    for (const p of wanted.listeners) if (!r.ports.has(p)) r.ports.set(p, await freePort());
    if (!r.adminPort) r.adminPort = await freePort();
    const local = rewriteConfig(rendered, mounts, join(opts.root, ns), { listeners: r.ports, admin: r.adminPort });
    const localConfig = join(opts.root, ns, `run-${r.info.replica}`, 'config.yaml');
    await mkdir(dirname(localConfig), { recursive: true });
    await writeFile(localConfig, stringify(local), { mode: 0o600 });
    if (r.proc) await r.proc.stop();
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
    // What the downward API gives each pod: its own name, the broker's replica id.
    env.ENCLAVE_REPLICA_ID = `${ns}-${r.info.replica}`;
    const proc = spawnService({
      name: `broker ${ns}#${r.info.replica}`,
      command: join(REPO, 'node_modules/.bin/node'),
      args: [join(REPO, 'broker/main.ts'), '--config', localConfig],
      logFile: r.info.logFile,
      env,
      cwd: REPO,
    });
    r.proc = proc;
    await waitUntilReady(proc, async () => (await fetch(`http://127.0.0.1:${r.adminPort}/readyz`)).ok, 30_000);
    r.info.configHash = dep.spec!.template.metadata?.annotations?.[HASH] ?? '';
    r.info.adminPort = r.adminPort;
    r.info.endpoints = (rendered.listeners ?? []).map((l) => ({
      name: String(l.name ?? ''), protocol: String(l.protocol ?? 'mqtt'), containerPort: l.port ?? 0, port: r.ports.get(l.port ?? 0)!,
    }));
    r.info.starts++;
    log(`${ns}: broker ${r.info.starts > 1 ? 're' : ''}started (config ${r.info.configHash}) on ${r.info.endpoints.map((e) => `${e.protocol} 127.0.0.1:${e.port}`).join(', ')}`);
  }

  /** Replica 0 is keyed by the namespace alone (what waitFor and the scenario files ask for). */
  const keyOf = (ns: string, replica: number): string => (replica === 0 ? ns : `${ns}#${replica}`);
  const namespaceOf = (key: string): string => key.split('#')[0]!;

  async function remove(key: string): Promise<void> {
    const r = running.get(key);
    running.delete(key);
    await r?.proc?.stop();
    const ns = namespaceOf(key);
    if (![...running.keys()].some((k) => namespaceOf(k) === ns)) await rm(join(opts.root, ns), { recursive: true, force: true });
    if (r) log(`${ns}: replica ${r.info.replica} gone, broker stopped`);
  }

  async function syncOnce(): Promise<void> {
    const list = await apps.listDeploymentForAllNamespaces({ labelSelector: MANAGED });
    const seen = new Set<string>();
    for (const dep of list.items) {
      const ns = dep.metadata?.namespace ?? '';
      if ((dep.spec?.replicas ?? 1) === 0 || dep.metadata?.deletionTimestamp) continue;
      const ownerNs = dep.metadata?.labels?.['mqtt.enclave.dev/owner-namespace'] ?? '';
      if (opts.ownerNamespaces && !opts.ownerNamespaces.includes(ownerNs)) continue;
      for (let replica = 0; replica < (dep.spec?.replicas ?? 1); replica++) {
        const key = keyOf(ns, replica);
        seen.add(key);
        let r = running.get(key);
        if (!r) {
          const labels = dep.metadata?.labels ?? {};
          await mkdir(join(opts.root, ns), { recursive: true });
          r = {
            info: { namespace: ns, replica, owner: `${labels['mqtt.enclave.dev/owner-namespace']}/${labels['mqtt.enclave.dev/owner-name']}`, configHash: '', endpoints: [], adminPort: 0, logFile: join(opts.root, ns, replica === 0 ? 'broker.log' : `broker-${replica}.log`), starts: 0 },
            proc: undefined, ports: new Map(), adminPort: 0, synced: new Map(),
          };
          running.set(key, r);
        }
        try {
          const mounts = await syncVolumes(ns, dep, r);
          const hash = dep.spec?.template.metadata?.annotations?.[HASH] ?? '';
          if (!r.proc || r.info.configHash !== hash) await start(ns, dep, r, mounts);
        } catch (err) {
          const msg = `${ns}#${replica}: ${(err as Error).message}`;
          if (msg !== lastError) log(msg);
          lastError = msg;
        }
      }
    }
    for (const key of [...running.keys()]) if (!seen.has(key)) await remove(key);
  }

  let loop: Promise<void> = Promise.resolve();
  const tick = async (): Promise<void> => {
    while (!stopped) {
      try {
        await syncOnce();
      } catch (err) {
        const msg = `sync failed: ${(err as Error).message}`;
        if (msg !== lastError) log(msg);
        lastError = msg;
      }
      await new Promise((res) => setTimeout(res, opts.intervalMs ?? 500));
    }
  };
  loop = tick();

  return {
    brokers: () => [...running.values()].filter((r) => r.proc).map((r) => ({ ...r.info, endpoints: [...r.info.endpoints] })),
    async waitFor(namespace, accept = () => true, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const r = running.get(namespace);
        if (r?.proc && r.info.starts > 0 && accept(r.info)) return { ...r.info };
        if (Date.now() > deadline) throw new Error(`local broker in ${namespace} not running after ${timeoutMs} ms${lastError ? ` (last error: ${lastError})` : ''}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    },
    async endReplica(namespace, replica, graceful) {
      const r = running.get(keyOf(namespace, replica));
      const proc = r?.proc;
      if (!r || !proc) throw new Error(`no running replica ${replica} in ${namespace}`);
      r.proc = undefined;
      if (graceful) await proc.stop();
      else {
        process.kill(-proc.pid, 'SIGKILL');
        await proc.exited;
      }
      log(`${namespace}: replica ${replica} ended (${graceful ? 'SIGTERM' : 'SIGKILL'})`);
    },
    async stop() {
      stopped = true;
      await loop;
      await Promise.all([...running.values()].map((r) => r.proc?.stop() ?? Promise.resolve()));
      running.clear();
      await rm(opts.root, { recursive: true, force: true });
    },
  };
}
