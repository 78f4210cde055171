// Generates docs/crd-reference.md from the CRD YAML in crds/ (the schemas are the source of truth:
// descriptions, types, defaults, enums, bounds, CEL rules, printer columns).
//   node scripts/gen-crd-reference.ts          rewrite docs/crd-reference.md
//   node scripts/gen-crd-reference.ts --check  change nothing; exit 1 when the file is stale
// test/unit/docs/crd-reference.test.ts runs the check.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from './sync-chart-crds.ts';

export const referencePath = join(repoRoot, 'docs', 'crd-reference.md');

export interface JsonSchema {
  type?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  'x-kubernetes-validations'?: { rule: string; message?: string; messageExpression?: string }[];
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
}

export interface Crd {
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string; shortNames?: string[]; categories?: string[] };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      schema?: { openAPIV3Schema?: JsonSchema };
      additionalPrinterColumns?: { name: string; type: string; jsonPath: string; description?: string }[];
    }[];
  };
}

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ').trim();
const code = (v: unknown): string => `\`${cell(typeof v === 'string' ? v : JSON.stringify(v))}\``;

function typeOf(s: JsonSchema): string {
  if (s['x-kubernetes-int-or-string']) return 'int-or-string';
  if (s.type === 'array') return `[]${s.items ? typeOf(s.items) : 'any'}`;
  if (s.type === 'object' && s.properties === undefined && typeof s.additionalProperties === 'object') {
    return `map[string]${typeOf(s.additionalProperties)}`;
  }
  const t = s.type ?? (s['x-kubernetes-preserve-unknown-fields'] ? 'any' : 'object');
  return s.format ? `${t} (${s.format})` : t;
}

/** Enum, bounds, pattern, list semantics and CEL rules of one field, as short notes. */
export function constraints(s: JsonSchema): string[] {
  const notes: string[] = [];
  if (s.enum) notes.push(`one of ${s.enum.map(code).join(', ')}`);
  const bounds = (what: string, min?: number, max?: number): void => {
    if (min !== undefined && max !== undefined) notes.push(`${what} ${min}–${max}`);
    else if (min !== undefined) notes.push(`${what} ≥ ${min}`);
    else if (max !== undefined) notes.push(`${what} ≤ ${max}`);
  };
  bounds('range', s.minimum, s.maximum);
  bounds('length', s.minLength, s.maxLength);
  bounds('items', s.minItems, s.maxItems);
  if (s.pattern) notes.push(`pattern ${code(s.pattern)}`);
  if (s['x-kubernetes-list-type'] === 'map') notes.push(`unique by ${(s['x-kubernetes-list-map-keys'] ?? []).map(code).join(', ')}`);
  if (s['x-kubernetes-list-type'] === 'set') notes.push('unique items');
  for (const v of s['x-kubernetes-validations'] ?? []) {
    notes.push(`rule ${code(v.rule)}${v.message ? `: “${cell(v.message)}”` : ''}`);
  }
  return notes;
}

interface Row { path: string; type: string; required: boolean; def: string; description: string }

/** Depth-first rows for every field under `schema`, paths like `spec.listeners[].port`. */
export function fieldRows(schema: JsonSchema, prefix: string): Row[] {
  const rows: Row[] = [];
  const walk = (s: JsonSchema, path: string): void => {
    const props = s.properties ?? (s.type === 'array' ? s.items?.properties : undefined);
    const req = new Set(s.type === 'array' ? (s.items?.required ?? []) : (s.required ?? []));
    const base = s.type === 'array' ? `${path}[]` : path;
    for (const [name, child] of Object.entries(props ?? {})) {
      const childPath = base ? `${base}.${name}` : name;
      const notes = constraints(child.type === 'array' && child.items ? { ...child.items, ...child, 'x-kubernetes-validations': [...(child['x-kubernetes-validations'] ?? []), ...(child.items['x-kubernetes-validations'] ?? [])] } : child);
      const description = [child.description ?? '', ...notes.map((n) => `<br>${n}`)].join('');
      rows.push({
        path: childPath,
        type: typeOf(child),
        required: req.has(name),
        def: child.default === undefined ? '' : code(child.default),
        description,
      });
      walk(child, childPath);
    }
  };
  walk(schema, prefix);
  return rows;
}

