// podProblem: the kubelet's and scheduler's reasons become the Ready condition (table of pod states).
import { describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { podProblem } from '../../../operator/status/pods.ts';
import { mqttDeploymentStatus } from '../../../operator/status/mqtt-deployment.ts';
import { md as mqttDeployment } from './fixtures.ts';

const now = new Date('2026-12-02T10:00:00Z');
const pod = (name: string, status: V1Pod['status'], created = '2026-12-02T09:59:00Z'): V1Pod => ({ metadata: { name, creationTimestamp: new Date(created) }, status });
const container = (state: object, extra: object = {}) => ({ name: 'broker', image: 'x', imageID: '', ready: false, restartCount: 0, state, ...extra });

describe('podProblem', () => {
  it.each([
    ['image cannot be pulled (back-off)', container({ waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "nope:1"' } }), 'ImagePullBackOff', /container broker cannot pull image x \(ImagePullBackOff\)\. Check spec\.image/],
    ['image cannot be pulled (retrying)', container({ waiting: { reason: 'ErrImagePull', message: 'rpc error: code = Unknown desc = dial tcp: lookup ghcr.io' } }), 'ImagePullBackOff', /container broker cannot pull image x \(ImagePullBackOff\)/],
    ['image not on the node', container({ waiting: { reason: 'ErrImageNeverPull', message: 'Container image "x" is not present with pull policy of Never' } }), 'ErrImageNeverPull', /not present/],
    ['crash loop, waiting', container({ waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s restarting failed container' } }, { restartCount: 3, lastState: { terminated: { exitCode: 1, reason: 'Error' } } }), 'CrashLoopBackOff', /keeps exiting \(last exit: code 1, Error\)/],
    ['crash loop, running again between back-offs', container({ running: { startedAt: new Date('2026-12-02T09:59:59Z') } }, { restartCount: 4, lastState: { terminated: { exitCode: 1, reason: 'Error' } } }), 'CrashLoopBackOff', /keeps exiting \(last exit: code 1, Error\)/],
    ['readiness probe failing', container({ running: { startedAt: new Date('2026-12-02T09:59:00Z') } }), 'ProbeFailing', /is running but its readiness probe fails/],
  ])('%s', (_what, cs, reason, message) => {
    const p = podProblem([pod('broker-1', { containerStatuses: [cs] })], now);
    expect(p?.reason).toBe(reason);
    expect(p?.message).toMatch(message);
    expect(p?.message).toContain('broker-1');
  });

  it('says the same while the kubelet retries: no status write per back-off', () => {
    const at = (waiting: object, restartCount: number, startedAt?: string) => podProblem([pod('b', { containerStatuses: [container(startedAt ? { running: { startedAt: new Date(startedAt) } } : { waiting }, { restartCount, lastState: { terminated: { exitCode: 2, reason: 'Error' } } })] })], now);
    const a = at({ reason: 'CrashLoopBackOff', message: 'back-off 10s restarting failed container' }, 2);
    const b = at({ reason: 'CrashLoopBackOff', message: 'back-off 2m40s restarting failed container' }, 6);
    const c = at({}, 7, '2026-12-02T09:59:58Z');
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    const pull = (reason: string, message: string) => podProblem([pod('b', { containerStatuses: [container({ waiting: { reason, message } })] })], now);
    expect(pull('ErrImagePull', 'rpc error: one')).toEqual(pull('ImagePullBackOff', 'Back-off pulling image "x"'));
  });

  it('is silent while pods are merely starting', () => {
    expect(podProblem([pod('b', { containerStatuses: [container({ waiting: { reason: 'ContainerCreating' } })] })], now)).toBeUndefined();
    expect(podProblem([pod('b', { containerStatuses: [container({ running: { startedAt: new Date('2026-12-02T09:59:50Z') } })] })], now)).toBeUndefined();
    expect(podProblem([], now)).toBeUndefined();
  });

  it('names an unschedulable pod with the scheduler message', () => {
    const p = podProblem([pod('b', { conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes are available: 1 Insufficient memory.' }] })], now);
    expect(p).toEqual({ reason: 'Unschedulable', message: 'Pod b cannot be scheduled: 0/1 nodes are available: 1 Insufficient memory.' });
  });

  it('becomes the Ready and Degraded conditions of the MqttDeployment', () => {
    const md = mqttDeployment();
    const problem = { reason: 'CrashLoopBackOff', message: 'Pod b: container broker is CrashLoopBackOff.' };
    const status = mqttDeploymentStatus(md, { namespace: 'enclave-x', missing: [], replicas: 1, readyReplicas: 0, updatedReplicas: 1, podProblem: problem }, now.toISOString());
    const ready = status.conditions?.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'False', reason: 'CrashLoopBackOff', message: '0/1 replicas ready. Pod b: container broker is CrashLoopBackOff.' });
    expect(status.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'CrashLoopBackOff' });
  });

  it('is not Ready while an old pod still serves and the new one cannot start', () => {
    const md = mqttDeployment();
    const base = { namespace: 'enclave-x', missing: [], readyReplicas: 1, updatedReplicas: 1 };
    const ready = (o: object) => mqttDeploymentStatus(md, { ...base, replicas: 1, ...o }, now.toISOString()).conditions?.find((c) => c.type === 'Ready');
    expect(ready({})?.status).toBe('True');
    // The new pod counts as updated, the old one as ready: two pods for one replica is a rollout.
    expect(ready({ replicas: 2 })).toMatchObject({ status: 'False', reason: 'RollingOut' });
    expect(ready({ deploymentCurrent: false })).toMatchObject({ status: 'False', reason: 'RollingOut' });
  });
});
