// Owns what the operator integration tests share: kubectl helpers that read objects as JSON, the
// operator's reconcile count and metrics. The operator itself runs as its own process, exactly as
// the image runs it (test/support/operator.ts startOperator). Each test file uses its own operator
// namespace and tenants.
import { getObject, listObjects } from '../../support/objects.ts';
import { kubectl } from '../../support/world.ts';
import { operatorLog, type TestOperator } from '../../support/operator.ts';

// The operator, the CRDs and polling come from test/support (one implementation for every test);
// re-exported so the operator tests import their whole toolkit from here.
export { ensureNamespace, installCrds, operatorLog, startOperator, type TestOperator } from '../../support/operator.ts';
export { eventually, sleep } from '../../support/wait.ts';

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
export function get<T = Obj>(kind: string, name: string, namespace?: string): Promise<T | undefined> {
  return getObject<T>(kind, name, namespace);
}

export function list(kind: string, namespace: string): Promise<Obj[]> {
  return listObjects<Obj>(kind, namespace);
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