function table(rows: Row[]): string[] {
  if (rows.length === 0) return ['_No fields._', ''];
  return [
    '| field | type | required | default | description |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| \`${r.path}\` | ${cell(r.type)} | ${r.required ? 'yes' : ''} | ${r.def} | ${cell(r.description)} |`),
    '',
  ];
}

/** Pure: the whole reference document for `crds`, sorted by kind. */
export function renderCrdReference(crds: Crd[]): string {
  const out: string[] = [
    '# CRD reference',
    '',
    '<!-- Generated by scripts/gen-crd-reference.ts from crds/. Do not edit; run `node scripts/gen-crd-reference.ts`. -->',
    '',
    'Every field of the Enclave API, generated from the CRD schemas the API server enforces. `kubectl explain <kind>.spec` shows the same descriptions. Rules (CEL) are checked by the API server when you apply, so a rejected object names the rule\'s message.',
    '',
  ];
  const sorted = [...crds].sort((a, b) => a.spec.names.kind.localeCompare(b.spec.names.kind));
  out.push(...sorted.map((c) => `- [${c.spec.names.kind}](#${c.spec.names.kind.toLowerCase()})`), '');
  for (const crd of sorted) {
    const { names, group, scope } = crd.spec;
    for (const v of crd.spec.versions.filter((x) => x.served)) {
      const root = v.schema?.openAPIV3Schema ?? {};
      out.push(`## ${names.kind}`, '');
      out.push(`\`${group}/${v.name}\` · ${scope}${v.storage ? ' · storage version' : ''} · plural \`${names.plural}\``);
      if (names.shortNames?.length) out.push(`· short names ${names.shortNames.map(code).join(', ')}`);
      if (names.categories?.length) out.push(`· categories ${names.categories.map(code).join(', ')}`);
      out.push('');
      if (root.description) out.push(cell(root.description), '');
      const cols = v.additionalPrinterColumns ?? [];
      if (cols.length > 0) {
        out.push('`kubectl get` columns:', '', '| column | type | from |', '|---|---|---|');
        out.push(...cols.map((c) => `| ${c.name} | ${c.type} | \`${c.jsonPath}\` |`), '');
      }
      for (const part of ['spec', 'status'] as const) {
        const s = root.properties?.[part];
        if (!s) continue;
        out.push(`### ${names.kind} ${part}`, '');
        if (s.description) out.push(cell(s.description), '');
        const rules = constraints({ 'x-kubernetes-validations': s['x-kubernetes-validations'] ?? [] });
        if (rules.length) out.push(...rules.map((r) => `- ${r}`), '');
        out.push(...table(fieldRows(s, part)));
      }
    }
  }
  return out.join('\n');
}

export async function readCrds(dir = join(repoRoot, 'crds')): Promise<Crd[]> {
  const crds: Crd[] = [];
  for (const name of (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort()) {
    for (const doc of parseAllDocuments(await readFile(join(dir, name), 'utf8'))) {
      const value = doc.toJS() as { kind?: string } | null;
      if (value?.kind === 'CustomResourceDefinition') crds.push(value as unknown as Crd);
    }
  }
  return crds;
}

async function main(): Promise<void> {
  const rendered = renderCrdReference(await readCrds());
  if (process.argv.includes('--check')) {
    const current = await readFile(referencePath, 'utf8').catch(() => '');
    if (current !== rendered) {
      console.error('docs/crd-reference.md is stale: run node scripts/gen-crd-reference.ts');
      process.exitCode = 1;
    }
    return;
  }
  await writeFile(referencePath, rendered);
  console.log(`wrote ${referencePath}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
