// The operator's side of spec.state, builder by builder: the broker config's `state` section and
// its copied files (managed, external, memory left out), the external backend's egress policy and
// its platform-policy check, the quota that admits exactly the Redis pod and its claim, the replica
// id, the desired entries (Redis objects applied or deleted), the Ready condition while the Redis is
// unavailable, and the purge Job's shape.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { V1Container, V1Deployment, V1NetworkPolicy } from '@kubernetes/client-node';
import type { MqttDeploymentSpec } from '../../../operator/api/types.ts';
import { KINDS } from '../../../operator/api/owned-kinds.ts';
import { withRedisImage } from '../../../operator/config.ts';
import { DEFAULT_POLICY, mqttDeploymentViolations, policyFromJson } from '../../../operator/policy/platform.ts';
import { renderBrokerConfig } from '../../../operator/resources/broker-config.ts';
import { deployment } from '../../../operator/resources/deployment.ts';
import { desiredState } from '../../../operator/resources/index.ts';
import { networkPolicies } from '../../../operator/resources/network-policies.ts';
import { statePurgeJob } from '../../../operator/resources/purge-job.ts';
import { resourceQuota } from '../../../operator/resources/quota.ts';
import { parseAddress } from '../../../operator/resources/state.ts';
import { redisResources } from '../../../operator/resources/redis.ts';
import { keptPasswordSecretName } from '../../../operator/reconcile/state-backend.ts';
import { mqttDeploymentStatus } from '../../../operator/status/mqtt-deployment.ts';
import { b64, ctx, md } from './fixtures.ts';

const managed = (persistence?: { size: string }): MqttDeploymentSpec => ({ replicas: 2, state: { backend: 'redis', redis: { managed: persistence ? { persistence } : {} } } });
const external = (egress?: NonNullable<NonNullable<NonNullable<MqttDeploymentSpec['state']>['redis']>['external']>['egress']): MqttDeploymentSpec =>
  ({ replicas: 3, state: { backend: 'redis', redis: { external: { secretRef: { name: 'state' }, ...(egress ? { egress } : {}) } } } });
const withPassword = (spec: MqttDeploymentSpec, redisPassword: string) => ({ ...ctx(md(spec)), redisPassword });
const configOf = (r: ReturnType<typeof renderBrokerConfig>) => parse(Buffer.from(r.secret.data!['config.yaml']!, 'base64').toString('utf8')) as Record<string, unknown>;
const file = (r: ReturnType<typeof renderBrokerConfig>, name: string) => Buffer.from(r.secret.data![name] ?? '', 'base64').toString('utf8');

