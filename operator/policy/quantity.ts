// Kubernetes resource quantities (`500m`, `2`, `1.5Gi`, `128M`, `1e3`) as numbers, for comparing a
// tenant's requests against the platform's ceilings and for sizing a runtime namespace's quota.
// Pure; exact enough for comparisons (double precision covers every realistic CPU and byte count).
const SUFFIXES: Record<string, number> = {
  '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** The quantity's value in base units (cores, bytes); undefined when it is not a quantity. */
export function parseQuantity(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text : undefined;
  const m = /^\+?(\d+(?:\.\d*)?|\.\d+)(?:([eE][-+]?\d+)|(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei))?$/.exec(text.trim());
  if (!m) return undefined;
  const value = Number(m[1]) * (m[2] ? 10 ** Number(m[2].slice(1)) : SUFFIXES[m[3] ?? '']!);
  return Number.isFinite(value) ? value : undefined;
}

/** CPU as a quantity string (millicores); sums like 8 + 0.05 are rounded first, so they do not come out a millicore high. */
export function cpuQuantity(cores: number): string {
  return `${Math.ceil(Number((cores * 1000).toFixed(6)))}m`;
}

/** Memory as a quantity string (Mi when whole, else bytes). */
export function memoryQuantity(bytes: number): string {
  const mi = bytes / 2 ** 20;
  return Number.isInteger(mi) ? `${mi}Mi` : `${Math.ceil(bytes)}`;
}
