// What the operator creates for spec.state, read back from the API server: the managed Redis
// (Secret with the generated password, Service, claim, Deployment, its two policies, the quota that
// admits it, the broker config's `state` and the replica id; the password kept across operator
// restarts; Ready=False StateBackendUnavailable until the Redis is available; everything deleted when
// the spec stops asking) and the external one (copied keys, egress policy, policy refusals, missing
// Secret and key named in status, the purge Job on delete). One operator process (stit-system);
// tenants are stit-*. Without a node no pod runs, so Redis never becomes available here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { validateBrokerConfig } from '../../../broker/config.ts';
import { runtimeNamespaceName } from '../../../operator/api/names.ts';
import { DEFAULT_POLICY } from '../../../operator/policy/platform.ts';
import { kubectl, world } from '../../support/world.ts';
import {
  apply, condition, ensureNamespace, eventually, get, installCrds, list, reconcileCount, sleep, startOperator, unb64,
  type MqttDeploymentObj, type Obj, type TestOperator,
} from './harness.ts';

const OPERATOR_NS = 'stit-system';
const IDENTITY = 'stit-operator';
const API = 'mqtt.enclave.dev/v1alpha1';
let op: TestOperator;

type SecretObj = Obj & { data: Record<string, string> };
type Hard = Obj & { spec: { hard: Record<string, string> } };
type Dep = Obj & { spec: { template: { spec: { containers: { image: string; env?: unknown[] }[] } } } };

const mdObj = (ns: string, name: string, spec: Record<string, unknown>) => ({ apiVersion: API, kind: 'MqttDeployment', metadata: { name, namespace: ns }, spec: { listeners: [{ name: 'mqtt', protocol: 'mqtt' }], ...spec } });
const md = (ns: string, name: string): Promise<MqttDeploymentObj | undefined> => get<MqttDeploymentObj>('mqttdeployments.mqtt.enclave.dev', name, ns);
const managed = (persistence?: { size: string }) => ({ replicas: 2, state: { backend: 'redis', redis: { managed: persistence ? { persistence } : {} } } });
const external = (secret: string, egress?: Record<string, unknown>) => ({ replicas: 2, state: { backend: 'redis', redis: { external: { secretRef: { name: secret }, ...(egress ? { egress } : {}) } } } });

/** Reconciled at its current generation, with the broker config written. */
async function reconciled(ns: string, name: string): Promise<MqttDeploymentObj> {
  return eventually(`MqttDeployment ${ns}/${name} reconciled`, async () => {
    const m = await md(ns, name);
    const secret = m?.status?.namespace ? await get('secret', 'broker-config', m.status.namespace) : undefined;
    return m?.status?.observedGeneration === m?.metadata.generation && secret ? m : undefined;
  });
}

async function brokerConfig(runtimeNs: string): Promise<{ config: Record<string, unknown>; data: Record<string, string> }> {
  const s = await get<SecretObj>('secret', 'broker-config', runtimeNs);
  return { config: parseYaml(unb64(s?.data['config.yaml'])) as Record<string, unknown>, data: s?.data ?? {} };
}

beforeAll(async () => {
  await installCrds();
  await ensureNamespace(OPERATOR_NS);
  op = await startOperator(OPERATOR_NS, IDENTITY);
});

afterAll(async () => {
  await op?.stop();
});

const managedNs = 'stit-managed';
const managedName = 'ha';

