// Condition helpers (pure): Ready / Progressing / Degraded, each carrying observedGeneration, reason
// and a message a person can act on. lastTransitionTime only moves when status flips, so recomputing
// the same conditions yields an identical status and the operator writes nothing.
import type { Condition } from './types.ts';

export type ConditionType = Condition['type'];
export type ConditionStatus = Condition['status'];

export interface ConditionInput {
  type: ConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/** Merge desired conditions into existing ones, keeping lastTransitionTime where status did not change. */
export function mergeConditions(
  existing: readonly Condition[] | undefined,
  desired: readonly ConditionInput[],
  generation: number,
  now: string,
): Condition[] {
  const out: Condition[] = [];
  for (const d of desired) {
    const prev = existing?.find((c) => c.type === d.type);
    out.push({
      type: d.type,
      status: d.status,
      observedGeneration: generation,
      lastTransitionTime: prev && prev.status === d.status ? prev.lastTransitionTime : now,
      reason: d.reason,
      message: d.message,
    });
  }
  return out;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: ConditionType): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Stable JSON (sorted keys) for comparing status objects without map-order noise. */
export function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableStringify(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Go-style duration (`90s`, `1h30m`, `2160h`, `500ms`) → milliseconds; throws with the bad input. */
export function parseDuration(s: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const n = Number(m[1]);
    const unit = m[2];
    total += unit === 'h' ? n * 3_600_000 : unit === 'm' ? n * 60_000 : unit === 's' ? n * 1000 : n;
    matched = re.lastIndex;
  }
  if (s.length === 0 || matched !== s.length) throw new Error(`invalid duration "${s}": use Go syntax such as 5s, 10m, 2160h`);
  return total;
}
