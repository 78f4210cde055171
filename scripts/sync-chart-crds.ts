// Keeps charts/enclave/crds/ byte-identical to the top-level crds/ (the single source of CRD YAML).
//   node scripts/sync-chart-crds.ts          copy new/changed files, delete files gone from crds/
//   node scripts/sync-chart-crds.ts --check  change nothing; exit 1 and name the drift
// Helm installs a chart's crds/ verbatim, so a copy that drifts ships a different API than the
// operator was tested against. test/unit/chart/crds-sync.test.ts runs the check.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
export const sourceDir = join(repoRoot, 'crds');
export const chartCrdDir = join(repoRoot, 'charts', 'enclave', 'crds');

export interface CrdSyncPlan {
  /** Files to write into the chart (missing or different there). */
  write: string[];
  /** Files in the chart that crds/ no longer has. */
  remove: string[];
}

/** Pure: what must change so `target` equals `source` (file name → content). */
export function planCrdSync(source: ReadonlyMap<string, string>, target: ReadonlyMap<string, string>): CrdSyncPlan {
  const write = [...source.keys()].filter((name) => target.get(name) !== source.get(name)).sort();
  const remove = [...target.keys()].filter((name) => !source.has(name)).sort();
  return { write, remove };
}

const isCrdFile = (name: string): boolean => /\.ya?ml$/.test(name);

export async function readYamlDir(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  if (!existsSync(dir)) return files;
  for (const name of (await readdir(dir)).filter(isCrdFile).sort()) {
    files.set(name, await readFile(join(dir, name), 'utf8'));
  }
  return files;
}

export function describeDrift(plan: CrdSyncPlan): string {
  const lines = [
    ...plan.write.map((n) => `  charts/enclave/crds/${n} is missing or differs from crds/${n}`),
    ...plan.remove.map((n) => `  charts/enclave/crds/${n} has no counterpart in crds/`),
  ];
  return `chart CRDs are out of sync with crds/:\n${lines.join('\n')}\nrun: node scripts/sync-chart-crds.ts`;
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  const source = await readYamlDir(sourceDir);
  const plan = planCrdSync(source, await readYamlDir(chartCrdDir));
  if (plan.write.length === 0 && plan.remove.length === 0) {
    console.log(`chart CRDs in sync (${source.size} files)`);
    return;
  }
  if (check) {
    console.error(describeDrift(plan));
    process.exitCode = 1;
    return;
  }
  await mkdir(chartCrdDir, { recursive: true });
  for (const name of plan.write) await writeFile(join(chartCrdDir, name), source.get(name) ?? '');
  for (const name of plan.remove) await rm(join(chartCrdDir, name));
  console.log(`chart CRDs synced: wrote ${plan.write.length}, removed ${plan.remove.length}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