describe('managed Redis: what it gets', () => {
  const ns = managedNs;
  const name = managedName;
  const runtimeNs = runtimeNamespaceName(ns, name);

  it('creates the Redis objects, the quota that admits them, and a broker config pointing at it with the same password', async () => {
    await ensureNamespace(ns);
    await apply([mdObj(ns, name, managed({ size: '1Gi' }))]);
    const m = await reconciled(ns, name);
    const redisSecret = await eventually('the redis Secret', () => get<SecretObj>('secret', 'redis', runtimeNs));
    const password = unb64(redisSecret.data['password']);
    expect(password).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(unb64(redisSecret.data['redis.conf'])).toContain(`requirepass ${password}`);
    expect(redisSecret.metadata.labels?.['mqtt.enclave.dev/owner-uid']).toBe(m.metadata.uid);

    const svc = await get<Obj & { spec: { ports: { port: number }[] } }>('service', 'redis', runtimeNs);
    expect(svc?.spec.ports.map((p) => p.port)).toEqual([6379]);
    const pvc = await get<Obj & { spec: { resources: { requests: { storage: string } } } }>('persistentvolumeclaim', 'redis-data', runtimeNs);
    expect(pvc?.spec.resources.requests.storage).toBe('1Gi');
    const redis = await get<Dep>('deployment', 'redis', runtimeNs);
    expect(redis?.spec.template.spec.containers[0]?.image).toBe(world().node.images?.redis ?? DEFAULT_POLICY.stateBackend.redisImage);
    expect(JSON.stringify(redis)).not.toContain(password);
    const policies = (await list('networkpolicies', runtimeNs)).map((p) => p.metadata.name);
    expect(policies).toEqual(expect.arrayContaining(['default-deny', 'allow-redis-from-brokers', 'allow-brokers-to-redis']));
    expect(policies).not.toContain('allow-state-backend');

    const quota = await get<Hard>('resourcequota', 'enclave-ceilings', runtimeNs);
    expect(quota?.spec.hard).toMatchObject({ pods: '5', persistentvolumeclaims: '1', 'requests.storage': '1Gi', 'requests.cpu': '8050m', 'limits.memory': '8448Mi' });

    const { config, data } = await brokerConfig(runtimeNs);
    expect(config['state']).toEqual({
      backend: 'redis',
      redis: { host: `redis.${runtimeNs}.svc.cluster.local`, port: 6379, passwordFile: '/etc/enclave/state-redis-password', keyPrefix: `enclave:${m.metadata.uid}:` },
    });
    expect(unb64(data['state-redis-password'])).toBe(password);
    expect(() => validateBrokerConfig(config)).not.toThrow();

    const broker = await get<Dep>('deployment', 'broker', runtimeNs);
    expect(broker?.spec.template.spec.containers[0]?.env).toEqual([{ name: 'ENCLAVE_REPLICA_ID', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }]);
  });

  it('is not Ready while the Redis is unavailable: StateBackendUnavailable, naming it, no secret in the message', async () => {
    const m = await eventually('StateBackendUnavailable', async () => {
      const cr = await md(ns, name);
      return condition(cr, 'Ready')?.reason === 'StateBackendUnavailable' ? cr : undefined;
    });
    const ready = condition(m, 'Ready')!;
    expect(ready.status).toBe('False');
    expect(ready.message).toContain(`Deployment redis in namespace ${runtimeNs}`);
    const password = unb64((await get<SecretObj>('secret', 'redis', runtimeNs))?.data['password']);
    expect(JSON.stringify(m.status)).not.toContain(password);
  });

});