describe('broker config: state', () => {
  it('memory (or no state) is left out of config.yaml: its hash is what it was before the section existed', () => {
    const none = renderBrokerConfig(ctx(md()));
    const memory = renderBrokerConfig(ctx(md({ state: { backend: 'memory' } })));
    expect(configOf(none)).not.toHaveProperty('state');
    expect(memory.configHash).toBe(none.configHash);
    expect(none.invalid).toEqual([]);
  });

  it('managed: the Service address, the generated password as a copied file, the UID prefix; valid for the broker', () => {
    const r = renderBrokerConfig(withPassword(managed(), 'pw-1'));
    const state = configOf(r)['state'] as { backend: string; redis: { host: string } };
    expect(state).toEqual({ backend: 'redis', redis: { host: state.redis.host, port: 6379, passwordFile: '/etc/enclave/state-redis-password', keyPrefix: 'enclave:uid-1:' } });
    expect(state.redis.host).toMatch(/^redis\.enclave-team-a-prod-[0-9a-z]{13}\.svc\.cluster\.local$/);
    expect(file(r, 'state-redis-password')).toBe('pw-1');
    expect(JSON.stringify(configOf(r))).not.toContain('pw-1');
    expect(r.missing).toEqual([]);
    expect(r.invalid).toEqual([]);
  });

  it('managed: the config hash is the same for every reconcile with the kept password; a new password rolls brokers and Redis (both read it at start only)', () => {
    const hash = (pw: string) => renderBrokerConfig(withPassword(managed(), pw)).configHash;
    expect(hash('pw-1')).toBe(hash('pw-1'));
    expect(hash('pw-2')).not.toBe(hash('pw-1'));
    expect(JSON.stringify(desiredState(withPassword(managed(), 'pw-1')).entries)).toBe(JSON.stringify(desiredState(withPassword(managed(), 'pw-1')).entries));
    const redisTemplate = (pw: string) => (desiredState(withPassword(managed(), pw)).entries.find((e) => e.ref.kind === 'Deployment' && e.ref.name === 'redis')!.object as V1Deployment).spec!.template.metadata!.annotations;
    expect(redisTemplate('pw-1')).toEqual(redisTemplate('pw-1'));
    expect(redisTemplate('pw-2')).not.toEqual(redisTemplate('pw-1'));
    expect(JSON.stringify(redisTemplate('pw-1'))).not.toContain('pw-1');
  });

  it('managed without a password yet: reported missing, so nothing is applied', () => {
    expect(renderBrokerConfig(ctx(md(managed()))).missing).toEqual(['the managed Redis password (not generated yet)']);
  });

  it('external: address parsed into host and port, username inline, password and CA copied; TLS on with the CA', () => {
    const secrets = { state: { address: b64('redis.data.svc:6380'), username: b64('broker\n'), password: b64('s3cret'), 'ca.crt': b64('PEM') } };
    const r = renderBrokerConfig(ctx(md(external()), { secrets }));
    expect(configOf(r)['state']).toEqual({
      backend: 'redis',
      redis: { host: 'redis.data.svc', port: 6380, username: 'broker', passwordFile: '/etc/enclave/state-redis-password', caFile: '/etc/enclave/state-redis-ca.crt', keyPrefix: 'enclave:uid-1:' },
    });
    expect(file(r, 'state-redis-password')).toBe('s3cret');
    expect(file(r, 'state-redis-ca.crt')).toBe('PEM');
    expect(r.invalid).toEqual([]);
  });

  it('external: only the address is required; no password file without a password key', () => {
    const r = renderBrokerConfig(ctx(md(external()), { secrets: { state: { address: b64('[fd00::1]:6379') } } }));
    expect(configOf(r)['state']).toEqual({ backend: 'redis', redis: { host: 'fd00::1', port: 6379, keyPrefix: 'enclave:uid-1:' } });
    expect(Object.keys(r.secret.data!).filter((k) => k.startsWith('state-'))).toEqual([]);
  });

  it('external: a missing (or not opted-in) Secret, a missing address key, a malformed address name the Secret and key, never the value', () => {
    expect(renderBrokerConfig(ctx(md(external()))).missing).toEqual(['Secret state (absent, or without the label mqtt.enclave.dev/allow-reference: "true" that policy SecretReferenceOptIn requires)']);
    expect(renderBrokerConfig(ctx(md(external()), { secrets: { state: { password: b64('x') } } })).missing).toEqual(['Secret state key address']);
    const bad = renderBrokerConfig(ctx(md(external()), { secrets: { state: { address: b64('no-port-here-secretish') } } }));
    expect(bad.invalid).toEqual(['Secret state key address: must be host:port (an IPv6 host in brackets)']);
    expect(bad.invalid.join()).not.toContain('secretish');
  });

  it.each([
    ['redis:6379', { host: 'redis', port: 6379 }],
    ['10.0.0.5:7000', { host: '10.0.0.5', port: 7000 }],
    ['[::1]:6379', { host: '::1', port: 6379 }],
    [' redis.example.com:6379\n', { host: 'redis.example.com', port: 6379 }],
    ['redis', undefined],
    ['redis:0', undefined],
    ['redis:70000', undefined],
    ['::1:6379', undefined],
    ['a b:1', undefined],
  ])('parseAddress(%j)', (text, expected) => {
    expect(parseAddress(text)).toEqual(expected);
  });
});

