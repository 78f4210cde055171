// The operator process: leader election, informers, the keyed queue feeding the three controllers,
// and /healthz /readyz /metrics. `runOperator()` is the whole thing as a function taking a
// KubeConfig (integration tests run it in-process); run as a program it loads the in-cluster or
// local kubeconfig. Events only choose WHICH keys to reconcile; reconcile itself is level-triggered.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LABEL_OWNER_NAME, LABEL_OWNER_NAMESPACE } from './api/names.ts';
import type { MqttDeployment } from './api/types.ts';
import { referencedCertificates, referencedSources } from './resources/listeners.ts';
import { operatorConfigFromEnv, type OperatorConfig } from './config.ts';
import { KubeClient, apiErrorMessage } from './kube/client.ts';
import { makeInformers, startInformers, stopInformers, type Cache, type Informers } from './kube/informers.ts';
import { shareConnections } from './kube/connections.ts';
import { KeyedQueue } from './kube/queue.ts';
import { LeaderElector } from './kube/leader.ts';
import { reconcileMqttDeployment, type ControllerDeps, type Result } from './reconcile/mqtt-deployment.ts';
import { reconcileAuthSource } from './reconcile/auth-source.ts';
import { reconcileTlsCertificate } from './reconcile/tls-certificate.ts';

export interface RunOptions {
  kubeConfig: KubeConfig;
  config?: Partial<OperatorConfig>;
  leaderElection?: boolean;
  logger?: Logger;
  workers?: number;
  /** Called when the operator stops on its own (lost leadership, failed start); a process should exit non-zero. */
  onFatal?: (reason: string) => void;
}

export interface RunningOperator {
  stop(): Promise<void>;
  /** Resolves when the queue is empty (nothing queued or running). */
  idle(): Promise<void>;
  /** API writes sent so far (apply, delete, status, finalizer). */
  writes(): number;
  metricsPort: number;
  registry: Registry;
}

type Kind = 'MqttDeployment' | 'AuthSource' | 'TlsCertificate';
const controllers: Record<Kind, (deps: ControllerDeps, ns: string, name: string) => Promise<Result>> = {
  MqttDeployment: reconcileMqttDeployment,
  AuthSource: reconcileAuthSource,
  TlsCertificate: reconcileTlsCertificate,
};

