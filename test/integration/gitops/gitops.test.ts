// GitOps-grade behaviour with the examples: `kubectl apply --server-side` twice changes nothing
// (every resourceVersion equal), and once the operator has reconciled them `kubectl diff
// --server-side` is empty — the operator writes only status and its finalizer, never spec or
// defaults, so Git and the cluster never disagree.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { kubectl, world } from '../../support/world.ts';
import { exampleDirs, exampleFiles, exampleObjects, type ExampleObject } from './examples.ts';
import { installCrds, startOperatorInProcess, type RunningOperator } from '../../support/operator.ts';

// Every example folder, applied together: reconcile needs nothing outside the cluster (the
// database, HTTP and JWKS backends are only ever contacted by the broker, and there is no kubelet
// here to run one), and the object names do not collide across folders.
const dirs = exampleDirs();
const files = dirs.flatMap(exampleFiles);
const objects: ExampleObject[] = dirs.flatMap(exampleObjects);
const fileArgs = files.flatMap((f) => ['-f', f]);

async function resourceVersions(): Promise<Record<string, string>> {
  const r = await kubectl(['get', ...fileArgs, '-o', 'json']);
  const list = JSON.parse(r.stdout) as { items?: { kind: string; metadata: { namespace?: string; name: string; resourceVersion: string } }[] } & { kind: string; metadata?: { namespace?: string; name: string; resourceVersion: string } };
  const items = list.items ?? [list as unknown as { kind: string; metadata: { namespace?: string; name: string; resourceVersion: string } }];
  return Object.fromEntries(items.map((o) => [`${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`, o.metadata.resourceVersion]));
}

interface Applied { kind: string; metadata: { namespace?: string; name: string; resourceVersion: string; generation?: number; managedFields?: { manager?: string; operation?: string; time?: string; fieldsV1?: unknown }[] } }

/** Per object, what an apply by manager gitops-test can change: resourceVersion, or for the CRs (whose status the operator writes) generation plus that manager's fields. */
async function appliedState(): Promise<Record<string, string>> {
  const r = await kubectl(['get', ...fileArgs, '-o', 'json']);
  const list = JSON.parse(r.stdout) as { items?: Applied[] } & Partial<Applied>;
  const items = list.items ?? [list as Applied];
  const crs = new Set(['MqttDeployment', 'AuthSource', 'TlsCertificate']);
  return Object.fromEntries(items.map((o) => [
    `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`,
    crs.has(o.kind) ? `g${o.metadata.generation ?? 0} ${JSON.stringify(o.metadata.managedFields?.filter((m) => m.manager === 'gitops-test'))}` : o.metadata.resourceVersion,
  ]));
}

let operator: RunningOperator | undefined;

beforeAll(async () => {
  await installCrds();
});

afterAll(async () => {
  // Leave the world as found: with the operator still running, delete everything the examples
  // created (the operator purges each MqttDeployment and removes its finalizer), then stop it.
  const namespaces = [...new Set(objects.flatMap((o) => (o.kind === 'Namespace' ? [o.name] : [])))];
  for (const ns of namespaces) {
    const r = await kubectl(['-n', ns, 'delete', 'mqttdeployments,authsources,tlscertificates', '--all', '--wait=true', '--timeout=90s'], { allowFailure: true });
    if (r.code !== 0) console.warn(`[gitops] purge of ${ns} did not finish: ${r.stderr}`);
  }
  await operator?.stop();
  for (const ns of namespaces) await kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true', '--timeout=60s'], { allowFailure: true });
  await kubectl(['delete', 'namespace', 'enclave-gitops', '--ignore-not-found', '--wait=false']);
}, 120_000);

describe('server-side apply of the examples', () => {
  it('has examples to apply', () => {
    expect(dirs).toEqual(expect.arrayContaining(['builtin', 'http', 'jwt', 'mysql', 'postgres', 'quickstart', 'redis', 'tls', 'x509']));
    // Every folder brings at least one MqttDeployment, so each one is reconciled below.
    for (const d of dirs) expect(exampleObjects(d).some((o) => o.kind === 'MqttDeployment'), d).toBe(true);
    // Applied together, no object but the shared Namespace is declared twice (one folder would
    // silently overwrite another's).
    const keys = objects.filter((o) => o.kind !== 'Namespace').map((o) => `${o.kind} ${o.namespace ?? ''}/${o.name}`);
    expect(keys.length).toBe(new Set(keys).size);
  });

  it('a second apply changes nothing (resourceVersions equal)', async () => {
    await kubectl(['apply', '--server-side', '--field-manager=gitops-test', ...fileArgs]);
    const first = await resourceVersions();
    // team-a's Namespace is declared by each example directory: count distinct objects.
    expect(Object.keys(first).length).toBe(new Set(objects.map((o) => `${o.kind} ${o.namespace ?? ''}/${o.name}`)).size);
    const again = await kubectl(['apply', '--server-side', '--field-manager=gitops-test', ...fileArgs]);
    expect(again.stdout).not.toMatch(/configured|created/);
    // A manifest that sets no field but its name (a bare Namespace) is created with empty
    // managedFields, and the API server then records a `before-first-apply` manager on the next
    // apply, a write: such an example is not idempotent under `kubectl apply --server-side`.
    expect(await resourceVersions()).toEqual(first);
  });

  it('after the operator reconciled, kubectl diff --server-side is empty and another apply is still a no-op', async () => {
    operator = await startOperatorInProcess({
      operatorNamespace: 'enclave-gitops',
      logFile: join(world().runDir, 'operator-enclave-gitops.log'),
      // A world without a node (ENCLAVE_WORLD_NODE=0) has no images: the default image is rendered.
      config: { identity: `gitops-test-${process.pid}`, ...(world().node.images ? { defaultImage: world().node.images.broker } : {}) },
    });
    await operator.idle();
    const deployments = objects.filter((o) => o.kind === 'MqttDeployment');
    // Reconciled = the operator has written status for the current generation (Ready may be
    // False here: brokers whose backends are outside this machine never become ready).
    for (const d of deployments) {
      await kubectl(['-n', d.namespace ?? 'default', 'wait', `mqttdeployment/${d.name}`, '--for=jsonpath={.status.observedGeneration}=1', '--timeout=90s']);
    }
    for (const d of deployments) {
      const fin = await kubectl(['-n', d.namespace ?? 'default', 'get', `mqttdeployment/${d.name}`, '-o', 'jsonpath={.metadata.finalizers}']);
      expect(fin.stdout).not.toBe('');
    }
    const diff = await kubectl(['diff', '--server-side', '--field-manager=gitops-test', ...fileArgs], { allowFailure: true });
    expect(diff.stdout).toBe('');
    expect(diff.code).toBe(0);
    // The operator keeps writing the CRs' status while their broker pods start, crash or turn
    // ready (they run for real), which moves resourceVersion: what the apply could change is the
    // spec (generation) and its own field ownership.
    const before = await appliedState();
    await kubectl(['apply', '--server-side', '--field-manager=gitops-test', ...fileArgs]);
    expect(await appliedState()).toEqual(before);
  });
});
