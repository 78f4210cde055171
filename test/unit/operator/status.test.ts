import { describe, expect, it } from 'vitest';
import { mqttDeploymentStatus, type Observed } from '../../../operator/status/mqtt-deployment.ts';
import { mergeConditions } from '../../../operator/api/conditions.ts';
import { ApiException } from '@kubernetes/client-node';
import { managesNamespace, notManagedMessage, operatorConfigFromEnv } from '../../../operator/config.ts';
import { apiErrorMessage } from '../../../operator/kube/client.ts';
import { md } from './fixtures.ts';

const base: Observed = { namespace: 'enclave-team-a-prod', configHash: 'h', missing: [], replicas: 1, readyReplicas: 1, updatedReplicas: 1 };
const T = '2026-01-01T00:00:00.000Z';

describe('mqttDeploymentStatus', () => {
  it.each([
    ['all ready', base, ['True', 'Available'], ['False', 'AsExpected']],
    ['pods starting', { ...base, readyReplicas: 0 }, ['False', 'RollingOut'], ['False', 'AsExpected']],
    ['missing reference', { ...base, missing: ['AuthSource pg'] }, ['False', 'InvalidReference'], ['True', 'InvalidReference']],
    ['ownership conflict', { ...base, conflict: 'Namespace enclave-team-a-prod' }, ['False', 'OwnershipConflict'], ['True', 'OwnershipConflict']],
    ['apply failed', { ...base, applyError: 'boom' }, ['False', 'ApplyFailed'], ['True', 'ApplyFailed']],
    ['listener disabled', { ...base, disabled: [{ name: 'mqtt', absent: ['server'] }] }, ['False', 'ListenerDisabled'], ['True', 'ListenerDisabled']],
    ['missing wins over disabled', { ...base, missing: ['AuthSource pg'], disabled: [{ name: 'mqtt', absent: ['server'] }] }, ['False', 'InvalidReference'], ['True', 'InvalidReference']],
    ['policy violation wins over a missing reference', { ...base, policy: ['spec.replicas: 9 is above the ceiling 3 (policy ResourceCeilings)'], missing: ['AuthSource pg'] }, ['False', 'PolicyViolation'], ['True', 'PolicyViolation']],
  ] as [string, Observed, [string, string], [string, string]][])('%s', (_n, observed, [ready, readyReason], [degraded, degradedReason]) => {
    const s = mqttDeploymentStatus(md(), observed, T);
    const get = (t: string) => s.conditions!.find((c) => c.type === t)!;
    expect([get('Ready').status, get('Ready').reason]).toEqual([ready, readyReason]);
    expect([get('Degraded').status, get('Degraded').reason]).toEqual([degraded, degradedReason]);
    expect(s.conditions!.every((c) => c.observedGeneration === 3)).toBe(true);
    expect(s.observedGeneration).toBe(3);
  });

  it('reports endpoints per listener, none on conflict', () => {
    expect(mqttDeploymentStatus(md(), base, T).endpoint).toBe('broker.enclave-team-a-prod.svc:1883');
    expect(mqttDeploymentStatus(md(), { ...base, conflict: 'Namespace x' }, T).endpoints).toEqual([]);
  });

  it('says which listener is off and why, and lists only served endpoints', () => {
    const m = md({ listeners: [{ name: 'plain', protocol: 'mqtt' }, { name: 'secure', protocol: 'mqtts', tlsCertificateRef: { name: 'server' } }] });
    const s = mqttDeploymentStatus(m, { ...base, disabled: [{ name: 'secure', absent: ['server'] }] }, T);
    expect(s.conditions!.find((c) => c.type === 'Ready')!.message).toBe(
      'Not serving listener secure (TlsCertificate server not found): its clients were disconnected. Re-create the TlsCertificate or remove the listener.');
    expect(s.endpoints!.map((e) => e.listener)).toEqual(['plain']);
  });

  it('keeps lastTransitionTime when a condition keeps its status', () => {
    const first = mqttDeploymentStatus(md(), base, T);
    const again = mqttDeploymentStatus({ ...md(), status: first }, base, '2030-01-01T00:00:00.000Z');
    expect(again).toEqual(first);
  });
});

describe('mergeConditions', () => {
  it('moves lastTransitionTime only on a status change', () => {
    const prev = mergeConditions(undefined, [{ type: 'Ready', status: 'False', reason: 'a', message: 'm', observedGeneration: 1 }], T);
    const same = mergeConditions(prev, [{ type: 'Ready', status: 'False', reason: 'b', message: 'm2', observedGeneration: 2 }], 'later');
    const flip = mergeConditions(prev, [{ type: 'Ready', status: 'True', reason: 'c', message: 'm3', observedGeneration: 2 }], 'later');
    expect(same[0]!.lastTransitionTime).toBe(T);
    expect(flip[0]!.lastTransitionTime).toBe('later');
  });
});

describe('namespaces outside the tenant list', () => {
  it('is reported NamespaceNotManaged with the Helm value to change, and no endpoints', () => {
    const s = mqttDeploymentStatus(md(), { ...base, notManaged: notManagedMessage('team-a') }, T);
    const ready = s.conditions!.find((c) => c.type === 'Ready')!;
    expect([ready.status, ready.reason]).toEqual(['False', 'NamespaceNotManaged']);
    expect(ready.message).toContain('rbac.tenantNamespaces');
    expect(s.endpoints).toEqual([]);
  });
  it.each([
    [{}, 'team-a', true],
    [{ ENCLAVE_TENANT_NAMESPACES: 'team-a, team-b' }, 'team-b', true],
    [{ ENCLAVE_TENANT_NAMESPACES: 'team-a,team-b' }, 'team-c', false],
    [{ ENCLAVE_TENANT_NAMESPACES: '' }, 'anything', true],
  ] as [Record<string, string>, string, boolean][])('env %j serves %s: %s', (env, ns, served) => {
    expect(managesNamespace(operatorConfigFromEnv(env), ns)).toBe(served);
  });
});

describe('apiErrorMessage', () => {
  it('keeps the API server message, drops headers and body', () => {
    const err = new ApiException(422, 'Unprocessable Entity', JSON.stringify({ kind: 'Status', message: 'Deployment.apps "broker" is invalid: spec.replicas: Invalid value: -1' }), { authorization: 'Bearer secret-token' });
    expect(apiErrorMessage(err)).toBe('Deployment.apps "broker" is invalid: spec.replicas: Invalid value: -1');
    expect(apiErrorMessage(new ApiException(500, 'x', 'not json', {}))).toBe('HTTP 500');
    expect(apiErrorMessage(new Error('first line\nsecond line'))).toBe('first line');
  });
});
