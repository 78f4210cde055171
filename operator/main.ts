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
import { operatorConfigFromEnv, type OperatorConfig } from './config.ts';
import { KubeClient } from './kube/client.ts';
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

function metrics(registry: Registry, queue: () => number, writes: () => number) {
  return {
    reconciles: new Counter({ name: 'enclave_operator_reconcile_total', help: 'Reconciles by kind and result.', labelNames: ['kind', 'result'], registers: [registry] }),
    duration: new Histogram({ name: 'enclave_operator_reconcile_duration_seconds', help: 'Reconcile duration by kind.', labelNames: ['kind'], buckets: [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }),
    errors: new Counter({ name: 'enclave_operator_reconcile_errors_total', help: 'Failed reconciles by kind.', labelNames: ['kind'], registers: [registry] }),
    depth: new Gauge({ name: 'enclave_operator_queue_depth', help: 'Keys queued or running.', registers: [registry], collect() { this.set(queue()); } }),
    writes: new Gauge({ name: 'enclave_operator_api_writes', help: 'API writes sent since start.', registers: [registry], collect() { this.set(writes()); } }),
  };
}

/** Which reconcile keys an event on `obj` concerns. Broad on purpose: extra keys cost a no-op reconcile. */
function keysFor(informers: Informers, source: keyof Informers, obj: KubernetesObject): string[] {
  const ns = obj.metadata?.namespace ?? '';
  const name = obj.metadata?.name ?? '';
  const all = (kind: Kind, list: readonly KubernetesObject[]) => list.map((o) => `${kind}/${o.metadata?.namespace}/${o.metadata?.name}`);
  switch (source) {
    case 'mqttDeployments':
      return [`MqttDeployment/${ns}/${name}`, ...all('AuthSource', informers.authSources.list(ns))];
    case 'authSources':
    case 'tlsCertificates':
      return [`${source === 'authSources' ? 'AuthSource' : 'TlsCertificate'}/${ns}/${name}`, ...all('MqttDeployment', informers.mqttDeployments.list(ns))];
    case 'secrets': {
      // A tenant CA (operator namespace) changed or went away: that tenant's certificates re-check their issuer.
      const tenant = obj.metadata?.labels?.['mqtt.enclave.dev/tenant-namespace'];
      if (tenant) return all('TlsCertificate', informers.tlsCertificates.list(tenant));
      return [...all('AuthSource', informers.authSources.list(ns)), ...all('TlsCertificate', informers.tlsCertificates.list(ns)), ...all('MqttDeployment', informers.mqttDeployments.list(ns))];
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
  const m = metrics(registry, () => depth.get(), () => client.writes);
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
    onError: (key, err) => log.warn({ key, err: (err as Error).message }, 'Reconcile failed, retrying with backoff'),
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
    await startInformers(informers, (what, err) => log.warn({ informer: what, err: (err as Error)?.message }, 'Watch failed, relisting'));
    // Handlers go on after every cache is warm: a reconcile woken by the first list of one kind
    // would otherwise see another kind's cache still empty and report a false missing reference.
    // enqueueAll() right after covers anything that changed in between (level-triggered).
    // Object.entries: only the informers this scope made (brokerConfigs is absent in namespaced mode).
    for (const [source, informer] of Object.entries(informers) as [keyof Informers, Cache<KubernetesObject>][]) {
      const handler = (obj: KubernetesObject) => {
        for (const key of keysFor(informers, source, obj)) queue.add(key);
      };
      informer.on('add', handler);
      informer.on('update', handler);
      informer.on('delete', handler);
    }
    ready = true;
    enqueueAll();
    resync = setInterval(enqueueAll, config.resyncSeconds * 1000).unref();
  };
  if (elector) {
    ready = true; // A standby is healthy and ready: it is doing its job by waiting.
    start().catch((err: unknown) => {
      log.error({ err: (err as Error).message }, 'Operator failed to start');
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