describe('external state egress', () => {
  const policyOf = (spec: MqttDeploymentSpec) => networkPolicies(ctx(md(spec))).find((p) => p.metadata?.name === 'allow-state-backend');

  it('becomes allow-state-backend from the broker pods: an address range, or pods of a namespace', () => {
    expect(policyOf(external({ cidr: '203.0.113.0/24', port: 6380 }))?.spec).toEqual({
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'enclave-broker', 'app.kubernetes.io/instance': 'broker' } }, policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '203.0.113.0/24' } }], ports: [{ protocol: 'TCP', port: 6380 }] }],
    });
    expect((policyOf(external({ namespace: 'data', podLabels: { app: 'redis' }, port: 6379 })) as V1NetworkPolicy).spec!.egress![0]!.to).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'data' } }, podSelector: { matchLabels: { app: 'redis' } } },
    ]);
  });

  it('no egress, memory or managed: no such policy', () => {
    expect(policyOf(external())).toBeUndefined();
    expect(policyOf({})).toBeUndefined();
    expect(policyOf(managed())).toBeUndefined();
  });

  it('is judged by policy DeniedEgress like an AuthSource egress', () => {
    const v = (spec: MqttDeploymentSpec, policy = DEFAULT_POLICY) => mqttDeploymentViolations(md(spec), policy, 'enclave/broker:test');
    expect(v(external({ cidr: '10.96.0.10/32', port: 6379 }))).toEqual(['spec.state.redis.external.egress.cidr 10.96.0.10/32 overlaps the denied range 10.96.0.0/12 (policy DeniedEgress)']);
    expect(v(external({ namespace: 'data', port: 6379 }))).toEqual(["spec.state.redis.external.egress.namespace data is not an allowed egress namespace (policy DeniedEgress: the MqttDeployment's own)"]);
    expect(v(external({ namespace: 'team-a', port: 6379 }))).toEqual([]);
    expect(v(external({ namespace: 'data', port: 6379 }), { ...DEFAULT_POLICY, allowedEgressNamespaces: ['data'] })).toEqual([]);
    expect(v(external({ cidr: '203.0.113.0/24', port: 6379 }))).toEqual([]);
  });
});

describe('platform policy: the Redis image', () => {
  it('defaults to the chart default, is read from ENCLAVE_POLICY, and ENCLAVE_REDIS_IMAGE (tests, local runs) replaces it', () => {
    expect(DEFAULT_POLICY.stateBackend.redisImage).toBe('docker.io/library/redis:7.4-bookworm');
    expect(policyFromJson(JSON.stringify({ stateBackend: { redisImage: 'mirror.local/redis:7' } })).stateBackend.redisImage).toBe('mirror.local/redis:7');
    expect(() => policyFromJson(JSON.stringify({ stateBackend: { redisImage: '' } }))).toThrow(/stateBackend.redisImage/);
    expect(withRedisImage(DEFAULT_POLICY, 'localhost/enclave-redis:7').stateBackend.redisImage).toBe('localhost/enclave-redis:7');
    expect(withRedisImage(DEFAULT_POLICY, undefined)).toBe(DEFAULT_POLICY);
  });

  it('the managed Redis Deployment runs the policy image, whatever the tenant sets as spec.image', () => {
    const c = { ...withPassword({ ...managed(), image: 'enclave/broker:other' }, 'pw'), config: { ...ctx(md()).config, policy: withRedisImage(DEFAULT_POLICY, 'mirror.local/redis:7') } };
    const redis = desiredState(c).entries.find((e) => e.ref.kind === 'Deployment' && e.ref.name === 'redis')!.object as V1Deployment;
    expect(redis.spec!.template.spec!.containers[0]!.image).toBe('mirror.local/redis:7');
  });

  it('with namespaced Secret access the password is kept in the operator namespace under the UID (no name can collide)', () => {
    expect(keptPasswordSecretName('6f1c9e0a-1b2c-4d5e-8f90-123456789abc')).toBe('enclave-redis-6f1c9e0a-1b2c-4d5e-8f90-123456789abc');
  });
});

