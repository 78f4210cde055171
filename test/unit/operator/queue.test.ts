// The keyed queue's promises: one in-flight job per key, a key re-added while running runs exactly
// once more, distinct keys run concurrently up to the worker count, failures come back (backoff).
import { describe, expect, it } from 'vitest';
import { KeyedQueue } from '../../../operator/kube/queue.ts';

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, opened };
}

describe('KeyedQueue', () => {
  it('never runs one key twice at once and coalesces re-adds into one rerun', async () => {
    const g = gate();
    const runs: string[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const q = new KeyedQueue(async (key) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      runs.push(key);
      if (runs.length === 1) await g.opened;
      inFlight--;
    }, { workers: 4 });
    q.add('a');
    q.add('a');
    q.add('a');
    q.add('a');
    g.open();
    await q.idle();
    expect(runs).toEqual(['a', 'a']);
    expect(maxInFlight).toBe(1);
  });

  it('runs distinct keys concurrently, bounded by workers', async () => {
    const g = gate();
    let inFlight = 0;
    let maxInFlight = 0;
    const q = new KeyedQueue(async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await g.opened;
      inFlight--;
    }, { workers: 2 });
    for (const k of ['a', 'b', 'c', 'd']) q.add(k);
    expect(q.depth).toBe(4);
    g.open();
    await q.idle();
    expect(maxInFlight).toBe(2);
    expect(q.depth).toBe(0);
  });

  it('retries a failed key with backoff and reports the error', async () => {
    const errors: string[] = [];
    let calls = 0;
    const done = gate();
    const q = new KeyedQueue(async () => {
      calls++;
      if (calls === 1) throw new Error('first fails');
      done.open();
    }, { workers: 1, baseBackoffMs: 1, onError: (key, err) => errors.push(`${key}: ${(err as Error).message}`) });
    q.add('k');
    await done.opened;
    expect(errors).toEqual(['k: first fails']);
    expect(calls).toBe(2);
    q.stop();
  });
});
