// spec.state (where replicas share routing, retained messages and sessions) as the API server sees
// it: the CRD's CEL rules refuse what cannot work — more than one replica without a shared backend,
// a backend without its settings, both or neither of managed/external — with a message naming the
// field, and accept the three valid shapes.
import { beforeAll, describe, expect, it } from 'vitest';
import { apply, applyFails, ensureNamespace, installCrds } from './harness.ts';
import { kubectl } from '../../support/world.ts';

const NS = 'state-api';
const API = 'mqtt.enclave.dev/v1alpha1';
const md = (name: string, spec: Record<string, unknown>) => ({ apiVersion: API, kind: 'MqttDeployment', metadata: { name, namespace: NS }, spec });

beforeAll(async () => {
  await installCrds();
  await ensureNamespace(NS);
});

describe('spec.state validation (API server, before any operator)', () => {
  it('refuses replicas > 1 without the redis backend, naming spec.replicas', async () => {
    const noState = await applyFails([md('two-memory', { replicas: 2 })]);
    expect(noState).toContain('spec.replicas');
    expect(noState).toContain('replicas > 1 needs state.backend: redis');
    const memory = await applyFails([md('two-memory', { replicas: 2, state: { backend: 'memory' } })]);
    expect(memory).toContain('replicas > 1 needs state.backend: redis');
  });

  it('refuses a backend without its settings, settings without their backend, and both or neither of managed/external', async () => {
    expect(await applyFails([md('bad-1', { state: { backend: 'redis' } })])).toContain('state.redis is required with backend redis');
    expect(await applyFails([md('bad-2', { state: { backend: 'memory', redis: { managed: {} } } })])).toContain('not allowed with backend memory');
    expect(await applyFails([md('bad-3', { state: { backend: 'redis', redis: {} } })])).toContain('exactly one of managed or external');
    const both = { backend: 'redis', redis: { managed: {}, external: { secretRef: { name: 'r' } } } };
    expect(await applyFails([md('bad-4', { state: both })])).toContain('exactly one of managed or external');
    const badSize = { backend: 'redis', redis: { managed: { persistence: { size: 'lots' } } } };
    expect(await applyFails([md('bad-5', { state: badSize })])).toContain('spec.state.redis.managed.persistence.size');
    const badEgress = { backend: 'redis', redis: { external: { secretRef: { name: 'r' }, egress: { cidr: '10.0.0.0/24', namespace: 'x', port: 6379 } } } };
    expect(await applyFails([md('bad-6', { state: badEgress })])).toContain('exactly one of cidr or namespace');
    const r = await kubectl(['get', 'mqttdeployments', '-n', NS, '-o', 'name']);
    expect(r.stdout.trim()).toBe('');
  });

  it('accepts memory with one replica, managed redis with two, external redis with three', async () => {
    await apply([
      md('one', { replicas: 1, state: { backend: 'memory' } }),
      md('managed', { replicas: 2, state: { backend: 'redis', redis: { managed: { persistence: { size: '1Gi', storageClassName: 'fast' } } } } }),
      md('external', { replicas: 3, state: { backend: 'redis', redis: { external: { secretRef: { name: 'redis' }, egress: { namespace: 'data', podLabels: { app: 'redis' }, port: 6379 } } } } }),
    ]);
    const r = await kubectl(['get', 'mqttdeployments', '-n', NS, '-o', 'jsonpath={range .items[*]}{.metadata.name}={.spec.state.backend} {end}']);
    expect(r.stdout.trim().split(' ').sort()).toEqual(['external=redis', 'managed=redis', 'one=memory']);
    await kubectl(['delete', 'mqttdeployments', '--all', '-n', NS, '--wait=false']);
  });
});