describe('managed Redis: over time', () => {
  const ns = managedNs;
  const name = managedName;
  const runtimeNs = runtimeNamespaceName(ns, name);

  it('keeps the password across operator restarts: same Secret, same config hash, no rollout', async () => {
    const before = {
      secret: (await get<SecretObj>('secret', 'redis', runtimeNs))!,
      config: (await get<SecretObj>('secret', 'broker-config', runtimeNs))!,
      broker: (await get<Dep>('deployment', 'broker', runtimeNs))!,
      redis: (await get<Dep>('deployment', 'redis', runtimeNs))!,
      hash: (await md(ns, name))?.status?.configHash,
    };
    for (let i = 0; i < 2; i++) {
      await op.stop();
      op = await startOperator(OPERATOR_NS, IDENTITY);
      await eventually('resync after restart', () => Promise.resolve(reconcileCount(op, ns, name) >= 1));
    }
    await sleep(2000); // any write the resync would make lands before comparing
    const secret = (await get<SecretObj>('secret', 'redis', runtimeNs))!;
    expect(secret.data['password']).toBe(before.secret.data['password']);
    expect(secret.metadata.resourceVersion).toBe(before.secret.metadata.resourceVersion);
    expect((await get<SecretObj>('secret', 'broker-config', runtimeNs))?.data).toEqual(before.config.data);
    expect((await get<Dep>('deployment', 'broker', runtimeNs))?.metadata.generation).toBe(before.broker.metadata.generation);
    expect((await get<Dep>('deployment', 'redis', runtimeNs))?.metadata.generation).toBe(before.redis.metadata.generation);
    expect((await md(ns, name))?.status?.configHash).toBe(before.hash);
  });

  it('re-creates a deleted redis Secret (drift), and the broker config holds the password it holds', async () => {
    await kubectl(['-n', runtimeNs, 'delete', 'secret', 'redis']);
    // The operator may still know the old password (its cache) or make a new one (which rolls the
    // brokers and Redis: both read it at start); either way the two copies agree.
    const back = await eventually('the redis Secret is back', async () => {
      const s = await get<SecretObj>('secret', 'redis', runtimeNs);
      return s ? unb64(s.data['password']) : undefined;
    }, 20_000);
    expect(back).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await eventually('the broker config has the same password', async () => unb64((await brokerConfig(runtimeNs)).data['state-redis-password']) === back, 20_000);
  });

  it('persistence off deletes the claim and the quota admits none; memory deletes every Redis object', async () => {
    // (An apply of `managed: {}` reaches the API server as null: remove the field instead.)
    await kubectl(['patch', 'mqttdeployment', name, '-n', ns, '--type=json', '-p', '[{"op":"remove","path":"/spec/state/redis/managed/persistence"}]']);
    await eventually('the claim is gone', async () => {
      const pvc = await get('persistentvolumeclaim', 'redis-data', runtimeNs);
      return pvc === undefined || pvc.metadata.deletionTimestamp !== undefined;
    }, 20_000);
    await eventually('the quota admits no claim', async () => (await get<Hard>('resourcequota', 'enclave-ceilings', runtimeNs))?.spec.hard['persistentvolumeclaims'] === '0', 20_000);

    await kubectl(['patch', 'mqttdeployment', name, '-n', ns, '--type=json', '-p', '[{"op":"replace","path":"/spec/replicas","value":1},{"op":"replace","path":"/spec/state","value":{"backend":"memory"}}]']);
    await eventually('every Redis object is gone', async () => {
      const left = [
        await get('secret', 'redis', runtimeNs), await get('service', 'redis', runtimeNs), await get('deployment', 'redis', runtimeNs),
        await get('networkpolicy', 'allow-redis-from-brokers', runtimeNs), await get('networkpolicy', 'allow-brokers-to-redis', runtimeNs),
      ];
      return left.every((o) => o === undefined);
    }, 20_000);
    expect((await brokerConfig(runtimeNs)).config).not.toHaveProperty('state');
    expect((await get<Dep>('deployment', 'broker', runtimeNs))?.spec.template.spec.containers[0]?.env).toBeUndefined();
    expect((await get<Hard>('resourcequota', 'enclave-ceilings', runtimeNs))?.spec.hard['pods']).toBe('4');
  });
});

const externalNs = 'stit-external';

