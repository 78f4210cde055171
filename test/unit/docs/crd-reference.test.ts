// docs/crd-reference.md is exactly what scripts/gen-crd-reference.ts renders from crds/, and the
// renderer turns schema features (required, defaults, enums, bounds, CEL rules, nested arrays)
// into the rows a reader needs.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { fieldRows, readCrds, referencePath, renderCrdReference, type Crd } from '../../../scripts/gen-crd-reference.ts';

const fixture: Crd = {
  spec: {
    group: 'mqtt.enclave.dev',
    scope: 'Namespaced',
    names: { kind: 'Widget', plural: 'widgets', shortNames: ['wd'], categories: ['enclave'] },
    versions: [
      {
        name: 'v1alpha1',
        served: true,
        storage: true,
        additionalPrinterColumns: [{ name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' }],
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                required: ['listeners'],
                'x-kubernetes-validations': [{ rule: 'self.replicas >= 1', message: 'at least one replica' }],
                properties: {
                  replicas: { type: 'integer', default: 1, minimum: 1, maximum: 5, description: 'How many.' },
                  listeners: {
                    type: 'array',
                    'x-kubernetes-list-type': 'map',
                    'x-kubernetes-list-map-keys': ['name'],
                    items: {
                      type: 'object',
                      required: ['name'],
                      properties: { name: { type: 'string' }, protocol: { type: 'string', enum: ['mqtt', 'mqtts'] } },
                    },
                  },
                  labels: { type: 'object', additionalProperties: { type: 'string' } },
                },
              },
            },
          },
        },
      },
    ],
  },
};

describe('fieldRows', () => {
  it('renders one row per field with type, required, default and constraints', () => {
    const spec = fixture.spec.versions[0]?.schema?.openAPIV3Schema?.properties?.spec;
    if (!spec) throw new Error('fixture');
    const rows = fieldRows(spec, 'spec').map((r) => [r.path, r.type, r.required, r.def, r.description]);
    expect(rows).toEqual([
      ['spec.replicas', 'integer', false, '`1`', 'How many.<br>range 1–5'],
      ['spec.listeners', '[]object', true, '', '<br>unique by `name`'],
      ['spec.listeners[].name', 'string', true, '', ''],
      ['spec.listeners[].protocol', 'string', false, '', '<br>one of `mqtt`, `mqtts`'],
      ['spec.labels', 'map[string]string', false, '', ''],
    ]);
  });

  it('puts top-level CEL rules, printer columns and names in the document', () => {
    const doc = renderCrdReference([fixture]);
    expect(doc).toContain('- rule `self.replicas >= 1`: “at least one replica”');
    expect(doc).toContain('| Ready | string | `.status.conditions[?(@.type=="Ready")].status` |');
    expect(doc).toContain('short names `wd`');
  });
});

describe('docs/crd-reference.md', () => {
  it('is in sync with crds/ (run: node scripts/gen-crd-reference.ts)', async () => {
    const crds = await readCrds();
    expect(crds.map((c) => c.spec.names.kind).sort()).toEqual(['AuthSource', 'MqttDeployment', 'TlsCertificate']);
    expect(await readFile(referencePath, 'utf8')).toBe(renderCrdReference(crds));
  });
});
