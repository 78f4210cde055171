// Every example in examples/ is valid against the CRDs the API server enforces (server-side
// dry-run: schema, defaults and CEL rules all run), and together they cover one tenant per
// AuthSource type plus TLS with client certificates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl } from '../../support/world.ts';
import { repoRoot, waitForCrds } from '../helm/helm.ts';
import { exampleDirs, exampleFiles, exampleObjects } from './examples.ts';

const created: string[] = [];

beforeAll(async () => {
  await kubectl(['apply', '--server-side', '-f', `${repoRoot}/charts/enclave/crds`]);
  await waitForCrds();
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
