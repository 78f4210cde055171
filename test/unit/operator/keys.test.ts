// operator/reconcile/keys.ts: which reconcile keys an informer event wakes. Table cases over small
// in-memory caches: the object's own key always; dependents only on a spec change, add or delete
// (never a status write); a tenant Secret wakes what may use it; an owned object wakes its owner.
import { describe, expect, it } from 'vitest';
import { WATCHED } from '../../../operator/api/owned-kinds.ts';
import type { AuthSource, MqttDeployment, TlsCertificate } from '../../../operator/api/types.ts';
import { keysFor, parseKey, reconcileKey, SpecGenerations, type KeyCaches, type Verb, type WatchEvent } from '../../../operator/reconcile/keys.ts';
import { md, source } from './fixtures.ts';

function cert(name: string, namespace = 'team-a'): TlsCertificate {
  return { apiVersion: 'mqtt.enclave.dev/v1alpha1', kind: 'TlsCertificate', metadata: { name, namespace, uid: `uid-${name}`, generation: 1 }, spec: { issue: { commonName: name } } };
}

function caches(objects: { deployments?: MqttDeployment[]; sources?: AuthSource[]; certificates?: TlsCertificate[] }): KeyCaches {
  const lister = <T extends { metadata: { namespace: string } }>(all: T[] = []) => ({ list: (ns?: string) => all.filter((o) => ns === undefined || o.metadata.namespace === ns) });
  return { mqttDeployments: lister(objects.deployments), authSources: lister(objects.sources), tlsCertificates: lister(objects.certificates) };
}

/** The event as the informer of `name` (a watch of api/owned-kinds.ts) delivers it. */
function event(watchName: string, verb: Verb, obj: object): WatchEvent {
  const w = WATCHED.find((x) => x.watch.name === watchName)!;
  return { verb, kind: w.kind.kind, role: w.watch.role, obj: obj };
}

const pg = { ...source('pg', { type: 'postgres', postgres: { host: 'db', database: 'mqtt' } }), metadata: { name: 'pg', namespace: 'team-a', uid: 'uid-pg', generation: 1 } };
const other = source('other', { type: 'x509' });
const usesPg = md({ authentication: { chain: [{ name: 'pg' }] } }, 'prod');
const tlsUser = md({ listeners: [{ name: 'mqtts', protocol: 'mqtts', tlsCertificateRef: { name: 'server' } }] }, 'edge');
const world = caches({ deployments: [usesPg, tlsUser, md({}, 'elsewhere', 'team-b')], sources: [pg, other], certificates: [cert('server'), cert('unused'), cert('b', 'team-b')] });

describe('reconcile keys', () => {
  it('round-trips Kind/namespace/name', () => {
    expect(parseKey(reconcileKey('AuthSource', 'team-a', 'pg'))).toEqual({ kind: 'AuthSource', namespace: 'team-a', name: 'pg' });
  });
});

describe('keysFor', () => {
  it('an AuthSource wakes the deployments naming it on add and spec change, only itself on a status write, and them again on delete', () => {
    const g = new SpecGenerations();
    const withDependents = ['AuthSource/team-a/pg', 'MqttDeployment/team-a/prod'];
    expect(keysFor(world, g, event('authSources', 'add', pg))).toEqual(withDependents);
    expect(keysFor(world, g, event('authSources', 'update', { ...pg, status: { usedBy: ['prod'] } }))).toEqual(['AuthSource/team-a/pg']);
    expect(keysFor(world, g, event('authSources', 'update', { ...pg, metadata: { ...pg.metadata, generation: 2 } }))).toEqual(withDependents);
    expect(keysFor(world, g, event('authSources', 'update', { ...pg, metadata: { ...pg.metadata, generation: 2 } }))).toEqual(['AuthSource/team-a/pg']);
    expect(keysFor(world, g, event('authSources', 'delete', pg))).toEqual(withDependents);
  });

  it('a TlsCertificate wakes the deployments whose listeners use it', () => {
    expect(keysFor(world, new SpecGenerations(), event('tlsCertificates', 'add', cert('server')))).toEqual(['TlsCertificate/team-a/server', 'MqttDeployment/team-a/edge']);
    expect(keysFor(world, new SpecGenerations(), event('tlsCertificates', 'add', cert('unused')))).toEqual(['TlsCertificate/team-a/unused']);
  });

  it('a deployment wakes the sources it names and those whose usedBy still lists it (a removed reference)', () => {
    const stale = { ...other, status: { usedBy: ['prod'] } };
    const w = caches({ deployments: [usesPg], sources: [pg, stale] });
    expect(keysFor(w, new SpecGenerations(), event('mqttDeployments', 'add', usesPg))).toEqual(['MqttDeployment/team-a/prod', 'AuthSource/team-a/pg', 'AuthSource/team-a/other']);
  });

  it('a deployment status write wakes only itself; one being deleted wakes its sources though its spec is unchanged', () => {
    const g = new SpecGenerations();
    keysFor(world, g, event('mqttDeployments', 'add', usesPg));
    expect(keysFor(world, g, event('mqttDeployments', 'update', { ...usesPg, status: { observedGeneration: 3 } }))).toEqual(['MqttDeployment/team-a/prod']);
    const deleting = { ...usesPg, metadata: { ...usesPg.metadata, deletionTimestamp: '2030-01-01T00:00:00Z' } };
    expect(keysFor(world, g, event('mqttDeployments', 'update', deleting))).toEqual(['MqttDeployment/team-a/prod', 'AuthSource/team-a/pg']);
  });

  it('a tenant Secret wakes every source, certificate and deployment of its namespace (it may be a rotation)', () => {
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pg-creds', namespace: 'team-a', labels: { 'mqtt.enclave.dev/allow-reference': 'true' } } };
    expect(keysFor(world, new SpecGenerations(), event('secrets', 'update', secret))).toEqual([
      'AuthSource/team-a/pg', 'AuthSource/team-a/other', 'TlsCertificate/team-a/server', 'TlsCertificate/team-a/unused', 'MqttDeployment/team-a/prod', 'MqttDeployment/team-a/edge',
    ]);
  });

  it('a tenant CA (operator namespace) wakes only that tenant namespace\'s certificates', () => {
    const ca = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'enclave-ca-team-b', namespace: 'enclave-system', labels: { 'mqtt.enclave.dev/tenant-namespace': 'team-b' } } };
    expect(keysFor(world, new SpecGenerations(), event('secrets', 'delete', ca))).toEqual(['TlsCertificate/team-b/b']);
  });

  it.each(WATCHED.filter((w) => w.watch.role === 'owned').map((w) => [w.watch.name, w.kind.kind]))('an owned %s (%s) wakes its owner, and nothing without owner labels', (name, kind) => {
    const labels = { 'mqtt.enclave.dev/owner-namespace': 'team-a', 'mqtt.enclave.dev/owner-name': 'prod' };
    expect(keysFor(world, new SpecGenerations(), event(name, 'update', { kind, metadata: { name: 'broker', namespace: 'enclave-x', labels } }))).toEqual(['MqttDeployment/team-a/prod']);
    expect(keysFor(world, new SpecGenerations(), event(name, 'delete', { kind, metadata: { name: 'broker', namespace: 'enclave-x' } }))).toEqual([]);
  });
});
