// The operator process: leader election, informers, the keyed queue feeding the three controllers,
// and /healthz /readyz /metrics. `runOperator()` is the whole thing as a function taking a
// KubeConfig (integration tests run it in-process); run as a program it loads the in-cluster or
// local kubeconfig. Events only choose WHICH keys to reconcile (reconcile/keys.ts); reconcile
// itself is level-triggered.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { operatorConfigFromEnv, type OperatorConfig } from './config.ts';
import { KubeClient, apiErrorMessage } from './kube/client.ts';
import { makeInformers, startInformers, stopInformers, type Informers } from './kube/informers.ts';
import { shareConnections } from './kube/connections.ts';
import { KeyedQueue } from './kube/queue.ts';
import { LeaderElector } from './kube/leader.ts';
import { reconcileMqttDeployment, type ControllerDeps, type Result } from './reconcile/mqtt-deployment.ts';
import { reconcileAuthSource } from './reconcile/auth-source.ts';
import { reconcileTlsCertificate } from './reconcile/tls-certificate.ts';
import { keysFor, parseKey, reconcileKey, SpecGenerations, type Kind } from './reconcile/keys.ts';

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

const controllers: Record<Kind, (deps: ControllerDeps, ns: string, name: string) => Promise<Result>> = {
  MqttDeployment: reconcileMqttDeployment,
  AuthSource: reconcileAuthSource,
  TlsCertificate: reconcileTlsCertificate,
};

type Metrics = ReturnType<typeof metrics>;

/** Gauges read these when scraped. */
interface MetricSources {
  queueDepth: () => number;
  writes: () => number;
  writesBy: () => ReadonlyMap<string, number>;
}

function metrics(registry: Registry, read: MetricSources) {
  return {
    reconciles: new Counter({ name: 'enclave_operator_reconcile_total', help: 'Reconciles by kind and result.', labelNames: ['kind', 'result'], registers: [registry] }),
    duration: new Histogram({ name: 'enclave_operator_reconcile_duration_seconds', help: 'Reconcile duration by kind.', labelNames: ['kind'], buckets: [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }),
    errors: new Counter({ name: 'enclave_operator_reconcile_errors_total', help: 'Failed reconciles by kind.', labelNames: ['kind'], registers: [registry] }),
    depth: new Gauge({ name: 'enclave_operator_queue_depth', help: 'Keys queued or running.', registers: [registry], collect() { this.set(read.queueDepth()); } }),
    writes: new Gauge({ name: 'enclave_operator_api_writes', help: 'API writes sent since start.', registers: [registry], collect() { this.set(read.writes()); } }),
    writesBy: new Gauge({
      name: 'enclave_operator_api_writes_by_operation', help: 'API writes sent since start, by operation (apply, delete, status, finalizer, event, labels).',
      labelNames: ['operation'], registers: [registry],
      collect() { for (const [operation, n] of read.writesBy()) this.set({ operation }, n); },
    }),
  };
}

/** The queue's job: the key's controller, timed and counted. */
function reconcileJob(deps: ControllerDeps, m: Metrics): (key: string) => Promise<Result> {
  return async (key) => {
    const { kind, namespace, name } = parseKey(key);
    const end = m.duration.startTimer({ kind });
    try {
      const result = await controllers[kind](deps, namespace, name);
      m.reconciles.inc({ kind, result: 'success' });
      return result;
    } catch (err) {
      m.reconciles.inc({ kind, result: 'error' });
      m.errors.inc({ kind });
      throw err;
    } finally {
      end();
    }
  };
}

/** /healthz, /readyz and /metrics, listening once this resolves. */
async function healthServer(config: OperatorConfig, registry: Registry, ready: () => boolean): Promise<Server> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/healthz') res.writeHead(200).end('ok');
    else if (req.url === '/readyz') res.writeHead(ready() ? 200 : 503).end(ready() ? 'ok' : 'not ready');
    else if (req.url === '/metrics') void registry.metrics().then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body));
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(config.metricsPort, config.metricsHost, resolve));
  return server;
}

