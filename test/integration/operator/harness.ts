// Owns what the operator integration tests share: the operator run as its own process (exactly as
// the image runs it, configured through the environment like the chart does), kubectl helpers that
// read objects as JSON, and polling. Each test file uses its own operator namespace and tenants.
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kubectl, world } from '../../support/world.ts';
import { freePort, spawnService, waitUntilReady, type ServiceProcess } from '../../support/process.ts';
import { repoRoot, waitForCrds } from '../helm/helm.ts';

export const operatorMain = join(repoRoot, 'operator', 'main.ts');

export interface TestOperator {
  service: ServiceProcess;
  metricsPort: number;
  logFile: string;
  /** Graceful stop (SIGTERM). */
  stop(): Promise<void>;
  /** `kill -9` of the whole process group: no cleanup, no lease release. */
  kill(): Promise<void>;
}

/** Installs the CRDs from crds/ (server-side, idempotent) and waits until they serve lists. */
export async function installCrds(): Promise<void> {
  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(repoRoot, 'crds')]);
  await waitForCrds();
}

export async function ensureNamespace(name: string): Promise<void> {
  await kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }) });
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
      // The broker image the test node holds: broker pods really run.
      ENCLAVE_BROKER_IMAGE: w.node.images.broker,
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

export function operatorLog(op: TestOperator): string {
  return readFileSync(op.logFile, 'utf8');
}

/** Count of `Reconciled MqttDeployment` log lines for namespace/name since the operator's last start. */
export function reconcileCount(op: TestOperator, namespace: string, name: string): number {
  const log = operatorLog(op);
  return log
    .slice(log.lastIndexOf('---- start'))
    .split('\n')
    .filter((l) => l.includes('Reconciled MqttDeployment') && l.includes(`"namespace":"${namespace}"`) && l.includes(`"name":"${name}"`)).length;
}

export async function metric(op: TestOperator, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${op.metricsPort}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await sleep(250);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}${last ? ` (last error: ${last instanceof Error ? last.message : JSON.stringify(last)})` : ''}`);
}

export interface Obj {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid: string;
    resourceVersion: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
    deletionTimestamp?: string;
  };
  [k: string]: unknown;
}

/** `kubectl get` as JSON; undefined when NotFound. */
export async function get<T = Obj>(kind: string, name: string, namespace?: string): Promise<T | undefined> {
  const r = await kubectl(['get', kind, name, ...(namespace ? ['-n', namespace] : []), '-o', 'json'], { allowFailure: true });
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get ${kind} ${name}: ${r.stderr}`);
  }
  return JSON.parse(r.stdout) as T;
}

export async function list(kind: string, namespace: string): Promise<Obj[]> {
  const r = await kubectl(['get', kind, '-n', namespace, '-o', 'json']);
  return (JSON.parse(r.stdout) as { items: Obj[] }).items;
}

export async function apply(objects: unknown[]): Promise<void> {
  await kubectl(['apply', '--server-side', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n') });
}

export async function applyFails(objects: unknown[]): Promise<string> {
  const r = await kubectl(['apply', '--server-side', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n'), allowFailure: true });
  if (r.code === 0) throw new Error(`apply unexpectedly succeeded: ${r.stdout}`);
  return r.stderr;
}

export const b64 = (s: string): string => Buffer.from(s).toString('base64');
export const unb64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');

export interface MqttDeploymentObj extends Obj {
  spec: Record<string, unknown>;
  status?: {
    observedGeneration?: number;
    namespace?: string;
    configHash?: string;
    readyReplicas?: number;
    endpoints?: { listener: string; address: string }[];
    conditions?: { type: string; status: string; reason: string; message: string; observedGeneration: number }[];
  };
}

export function condition(md: MqttDeploymentObj | undefined, type: string): { status: string; reason: string; message: string; observedGeneration: number } | undefined {
  return md?.status?.conditions?.find((c) => c.type === type);
}