describe('external Redis: what it gets', () => {
  const ns = externalNs;
  const optIn = { 'mqtt.enclave.dev/allow-reference': 'true' };
  const secret = (name: string, data: Record<string, string>, labels: Record<string, string> = optIn) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns, labels }, stringData: data });

  beforeAll(async () => {
    await ensureNamespace(ns);
    await apply([
      secret('state', { address: 'redis.data.example:6380', username: 'broker', password: 'ext-s3cret', 'ca.crt': 'PEM-CA' }),
      secret('nokey', { password: 'only-a-password' }),
      secret('hidden', { address: 'redis:6379' }, {}),
    ]);
  });

  it('copies the Secret\'s keys into the broker config, opens the declared egress, runs no Redis', async () => {
    await apply([mdObj(ns, 'ext', external('state', { cidr: '203.0.113.0/24', port: 6380 }))]);
    const m = await reconciled(ns, 'ext');
    const runtimeNs = runtimeNamespaceName(ns, 'ext');
    const { config, data } = await brokerConfig(runtimeNs);
    expect(config['state']).toEqual({
      backend: 'redis',
      redis: { host: 'redis.data.example', port: 6380, username: 'broker', passwordFile: '/etc/enclave/state-redis-password', caFile: '/etc/enclave/state-redis-ca.crt', keyPrefix: `enclave:${m.metadata.uid}:` },
    });
    expect(unb64(data['state-redis-password'])).toBe('ext-s3cret');
    expect(unb64(data['state-redis-ca.crt'])).toBe('PEM-CA');
    const egress = await get<Obj & { spec: { podSelector: unknown; egress: unknown[] } }>('networkpolicy', 'allow-state-backend', runtimeNs);
    expect(egress?.spec.egress).toEqual([{ to: [{ ipBlock: { cidr: '203.0.113.0/24' } }], ports: [{ protocol: 'TCP', port: 6380 }] }]);
    expect(await get('deployment', 'redis', runtimeNs)).toBeUndefined();
    expect(await get('secret', 'redis', runtimeNs)).toBeUndefined();
    expect((await get<Hard>('resourcequota', 'enclave-ceilings', runtimeNs))?.spec.hard).toMatchObject({ pods: '4', persistentvolumeclaims: '0' });
  });

  it('names a missing key, or a Secret not opted in, without any value; nothing is created', async () => {
    await apply([mdObj(ns, 'nokey', external('nokey')), mdObj(ns, 'hidden', external('hidden'))]);
    const nokey = await eventually('InvalidReference (key)', async () => {
      const cr = await md(ns, 'nokey');
      return condition(cr, 'Ready')?.reason === 'InvalidReference' ? cr : undefined;
    });
    expect(condition(nokey, 'Ready')?.message).toContain('Secret nokey key address');
    expect(JSON.stringify(nokey.status)).not.toContain('only-a-password');
    const hidden = await eventually('InvalidReference (not opted in)', async () => {
      const cr = await md(ns, 'hidden');
      return condition(cr, 'Ready')?.reason === 'InvalidReference' ? cr : undefined;
    });
    expect(condition(hidden, 'Ready')?.message).toContain('Secret hidden (absent, or without the label mqtt.enclave.dev/allow-reference');
    expect(JSON.stringify(hidden.status)).not.toContain('redis:6379');
    expect(await get('namespace', runtimeNamespaceName(ns, 'nokey'))).toBeUndefined();
  });

  it('refuses egress into the cluster\'s ranges or another namespace (policy DeniedEgress), applying nothing', async () => {
    await apply([
      mdObj(ns, 'podrange', external('state', { cidr: '10.96.0.0/16', port: 6379 })),
      mdObj(ns, 'elsewhere', external('state', { namespace: 'kube-system', port: 6379 })),
    ]);
    for (const [name, words] of [['podrange', 'spec.state.redis.external.egress.cidr 10.96.0.0/16 overlaps the denied range 10.96.0.0/12'], ['elsewhere', 'spec.state.redis.external.egress.namespace kube-system is not an allowed egress namespace']] as const) {
      const cr = await eventually(`PolicyViolation ${name}`, async () => {
        const c = await md(ns, name);
        return condition(c, 'Ready')?.reason === 'PolicyViolation' ? c : undefined;
      });
      expect(condition(cr, 'Ready')?.message).toContain(words);
      expect(condition(cr, 'Ready')?.message).toContain('policy DeniedEgress');
      expect(await get('namespace', runtimeNamespaceName(ns, name))).toBeUndefined();
    }
  });

});

