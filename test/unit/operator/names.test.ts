import { describe, expect, it } from 'vitest';
import { ownedBy, resolveRuntimeNamespace, runtimeNamespaceName } from '../../../operator/api/names.ts';

describe('runtimeNamespaceName', () => {
  it.each([
    ['team-a', 'prod', /^enclave-team-a-prod-[0-9a-z]{13}$/],
    ['a', 'b', /^enclave-a-b-[0-9a-z]{13}$/],
  ])('%s/%s → %s', (ns, name, expected) => {
    expect(runtimeNamespaceName(ns, name)).toMatch(expected);
  });

  it('keeps the pairs apart that read the same without the hash (team/a-broker vs team-a/broker)', () => {
    expect(runtimeNamespaceName('team', 'a-broker')).not.toBe(runtimeNamespaceName('team-a', 'broker'));
    expect(runtimeNamespaceName('team', 'a-broker').startsWith('enclave-team-a-broker-')).toBe(true);
  });

  it.each([
    ['n'.repeat(63), 'prod'],
    ['team-a', 'x'.repeat(63)],
    ['t'.repeat(40), 'd'.repeat(40)],
    ['team-a', 'prod'],
  ])('%s/%s fits a DNS label, is deterministic and distinct', (ns, name) => {
    const got = runtimeNamespaceName(ns, name);
    expect(got.length).toBeLessThanOrEqual(63);
    expect(got).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(runtimeNamespaceName(ns, name)).toBe(got);
    expect(runtimeNamespaceName(ns, `${name.slice(0, -1)}z`)).not.toBe(got);
  });
});

describe('resolveRuntimeNamespace', () => {
  const cr = (status?: { namespace?: string }) => ({ metadata: { namespace: 'team-a', name: 'prod' }, ...(status ? { status } : {}) });
  const hashed = runtimeNamespaceName('team-a', 'prod');
  it.each([
    ['a new deployment gets the hashed name', cr(), [], hashed],
    ['an upgraded one keeps the namespace in its status', cr({ namespace: 'enclave-team-a-prod' }), ['enclave-team-a-prod'], 'enclave-team-a-prod'],
    ['an upgraded one whose status was never written keeps its pre-hash namespace', cr(), ['enclave-team-a-prod'], 'enclave-team-a-prod'],
    ['a squatted pre-hash name (not ours) is left for the hashed one', cr({ namespace: 'enclave-team-a-prod' }), [], hashed],
    ['status naming some other namespace that is not ours counts for nothing', cr({ namespace: 'kube-system' }), [], hashed],
  ] as [string, ReturnType<typeof cr>, string[], string][])('%s', (_what, md, owned, expected) => {
    expect(resolveRuntimeNamespace(md, (ns) => owned.includes(ns))).toBe(expected);
  });
});

describe('ownedBy', () => {
  const owner = { namespace: 'team-a', name: 'prod', uid: 'u1' };
  it.each([
    [{ 'mqtt.enclave.dev/owner-uid': 'u1' }, true],
    [{ 'mqtt.enclave.dev/owner-uid': 'u2' }, false],
    [{}, false],
    [undefined, false],
  ])('%j → %s', (labels, expected) => {
    expect(ownedBy(labels, owner)).toBe(expected);
  });
});
