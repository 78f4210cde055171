// charts/enclave/crds/ must equal crds/ byte for byte (scripts/sync-chart-crds.ts keeps them so),
// and the sync plan itself behaves as a table of cases.
import { describe, expect, it } from 'vitest';
import { chartCrdDir, describeDrift, planCrdSync, readYamlDir, sourceDir } from '../../../scripts/sync-chart-crds.ts';

const m = (entries: Record<string, string>) => new Map(Object.entries(entries));

describe('planCrdSync', () => {
  const cases: { name: string; source: Record<string, string>; target: Record<string, string>; write: string[]; remove: string[] }[] = [
    { name: 'identical', source: { 'a.yaml': 'x' }, target: { 'a.yaml': 'x' }, write: [], remove: [] },
    { name: 'missing in chart', source: { 'a.yaml': 'x', 'b.yaml': 'y' }, target: { 'a.yaml': 'x' }, write: ['b.yaml'], remove: [] },
    { name: 'content differs', source: { 'a.yaml': 'x' }, target: { 'a.yaml': 'x ' }, write: ['a.yaml'], remove: [] },
    { name: 'stale in chart', source: {}, target: { 'old.yaml': 'x' }, write: [], remove: ['old.yaml'] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(planCrdSync(m(c.source), m(c.target))).toEqual({ write: c.write, remove: c.remove });
    });
  }
});

describe('charts/enclave/crds', () => {
  it('is byte-identical to crds/', async () => {
    const plan = planCrdSync(await readYamlDir(sourceDir), await readYamlDir(chartCrdDir));
    const drift = plan.write.length + plan.remove.length === 0 ? '' : describeDrift(plan);
    expect(drift).toBe('');
  });

  it('ships the three kinds', async () => {
    const kinds = [...(await readYamlDir(chartCrdDir)).values()].flatMap((text) =>
      [...text.matchAll(/^\s+kind:\s*(MqttDeployment|AuthSource|TlsCertificate)\s*$/gm)].map((x) => x[1]),
    );
    expect(new Set(kinds)).toEqual(new Set(['MqttDeployment', 'AuthSource', 'TlsCertificate']));
  });
});
