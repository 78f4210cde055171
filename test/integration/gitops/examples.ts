// Owns finding the example manifests (examples/**, except examples/auth-schemas which holds SQL/
// Redis seed data, not Kubernetes objects) and the namespaces they live in.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../../support/paths.ts';

export const examplesDir = join(repoRoot, 'examples');
const excluded = new Set(['auth-schemas']);

export interface ExampleObject {
  file: string;
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  /** The object's spec as written (undefined for kinds without one, e.g. Secret). */
  spec?: Record<string, unknown>;
}

/** Every example directory (one tenant setup each), relative to examples/. */
export function exampleDirs(): string[] {
  return readdirSync(examplesDir)
    .filter((d) => !excluded.has(d) && statSync(join(examplesDir, d)).isDirectory())
    .sort();
}

export function exampleFiles(dir: string): string[] {
  return readdirSync(join(examplesDir, dir))
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(examplesDir, dir, f));
}

export function exampleObjects(dir: string): ExampleObject[] {
  return exampleFiles(dir).flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8'))
      .map((d) => d.toJS() as { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string }; spec?: Record<string, unknown> } | null)
      .filter((o) => o?.kind !== undefined)
      .map((o) => ({
        file: relative(repoRoot, file),
        apiVersion: o?.apiVersion ?? '',
        kind: o?.kind ?? '',
        name: o?.metadata?.name ?? '',
        ...(o?.metadata?.namespace ? { namespace: o.metadata.namespace } : {}),
        ...(o?.spec ? { spec: o.spec } : {}),
      })),
  );
}
