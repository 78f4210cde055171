// operator/api/owned-kinds.ts is the one table of kinds: what it says about watches must hold
// together, since informers, drift caches and the watch → key mapping are all derived from it.
import { describe, expect, it } from 'vitest';
import { OWNED_KINDS, WATCHED } from '../../../operator/api/owned-kinds.ts';

describe('the table of kinds', () => {
  it('grants list and watch on every kind it watches (the chart RBAC test holds the chart to these verbs)', () => {
    for (const { kind } of WATCHED) expect(kind.verbs, kind.plural).toEqual(expect.arrayContaining(['list', 'watch']));
  });

  it('names every watch once, and watches each owned kind at most once (drift reads one cache per kind)', () => {
    const names = WATCHED.map((w) => w.watch.name);
    expect(new Set(names).size).toBe(names.length);
    const ownedKinds = WATCHED.filter((w) => w.watch.role === 'owned').map((w) => w.kind.kind);
    expect(new Set(ownedKinds).size).toBe(ownedKinds.length);
  });

  it('watches the three custom resources and the referenced Secrets under the names the controllers read', () => {
    expect(WATCHED.filter((w) => w.watch.role !== 'owned').map((w) => `${w.watch.role}:${w.watch.name}:${w.kind.kind}`)).toEqual([
      'resource:mqttDeployments:MqttDeployment', 'resource:authSources:AuthSource', 'resource:tlsCertificates:TlsCertificate', 'referenced:secrets:Secret',
    ]);
  });

  it('watches for drift every kind that is created inside a runtime namespace and can be deleted by hand', () => {
    const ownedKinds = new Set(WATCHED.filter((w) => w.watch.role === 'owned').map((w) => w.kind.kind));
    for (const k of OWNED_KINDS) {
      if (k.perDeployment && k.verbs.includes('watch')) expect(ownedKinds.has(k.kind), k.kind).toBe(true);
    }
  });
});
