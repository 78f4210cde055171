// Leader election (operator/kube/leader.ts) against the real API server: one holder at a time, a
// standby takes over as soon as the holder releases on stop, and a holder whose Lease was taken
// gives up (onLost) once its renew deadline passes — never before a renew could have failed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { LeaderElector } from '../../../operator/kube/leader.ts';
import { adminKubeConfig, kubectl } from '../../support/world.ts';
import { ensureNamespace, eventually, sleep } from './harness.ts';

const NS = 'leader-it';
const fast = { namespace: NS, leaseSeconds: 5, renewMs: 300, renewDeadlineMs: 2000 };

beforeAll(async () => {
  await ensureNamespace(NS);
});
afterAll(async () => {
  await kubectl(['delete', 'namespace', NS, '--ignore-not-found', '--wait=false']);
});

describe('LeaderElector', () => {
  it('one leader; the standby takes over right after the leader stops (released, not expired)', async () => {
    const a = new LeaderElector(adminKubeConfig(), { ...fast, name: 'handover', identity: 'a' });
    const b = new LeaderElector(adminKubeConfig(), { ...fast, name: 'handover', identity: 'b' });
    await a.acquire(() => undefined);
    let bLeads = false;
    const bAcquired = b.acquire(() => undefined).then(() => (bLeads = true));
    await sleep(1500);
    expect([a.leading, bLeads]).toEqual([true, false]);
    const stoppedAt = Date.now();
    await a.stop();
    await bAcquired;
    // b polls every 2 s; an expiry-based takeover would need the 5 s lease to run out first.
    expect(Date.now() - stoppedAt).toBeLessThan(4000);
    const lease = await adminKubeConfig().makeApiClient(CoordinationV1Api).readNamespacedLease({ name: 'handover', namespace: NS });
    expect(lease.spec?.holderIdentity).toBe('b');
    await b.stop();
  });

  it('a taken Lease ends leadership after the renew deadline, not at the first failed renew', async () => {
    const a = new LeaderElector(adminKubeConfig(), { ...fast, name: 'stolen', identity: 'a' });
    let lostAt = 0;
    await a.acquire(() => (lostAt = Date.now()));
    const api = adminKubeConfig().makeApiClient(CoordinationV1Api);
    const lease = await api.readNamespacedLease({ name: 'stolen', namespace: NS });
    lease.spec!.holderIdentity = 'thief';
    lease.spec!.renewTime = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as never;
    const stolenAt = Date.now();
    await api.replaceNamespacedLease({ name: 'stolen', namespace: NS, body: lease });
    await eventually('a gives up', async () => lostAt > 0, 10_000);
    // Not at the first failed renew (≤ 300 ms later), but once 2 s passed without a good one.
    expect(lostAt - stolenAt).toBeGreaterThanOrEqual(1500);
    expect(lostAt - stolenAt).toBeLessThan(5000);
    expect(a.leading).toBe(false);
    await a.stop();
    expect((await api.readNamespacedLease({ name: 'stolen', namespace: NS })).spec?.holderIdentity).toBe('thief');
  });
});