describe('external Redis: deletion', () => {
  const ns = externalNs;

  it('on delete stops the brokers and runs the purge Job in the runtime namespace before deleting it (Retain ends it)', async () => {
    const runtimeNs = runtimeNamespaceName(ns, 'ext');
    const uid = (await md(ns, 'ext'))!.metadata.uid;
    await kubectl(['delete', 'mqttdeployment', 'ext', '-n', ns, '--wait=false']);
    type Job = Obj & { spec: { backoffLimit: number; template: { metadata: { labels: Record<string, string> }; spec: Record<string, unknown> & { containers: Record<string, unknown>[] } } } };
    // On a node the broker pods drain first (up to their termination grace period of 30 s).
    const job = await eventually('the purge Job', () => get<Job>('job', 'state-purge', runtimeNs), 90_000);
    expect(job.metadata.labels).toMatchObject({ 'mqtt.enclave.dev/owner-uid': uid, 'mqtt.enclave.dev/role': 'state-purge' });
    expect(job.spec.backoffLimit).toBe(2);
    expect(job.spec.template.metadata.labels).toMatchObject({ 'app.kubernetes.io/name': 'enclave-broker', 'mqtt.enclave.dev/role': 'state-purge' });
    const pod = job.spec.template.spec;
    expect(pod).toMatchObject({ restartPolicy: 'Never', automountServiceAccountToken: false, serviceAccountName: 'broker' });
    expect(pod.containers[0]).toMatchObject({
      command: ['node', '/app/dist/broker/purge-main.js'], args: ['--config', '/etc/enclave/config.yaml'],
      securityContext: { readOnlyRootFilesystem: true, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
      volumeMounts: [{ name: 'config', mountPath: '/etc/enclave', readOnly: true }],
    });
    // The brokers went first; the namespace stays until the Job succeeds.
    expect(await get('deployment', 'broker', runtimeNs)).toBeUndefined();
    expect((await get('namespace', runtimeNs))?.metadata.deletionTimestamp).toBeUndefined();
    const purging = await eventually('Purging (or PurgeFailed, where the Job really runs)', async () => {
      const cr = await md(ns, 'ext');
      return ['Purging', 'PurgeFailed'].includes(condition(cr, 'Ready')?.reason ?? '') ? cr : undefined;
    });
    expect(JSON.stringify(purging.status)).not.toContain('ext-s3cret');
    // A Job that fails is reported with the Job's own words, deleted, and tried again; the failure
    // stays in status meanwhile. Without a node no pod runs: its deadline is cut to 1 s. On a node its
    // pod really runs and fails by itself (this Redis address is not reachable from a pod), and the
    // Job may already be gone when the patch comes.
    await kubectl(['patch', 'job', 'state-purge', '-n', runtimeNs, '--type=merge', '-p', '{"spec":{"activeDeadlineSeconds":1}}'], { allowFailure: true });
    const failed = await eventually('PurgeFailed', async () => {
      const cr = await md(ns, 'ext');
      return condition(cr, 'Ready')?.reason === 'PurgeFailed' ? cr : undefined;
    }, 90_000);
    expect(condition(failed, 'Ready')?.message).toMatch(/^Deleting the external state backend's keys failed: .+Retrying with backoff; set spec.deletionPolicy: Retain/);
    expect(JSON.stringify(failed.status)).not.toContain('ext-s3cret');
    expect(condition(failed, 'Degraded')?.status).toBe('True');
    await eventually('a new purge Job', async () => {
      const again = await get('job', 'state-purge', runtimeNs);
      return again !== undefined && again.metadata.uid !== job.metadata.uid;
    }, 120_000);
    await sleep(3000);
    expect(condition(await md(ns, 'ext'), 'Ready')?.reason).toBe('PurgeFailed');
    // The way out when the keys cannot be deleted: keep them.
    await kubectl(['patch', 'mqttdeployment', 'ext', '-n', ns, '--type=merge', '-p', '{"spec":{"deletionPolicy":"Retain"}}']);
    await eventually('CR gone', async () => (await md(ns, 'ext')) === undefined, 30_000);
    expect((await get('namespace', runtimeNs))?.metadata.deletionTimestamp).toBeUndefined();
    await kubectl(['delete', 'namespace', runtimeNs, '--wait=false']);
  }, 360_000);
});

describe('managed Redis with namespaced Secret access', () => {
  const ns = 'stit-scoped';
  const name = 'ha';
  const runtimeNs = runtimeNamespaceName(ns, name);

  it('keeps the password in the operator namespace, the same across restarts, and deletes it with the deployment', async () => {
    // The operator of this file, now with Secret access narrowed to one tenant namespace (what
    // rbac.tenantSecretAccess=namespaced passes); it does not read runtime Secrets then.
    const scoped = { env: { ENCLAVE_TENANT_NAMESPACES: ns } };
    await op.stop();
    op = await startOperator(OPERATOR_NS, IDENTITY, scoped);
    await ensureNamespace(ns);
    await apply([mdObj(ns, name, managed())]);
    const m = await reconciled(ns, name);
    const keptName = `enclave-redis-${m.metadata.uid}`;
    const kept = await eventually('the kept password', () => get<SecretObj>('secret', keptName, OPERATOR_NS));
    const password = unb64(kept.data['password']);
    expect(password).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(unb64((await get<SecretObj>('secret', 'redis', runtimeNs))?.data['password'])).toBe(password);
    expect(unb64((await brokerConfig(runtimeNs)).data['state-redis-password'])).toBe(password);

    await op.stop();
    op = await startOperator(OPERATOR_NS, IDENTITY, scoped);
    await eventually('resync after restart', () => Promise.resolve(reconcileCount(op, ns, name) >= 1));
    await sleep(2000);
    expect(unb64((await get<SecretObj>('secret', 'redis', runtimeNs))?.data['password'])).toBe(password);
    expect((await get<SecretObj>('secret', keptName, OPERATOR_NS))?.metadata.resourceVersion).toBe(kept.metadata.resourceVersion);

    await kubectl(['delete', 'mqttdeployment', name, '-n', ns, '--wait=false']);
    await eventually('CR gone', async () => (await md(ns, name)) === undefined, 90_000);
    expect(await get('secret', keptName, OPERATOR_NS)).toBeUndefined();
    expect(await get('namespace', runtimeNs)).toBeUndefined();
  }, 180_000);
});