describe('quota with a managed Redis', () => {
  const hard = (spec: MqttDeploymentSpec) => resourceQuota(ctx(md(spec))).spec!.hard!;

  it('memory and external: replicas + 1 pods of the ceiling, no claim (as before)', () => {
    const before = { pods: '4', 'requests.cpu': '8000m', 'limits.cpu': '8000m', 'requests.memory': '8192Mi', 'limits.memory': '8192Mi', persistentvolumeclaims: '0', 'services.loadbalancers': '0', 'services.nodeports': '0' };
    expect(hard({})).toEqual(before);
    expect(hard(external())).toEqual(before);
  });

  it('managed: one more pod and exactly its resources; one claim of the asked size only with persistence', () => {
    expect(hard(managed())).toEqual({ pods: '5', 'requests.cpu': '8050m', 'limits.cpu': '9000m', 'requests.memory': '8256Mi', 'limits.memory': '8448Mi', persistentvolumeclaims: '0', 'services.loadbalancers': '0', 'services.nodeports': '0' });
    expect(hard(managed({ size: '2Gi' }))).toMatchObject({ pods: '5', persistentvolumeclaims: '1', 'requests.storage': '2Gi' });
  });
});

describe('desired entries with a managed Redis', () => {
  const listed = (spec: MqttDeploymentSpec) => desiredState(withPassword(spec, 'pw')).entries
    .filter((e) => e.ref.name.startsWith('redis') || e.ref.name.includes('redis'))
    .map((e) => `${e.ref.kind}/${e.ref.name}${e.object ? '' : ' (delete)'}`);

  it('applies the Redis objects in order; persistence off deletes the claim; memory deletes everything', () => {
    expect(listed(managed({ size: '1Gi' }))).toEqual([
      'NetworkPolicy/allow-redis-from-brokers', 'NetworkPolicy/allow-brokers-to-redis', 'Secret/redis', 'Service/redis', 'PersistentVolumeClaim/redis-data', 'Deployment/redis',
    ]);
    expect(listed(managed())).toContain('PersistentVolumeClaim/redis-data (delete)');
    expect(listed({}).every((l) => l.endsWith('(delete)'))).toBe(true);
    expect(listed(external()).every((l) => l.endsWith('(delete)'))).toBe(true);
  });

  it('the Redis Secret carries the role its drift cache selects', () => {
    const secret = desiredState(withPassword(managed(), 'pw')).entries.find((e) => e.ref.kind === 'Secret' && e.ref.name === 'redis')!.object!;
    expect(secret.metadata!.labels!['mqtt.enclave.dev/role']).toBe('state-backend');
  });
});

describe('broker replica id', () => {
  const env = (spec: MqttDeploymentSpec): V1Container['env'] => deployment(ctx(md(spec)), 'h').spec!.template.spec!.containers[0]!.env;

  it('the pod name from the downward API with a Redis backend; nothing for memory (no rollout for them)', () => {
    const id = [{ name: 'ENCLAVE_REPLICA_ID', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }];
    expect(env(managed())).toEqual(id);
    expect(env(external())).toEqual(id);
    expect(env({})).toBeUndefined();
  });
});

describe('Ready with a managed Redis', () => {
  it('is False, reason StateBackendUnavailable, naming the Redis, while it is unavailable, even with every broker ready; Degraded only when stuck', () => {
    const message = 'The managed Redis (Deployment redis in namespace enclave-team-a-prod) is not available; the broker replicas share their state through it.';
    const status = (stuck: boolean) => mqttDeploymentStatus(md(managed()), { namespace: 'enclave-team-a-prod', missing: [], replicas: 2, readyReplicas: 2, updatedReplicas: 2, stateBackend: { message, stuck } }, '2026-01-01T00:00:00.000Z');
    const s = status(false);
    const ready = s.conditions!.find((c) => c.type === 'Ready')!;
    expect([ready.status, ready.reason, ready.message]).toEqual(['False', 'StateBackendUnavailable', message]);
    expect(s.conditions!.find((c) => c.type === 'Degraded')!.status).toBe('False');
    expect(status(true).conditions!.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'StateBackendUnavailable' });
    const without = mqttDeploymentStatus(md(managed()), { namespace: 'enclave-team-a-prod', missing: [], replicas: 2, readyReplicas: 2, updatedReplicas: 2 }, '2026-01-01T00:00:00.000Z');
    expect(without.conditions!.find((c) => c.type === 'Ready')!.reason).toBe('Available');
  });
});

