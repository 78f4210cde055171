import { describe, expect, it } from 'vitest';
import { ownedBy, runtimeNamespaceName } from '../../../operator/api/names.ts';

describe('runtimeNamespaceName', () => {
  it.each([
    ['team-a', 'prod', 'enclave-team-a-prod'],
    ['a', 'b', 'enclave-a-b'],
  ])('%s/%s → %s', (ns, name, expected) => {
    expect(runtimeNamespaceName(ns, name)).toBe(expected);
  });

  it.each([
    ['n'.repeat(63), 'prod'],
    ['team-a', 'x'.repeat(63)],
    ['t'.repeat(40), 'd'.repeat(40)],
  ])('long %s/%s fits a DNS label, is deterministic and distinct', (ns, name) => {
    const got = runtimeNamespaceName(ns, name);
    expect(got.length).toBeLessThanOrEqual(63);
    expect(got).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(runtimeNamespaceName(ns, name)).toBe(got);
    expect(runtimeNamespaceName(ns, `${name.slice(0, -1)}z`)).not.toBe(got);
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
