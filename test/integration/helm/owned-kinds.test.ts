// The chart's operator RBAC is exactly what the operator declares it uses (operator/api/owned-kinds.ts,
// the one table its informers, caches and event mapping are built from): every declared kind/verb is
// granted, and the chart grants no kind or verb the operator does not declare. Checked on the
// rendered chart, in both secret modes.
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { OWNED_KINDS } from '../../../operator/api/owned-kinds.ts';
import { helm } from '../../support/world.ts';
import { chartDir } from './helm.ts';

interface Rule { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }
interface RbacObject { kind: string; metadata: { name: string; namespace?: string }; rules?: Rule[] }

async function operatorRules(values: string[]): Promise<Rule[]> {
  const out = await helm(['template', 'enclave', chartDir, '-n', 'enclave-system', ...values]);
  const objects = parseAllDocuments(out.stdout).map((d) => d.toJS() as RbacObject | null);
  const mine = objects.filter(
    (o): o is RbacObject =>
      o !== null && ['ClusterRole', 'Role'].includes(o.kind) && !['enclave-view', 'enclave-edit', 'enclave-uninstall-guard'].includes(o.metadata.name),
  );
  return mine.flatMap((o) => o.rules ?? []);
}

/** group/resource → verbs granted by any rule. */
function grants(rules: Rule[]): Map<string, Set<string>> {
  const m = new Map<string, Set<string>>();
  for (const r of rules) {
    for (const g of r.apiGroups) {
      for (const res of r.resources) {
        const key = `${g}/${res}`;
        const set = m.get(key) ?? new Set<string>();
        for (const v of r.verbs) set.add(v);
        m.set(key, set);
      }
    }
  }
  return m;
}

const declared = new Map<string, string[]>(OWNED_KINDS.map((k) => [`${k.group}/${k.plural}`, [...k.verbs].sort()]));
// owned-kinds.ts leaves out the status subresources: get/update/patch on each of the three kinds.
for (const p of ['mqttdeployments', 'authsources', 'tlscertificates']) declared.set(`mqtt.enclave.dev/${p}/status`, ['get', 'patch', 'update']);

const modes: [string, string[]][] = [
  ['tenantSecretAccess=cluster', []],
  ['tenantSecretAccess=namespaced', ['--set', 'rbac.tenantSecretAccess=namespaced', '--set', 'rbac.tenantNamespaces={team-a}']],
];

describe.each(modes)('operator RBAC (%s)', (_mode, values) => {
  it('grants every kind and verb in operator/api/owned-kinds.ts, and nothing else', async () => {
    const granted = grants(await operatorRules(values));
    const asTable = (m: Map<string, Iterable<string>>): Record<string, string[]> =>
      Object.fromEntries([...m].map(([k, v]): [string, string[]] => [k, [...v].sort()]).sort(([a], [b]) => a.localeCompare(b)));
    expect(asTable(granted)).toEqual(asTable(declared));
  });
});