describe('state purge Job', () => {
  const job = statePurgeJob(md({ ...external(), image: 'enclave/broker:2' }), ctx(md()).config);
  const pod = job.spec!.template.spec!;

  it('runs the broker image\'s purge entry point with the broker config, once per attempt', () => {
    expect(job.metadata).toMatchObject({ name: 'state-purge', labels: { 'mqtt.enclave.dev/owner-uid': 'uid-1', 'mqtt.enclave.dev/role': 'state-purge' } });
    expect(job.metadata!.namespace).toMatch(/^enclave-team-a-prod-/);
    expect(job.spec).toMatchObject({ backoffLimit: 2, activeDeadlineSeconds: 300 });
    expect(pod.restartPolicy).toBe('Never');
    const c = pod.containers[0]!;
    expect([c.image, c.command, c.args]).toEqual(['enclave/broker:2', ['node', '/app/dist/broker/purge-main.js'], ['--config', '/etc/enclave/config.yaml']]);
    expect(pod.volumes).toEqual([{ name: 'config', secret: { secretName: 'broker-config', defaultMode: 0o440 } }]);
    expect(c.volumeMounts).toEqual([{ name: 'config', mountPath: '/etc/enclave', readOnly: true }]);
  });

  it('is a restricted pod with the broker labels (so the brokers\' DNS and state-backend egress apply) and no token', () => {
    expect(job.spec!.template.metadata!.labels).toMatchObject({ 'app.kubernetes.io/name': 'enclave-broker', 'app.kubernetes.io/instance': 'broker', 'mqtt.enclave.dev/role': 'state-purge' });
    expect(pod).toMatchObject({ automountServiceAccountToken: false, enableServiceLinks: false, serviceAccountName: 'broker', securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } } });
    expect(pod.containers[0]!.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.containers[0]!.resources).toEqual({ requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '128Mi' } });
  });
});

describe('owned kinds of the state backend', () => {
  it('claims and Jobs: applied, read, deleted; never listed or watched (least privilege)', () => {
    expect(KINDS.persistentVolumeClaims.verbs).toEqual(['get', 'create', 'patch', 'delete']);
    expect(KINDS.jobs.verbs).toEqual(['get', 'create', 'patch', 'delete']);
    expect(KINDS.persistentVolumeClaims.perDeployment && KINDS.jobs.perDeployment).toBe(true);
  });
});

describe('the managed Redis container', () => {
  it('requests 50m/64Mi, is limited to one core and 256Mi, and never beyond the platform ceilings (the LimitRange would refuse it)', () => {
    expect(redisResources()).toEqual({ requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } });
    expect(redisResources({ ...DEFAULT_POLICY, ceilings: { replicas: 3, cpu: '500m', memory: '128Mi' } })).toEqual({ requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '500m', memory: '128Mi' } });
  });

  it('keeps Redis\' own memory bound below its container limit (writes refused before an OOM kill)', () => {
    const conf = (memory: string) => {
      const c = { ...withPassword(managed(), 'pw'), config: { ...ctx(md()).config, policy: { ...DEFAULT_POLICY, ceilings: { replicas: 3, cpu: '2', memory } } } };
      const secret = desiredState(c).entries.find((e) => e.ref.kind === 'Secret' && e.ref.name === 'redis')!.object as { stringData: Record<string, string> };
      return secret.stringData['redis.conf']!;
    };
    expect(conf('2Gi')).toContain(`maxmemory ${Math.floor(256 * 2 ** 20 * 0.8)}\n`);
    expect(conf('128Mi')).toContain(`maxmemory ${Math.floor(128 * 2 ** 20 * 0.8)}\n`);
  });
});
