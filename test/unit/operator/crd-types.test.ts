// Keeps operator/api/types.ts and crds/*.yaml telling the same story: every spec/status field path
// declared in the YAML schema exists in the TypeScript interfaces and vice versa. Reads both with
// their real parsers (the TypeScript compiler API and `yaml`), so a field added on one side only fails.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../support/paths.ts';

const typesFile = join(repoRoot, 'operator', 'api', 'types.ts');
const program = ts.createProgram([typesFile], { strict: true, noEmit: true, allowImportingTsExtensions: true });
const checker = program.getTypeChecker();
const source = program.getSourceFile(typesFile)!;

/** Field paths of a TS type, descending into object types but not into free-form maps/unknowns. */
function tsPaths(type: ts.Type, prefix: string, depth = 0): string[] {
  if (depth > 8) return [];
  const out: string[] = [];
  const target = type.getNonNullableType();
  const element = checker.isArrayType(target) ? checker.getTypeArguments(target as ts.TypeReference)[0]! : target;
  if (element.getStringIndexType() || element.flags & ts.TypeFlags.Unknown) return out;
  if (!(element.flags & ts.TypeFlags.Object)) return out;
  for (const prop of element.getProperties()) {
    const path = prefix ? `${prefix}.${prop.name}` : prop.name;
    out.push(path);
    out.push(...tsPaths(checker.getTypeOfSymbol(prop), path, depth + 1));
  }
  return out;
}

interface Schema { type?: string; properties?: Record<string, Schema>; items?: Schema; 'x-kubernetes-preserve-unknown-fields'?: boolean }
/** Field paths of a schema; `opaque` collects paths whose content the schema leaves free-form. */
function yamlPaths(schema: Schema, prefix: string, opaque: string[]): string[] {
  const out: string[] = [];
  const node = schema.type === 'array' && schema.items ? schema.items : schema;
  if (node['x-kubernetes-preserve-unknown-fields']) opaque.push(prefix);
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const path = prefix ? `${prefix}.${name}` : name;
    out.push(path);
    out.push(...yamlPaths(child, path, opaque));
  }
  return out;
}

function interfaceType(name: string): ts.Type {
  const moduleSymbol = checker.getSymbolAtLocation(source)!;
  const symbol = checker.getExportsOfModule(moduleSymbol).find((s) => s.name === name);
  if (!symbol) throw new Error(`interface ${name} not found in operator/api/types.ts`);
  return checker.getDeclaredTypeOfSymbol(symbol);
}

const kinds = [
  { file: 'mqtt.enclave.dev_mqttdeployments.yaml', spec: 'MqttDeploymentSpec', status: 'MqttDeploymentStatus' },
  { file: 'mqtt.enclave.dev_authsources.yaml', spec: 'AuthSourceSpec', status: 'AuthSourceStatus' },
  { file: 'mqtt.enclave.dev_tlscertificates.yaml', spec: 'TlsCertificateSpec', status: 'TlsCertificateStatus' },
];

describe('CRD YAML and TypeScript types', () => {
  for (const kind of kinds) {
    const crd = parse(readFileSync(join(repoRoot, 'crds', kind.file), 'utf8')) as {
      spec: { versions: { schema: { openAPIV3Schema: Schema } }[] };
    };
    const root = crd.spec.versions[0]!.schema.openAPIV3Schema.properties!;
    for (const part of ['spec', 'status'] as const) {
      it(`${kind.file} ${part} fields match ${kind[part]}`, () => {
        const opaque: string[] = [];
        const fromYaml = yamlPaths(root[part]!, '', opaque).sort();
        const fromTs = tsPaths(interfaceType(kind[part]), '')
          .filter((path) => !opaque.some((o) => path.startsWith(`${o}.`)))
          .sort();
        expect(fromTs).toEqual(fromYaml);
      });
    }
  }
});