/** Every informer's events → the reconcile keys they concern (reconcile/keys.ts) → the queue. */
function routeEvents(informers: Informers, queue: KeyedQueue): void {
  const generations = new SpecGenerations();
  for (const { kind, watch, cache } of informers.watched) {
    for (const verb of ['add', 'update', 'delete'] as const) {
      cache.on(verb, (obj: KubernetesObject) => {
        for (const key of keysFor(informers, generations, { verb, kind: kind.kind, role: watch.role, obj })) queue.add(key);
      });
    }
  }
}

/** Every object of the three kinds: at start and on each resync (level-triggered, nothing is missed for good). */
function enqueueAll(informers: Informers, queue: KeyedQueue): void {
  for (const [kind, cache] of [['MqttDeployment', informers.mqttDeployments], ['AuthSource', informers.authSources], ['TlsCertificate', informers.tlsCertificates]] as const) {
    for (const o of cache.list()) queue.add(reconcileKey(kind, o.metadata.namespace, o.metadata.name));
  }
}

/** What start and stop share. */
interface Running {
  config: OperatorConfig;
  log: Logger;
  informers: Informers;
  queue: KeyedQueue;
  elector: LeaderElector | undefined;
  ready: boolean;
  stopped: boolean;
  resync?: NodeJS.Timeout;
}

/** Leadership (when elected), warm caches, then events and the periodic resync. */
async function start(r: Running, fail: (reason: string) => void): Promise<void> {
  const { config, log, informers, queue, elector } = r;
  if (elector) {
    log.info({ lease: `${config.operatorNamespace}/${config.leaseName}`, identity: config.identity }, 'Waiting for leadership');
    await elector.acquire(() => {
      log.error('Lost leadership, stopping');
      fail('lost leadership');
    });
    if (r.stopped) return;
    log.info({ identity: config.identity }, 'Became leader');
  }
  await startInformers(informers, (what, err) => log.warn({ informer: what, err: apiErrorMessage(err) }, 'Watch failed, relisting'));
  // Handlers go on after every cache is warm: a reconcile woken by the first list of one kind
  // would otherwise see another kind's cache still empty and report a false missing reference.
  // enqueueAll() right after covers anything that changed in between (level-triggered).
  routeEvents(informers, queue);
  r.ready = true;
  enqueueAll(informers, queue);
  r.resync = setInterval(() => enqueueAll(informers, queue), config.resyncSeconds * 1000).unref();
}

export async function runOperator(opts: RunOptions): Promise<RunningOperator> {
  const config: OperatorConfig = { ...operatorConfigFromEnv(), ...opts.config };
  const log = opts.logger ?? pino({ level: config.logLevel, base: { component: 'enclave-operator' } });
  shareConnections(opts.kubeConfig);
  const client = new KubeClient(opts.kubeConfig);
  const informers = makeInformers(opts.kubeConfig, { operatorNamespace: config.operatorNamespace, ...(config.tenantNamespaces ? { tenantNamespaces: config.tenantNamespaces } : {}) });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const deps: ControllerDeps = { client, informers, config, log, applied: new Map(), now: () => new Date(), enqueue: (key) => queue.add(key) };
  const m = metrics(registry, { queueDepth: () => queue.depth, writes: () => client.writes, writesBy: () => client.writesBy });
  const queue = new KeyedQueue(reconcileJob(deps, m), {
    workers: opts.workers ?? 16,
    onError: (key, err) => log.warn({ key, err: apiErrorMessage(err) }, 'Reconcile failed, retrying with backoff'),
  });
  const elector = opts.leaderElection === false ? undefined
    : new LeaderElector(opts.kubeConfig, { namespace: config.operatorNamespace, name: config.leaseName, identity: config.identity });
  const r: Running = { config, log, informers, queue, elector, ready: false, stopped: false };
  const server = await healthServer(config, registry, () => r.ready);

  const stop = async () => {
    if (r.stopped) return;
    r.stopped = true;
    if (r.resync) clearInterval(r.resync);
    queue.stop();
    await stopInformers(informers);
    await elector?.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  /** Stopped on its own: the process should exit non-zero. */
  const fail = (reason: string): void => void stop().then(() => opts.onFatal?.(reason));
  if (elector) {
    r.ready = true; // A standby is healthy and ready: it is doing its job by waiting.
    start(r, fail).catch((err: unknown) => {
      log.error({ err: apiErrorMessage(err) }, 'Operator failed to start');
      fail('failed to start');
    });
  } else {
    await start(r, fail);
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
