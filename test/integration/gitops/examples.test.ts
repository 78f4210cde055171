// Every example in examples/ is valid against the CRDs the API server enforces (server-side
// dry-run: schema, defaults and CEL rules all run), and together they cover one tenant per
// AuthSource type plus TLS with client certificates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl } from '../../support/world.ts';
import { installCrds } from '../../support/operator.ts';
import { exampleDirs, exampleFiles, exampleObjects } from './examples.ts';

const created: string[] = [];

beforeAll(async () => {
  await installCrds();
  // Dry-run does not create namespaces, so objects inside a namespace declared by the same
  // example would fail with NotFound: create the namespaces for real first.
  const namespaces = new Set(exampleDirs().flatMap((d) => exampleObjects(d).flatMap((o) => (o.kind === 'Namespace' ? [o.name] : o.namespace ? [o.namespace] : []))));
  for (const ns of namespaces) {
    // A namespace another file of this run is still deleting cannot take new objects: wait it out.
    await kubectl(['wait', '--for=delete', `namespace/${ns}`, '--timeout=90s'], { allowFailure: true });
    if ((await kubectl(['create', 'namespace', ns], { allowFailure: true })).code === 0) created.push(ns);
  }
});

afterAll(async () => {
  for (const ns of created) await kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=60s']);
});

describe('examples/', () => {
  it('covers every AuthSource type and TLS with client certificates', () => {
    const dirs = exampleDirs();
    for (const d of ['builtin', 'postgres', 'mysql', 'redis', 'http', 'jwt', 'x509', 'tls']) expect(dirs).toContain(d);
    const kinds = new Set(dirs.flatMap((d) => exampleObjects(d).map((o) => o.kind)));
    for (const k of ['MqttDeployment', 'AuthSource', 'TlsCertificate']) expect(kinds).toContain(k);
  });

  // One tenant per AuthSource type: the folder named after a type authenticates with a source of
  // exactly that type (x509 authorizes with a builtin ACL next to it, as its README says).
  for (const type of ['builtin', 'postgres', 'mysql', 'redis', 'http', 'jwt', 'x509']) {
    it(`${type}: the MqttDeployment authenticates with an AuthSource of type ${type}`, () => {
      const objects = exampleObjects(type);
      const sources = objects.filter((o) => o.kind === 'AuthSource');
      const deployments = objects.filter((o) => o.kind === 'MqttDeployment');
      expect(deployments.length).toBe(1);
      const chain = ((deployments[0]!.spec?.authentication as { chain?: { name: string }[] } | undefined)?.chain ?? []).map((r) => r.name);
      expect(chain.length).toBeGreaterThan(0);
      for (const name of chain) {
        const source = sources.find((s) => s.name === name);
        expect(source, `${type}: authentication chain names AuthSource ${name}, which the folder does not define`).toBeDefined();
        expect(source!.spec?.type, `${type}: AuthSource ${name}`).toBe(type);
        expect(source!.spec?.[type], `${type}: AuthSource ${name} has no spec.${type} block`).toBeDefined();
      }
      const others = sources.filter((s) => s.spec?.type !== type).map((s) => `${s.name}:${String(s.spec?.type)}`);
      expect(others).toEqual(type === 'x509' ? ['x509-acl:builtin'] : []);
    });
  }

  it('tls: the mqtts listener requires a client certificate verified by a TlsCertificate of the folder', () => {
    const objects = exampleObjects('tls');
    const md = objects.find((o) => o.kind === 'MqttDeployment');
    const listeners = (md?.spec?.listeners ?? []) as { name: string; protocol: string; clientAuth?: string; clientCaRef?: { name: string }; tlsCertificateRef?: { name: string } }[];
    const mqtts = listeners.find((l) => l.protocol === 'mqtts');
    expect(mqtts?.clientAuth).toBe('required');
    const certificates = objects.filter((o) => o.kind === 'TlsCertificate').map((o) => o.name);
    expect(certificates).toContain(mqtts?.clientCaRef?.name);
    expect(certificates).toContain(mqtts?.tlsCertificateRef?.name);
  });

  for (const dir of exampleDirs()) {
    it(`${dir}: accepted by the API server (kubectl apply --dry-run=server)`, async () => {
      const files = exampleFiles(dir);
      expect(files.length).toBeGreaterThan(0);
      const r = await kubectl(['apply', '--dry-run=server', '--server-side', ...files.flatMap((f) => ['-f', f])], { allowFailure: true });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const applied = r.stdout.trim().split('\n').filter((l) => l.length > 0);
      expect(applied.length).toBe(exampleObjects(dir).length);
    });
  }
});
