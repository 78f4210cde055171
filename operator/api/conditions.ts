// Condition helpers (pure): Ready / Progressing / Degraded, each with observedGeneration. A
// condition's lastTransitionTime changes only when its status changes, so recomputing the same
// state yields the same object and no status write.
import type { Condition } from './types.ts';

export type ConditionInput = Omit<Condition, 'lastTransitionTime'>;

export function mergeConditions(previous: Condition[] | undefined, next: ConditionInput[], now: string): Condition[] {
  return next.map((c) => {
    const old = previous?.find((p) => p.type === c.type);
    const lastTransitionTime = old && old.status === c.status ? old.lastTransitionTime : now;
    return { type: c.type, status: c.status, observedGeneration: c.observedGeneration, lastTransitionTime, reason: c.reason, message: c.message };
  });
}