function metrics(registry: Registry, queue: () => number, writes: () => number, writesBy: () => ReadonlyMap<string, number>) {
  return {
    reconciles: new Counter({ name: 'enclave_operator_reconcile_total', help: 'Reconciles by kind and result.', labelNames: ['kind', 'result'], registers: [registry] }),
    duration: new Histogram({ name: 'enclave_operator_reconcile_duration_seconds', help: 'Reconcile duration by kind.', labelNames: ['kind'], buckets: [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }),
    errors: new Counter({ name: 'enclave_operator_reconcile_errors_total', help: 'Failed reconciles by kind.', labelNames: ['kind'], registers: [registry] }),
    depth: new Gauge({ name: 'enclave_operator_queue_depth', help: 'Keys queued or running.', registers: [registry], collect() { this.set(queue()); } }),
    writes: new Gauge({ name: 'enclave_operator_api_writes', help: 'API writes sent since start.', registers: [registry], collect() { this.set(writes()); } }),
    writesBy: new Gauge({
      name: 'enclave_operator_api_writes_by_operation', help: 'API writes sent since start, by operation (apply, delete, status, finalizer, event, labels).',
      labelNames: ['operation'], registers: [registry],
      collect() { for (const [operation, n] of writesBy()) this.set({ operation }, n); },
    }),
  };
}

type Verb = 'add' | 'update' | 'delete';

/**
 * Which reconcile keys an event on `obj` concerns. The object's own key always; dependents only
 * when what they depend on changed: a spec change (generation), an add or a delete — never a status
 * write. Without that gate, N deployments sharing one AuthSource would wake each other N² times
 * (every deployment's status write → the source's usedBy write → every deployment).
 * `generations` remembers the last generation seen per UID.
 */
function keysFor(informers: Informers, generations: Map<string, number>, verb: Verb, source: keyof Informers, obj: KubernetesObject): string[] {
  const ns = obj.metadata?.namespace ?? '';
  const name = obj.metadata?.name ?? '';
  const key = (kind: Kind, o: KubernetesObject) => `${kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
  const specChanged = (): boolean => {
    const uid = obj.metadata?.uid ?? `${ns}/${name}`;
    const generation = obj.metadata?.generation ?? 0;
    if (verb === 'delete') {
      generations.delete(uid);
      return true;
    }
    const changed = generations.get(uid) !== generation;
    generations.set(uid, generation);
    return changed || verb === 'add';
  };
  switch (source) {
    case 'mqttDeployments': {
      const own = `MqttDeployment/${ns}/${name}`;
      if (!specChanged() && !(obj as MqttDeployment).metadata.deletionTimestamp) return [own];
      // usedBy of the sources it names now, and of those that still list it (a removed reference).
      const refs = new Set(referencedSources(obj as MqttDeployment));
      const sources = informers.authSources.list(ns).filter((a) => refs.has(a.metadata.name) || a.status?.usedBy?.includes(name));
      return [own, ...sources.map((a) => key('AuthSource', a))];
    }
    case 'authSources':
    case 'tlsCertificates': {
      const own = `${source === 'authSources' ? 'AuthSource' : 'TlsCertificate'}/${ns}/${name}`;
      if (!specChanged()) return [own];
      const users = informers.mqttDeployments.list(ns).filter((md) =>
        (source === 'authSources' ? referencedSources(md) : referencedCertificates(md)).includes(name));
      return [own, ...users.map((md) => key('MqttDeployment', md))];
    }
    case 'secrets': {
      // A tenant CA (operator namespace) changed or went away: that tenant's certificates re-check their issuer.
      const tenant = obj.metadata?.labels?.['mqtt.enclave.dev/tenant-namespace'];
      if (tenant) return informers.tlsCertificates.list(tenant).map((c) => key('TlsCertificate', c));
      // Secrets carry no generation; any change of one in a tenant namespace may be a rotation.
      return [
        ...informers.authSources.list(ns).map((a) => key('AuthSource', a)),
        ...informers.tlsCertificates.list(ns).map((c) => key('TlsCertificate', c)),
        ...informers.mqttDeployments.list(ns).map((md) => key('MqttDeployment', md)),
      ];
    }
    case 'namespaces':
    case 'deployments':
    case 'networkPolicies':
    case 'services':
    case 'serviceAccounts':
    case 'podDisruptionBudgets':
    case 'brokerConfigs': {
      // An owned object changed (by us, by a controller, or by hand): its owner re-checks for drift.
      const labels = obj.metadata?.labels ?? {};
      const ownerNs = labels[LABEL_OWNER_NAMESPACE];
      const ownerName = labels[LABEL_OWNER_NAME];
      return ownerNs && ownerName ? [`MqttDeployment/${ownerNs}/${ownerName}`] : [];
    }
  }
}

export async function runOperator(opts: RunOptions): Promise<RunningOperator> {
  const config: OperatorConfig = { ...operatorConfigFromEnv(), ...opts.config };
  const log = opts.logger ?? pino({ level: config.logLevel, base: { component: 'enclave-operator' } });
  shareConnections(opts.kubeConfig);
  const client = new KubeClient(opts.kubeConfig);
  const informers = makeInformers(opts.kubeConfig, { operatorNamespace: config.operatorNamespace, ...(config.tenantNamespaces ? { tenantNamespaces: config.tenantNamespaces } : {}) });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const deps: ControllerDeps = { client, informers, config, log, applied: new Map(), now: () => new Date(), enqueue: () => undefined };

  const depth = { get: (): number => 0 };
  const m = metrics(registry, () => depth.get(), () => client.writes, () => client.writesBy);
  const queue = new KeyedQueue(async (key) => {
    const [kind, ns, name] = key.split('/') as [Kind, string, string];
    const end = m.duration.startTimer({ kind });
    try {
      const result = await controllers[kind](deps, ns, name);
      m.reconciles.inc({ kind, result: 'success' });
      return result;
    } catch (err) {
      m.reconciles.inc({ kind, result: 'error' });
      m.errors.inc({ kind });
      throw err;
    } finally {
      end();
    }
  }, {
    workers: opts.workers ?? 16,
    onError: (key, err) => log.warn({ key, err: apiErrorMessage(err) }, 'Reconcile failed, retrying with backoff'),
  });

  depth.get = () => queue.depth;
  deps.enqueue = (key) => queue.add(key);
  let ready = false;
  const server: Server = createServer((req, res) => {
    if (req.url === '/healthz') res.writeHead(200).end('ok');
    else if (req.url === '/readyz') res.writeHead(ready ? 200 : 503).end(ready ? 'ok' : 'not ready');
    else if (req.url === '/metrics') void registry.metrics().then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body));
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(config.metricsPort, config.metricsHost, resolve));

  const elector = opts.leaderElection === false ? undefined
    : new LeaderElector(opts.kubeConfig, { namespace: config.operatorNamespace, name: config.leaseName, identity: config.identity });
  let stopped = false;
  let resync: NodeJS.Timeout | undefined;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (resync) clearInterval(resync);
    queue.stop();
    await stopInformers(informers);
    await elector?.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };

  const enqueueAll = () => {
    for (const [kind, cache] of [['MqttDeployment', informers.mqttDeployments], ['AuthSource', informers.authSources], ['TlsCertificate', informers.tlsCertificates]] as const) {
      for (const o of cache.list()) queue.add(`${kind}/${o.metadata.namespace}/${o.metadata.name}`);
    }
  };

  const start = async () => {
    if (elector) {
      log.info({ lease: `${config.operatorNamespace}/${config.leaseName}`, identity: config.identity }, 'Waiting for leadership');
      await elector.acquire(() => {
        log.error('Lost leadership, stopping');
        void stop().then(() => opts.onFatal?.('lost leadership'));
      });
      if (stopped) return;
      log.info({ identity: config.identity }, 'Became leader');
    }
    await startInformers(informers, (what, err) => log.warn({ informer: what, err: apiErrorMessage(err) }, 'Watch failed, relisting'));
    // Handlers go on after every cache is warm: a reconcile woken by the first list of one kind
    // would otherwise see another kind's cache still empty and report a false missing reference.
    // enqueueAll() right after covers anything that changed in between (level-triggered).
    const generations = new Map<string, number>();
    // Object.entries: only the informers this scope made (brokerConfigs is absent in namespaced mode).
    for (const [source, informer] of Object.entries(informers) as [keyof Informers, Cache<KubernetesObject>][]) {
      for (const verb of ['add', 'update', 'delete'] as const) {
        informer.on(verb, (obj: KubernetesObject) => {
          for (const key of keysFor(informers, generations, verb, source, obj)) queue.add(key);
        });
      }
    }
    ready = true;
    enqueueAll();
    resync = setInterval(enqueueAll, config.resyncSeconds * 1000).unref();
  };
  if (elector) {
    ready = true; // A standby is healthy and ready: it is doing its job by waiting.
    start().catch((err: unknown) => {
      log.error({ err: apiErrorMessage(err) }, 'Operator failed to start');
      void stop().then(() => opts.onFatal?.('failed to start'));
    });
  } else {
    await start();
  }

  return {
    stop,
    idle: () => queue.idle(),
    writes: () => client.writes,
    metricsPort: (server.address() as AddressInfo).port,
    registry,
  };
}

if (import.meta.main) {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const running = await runOperator({ kubeConfig, onFatal: () => process.exit(1) });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => void running.stop().then(() => process.exit(0)));
  }
}
