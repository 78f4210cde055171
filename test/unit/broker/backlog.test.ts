// The replica's back-pressure bookkeeping (broker/session/backlog.ts) on its own: when the bus
// reader waits, what ends a wait, and how a slow consumer stops holding it.
import { describe, expect, it } from 'vitest';
import { Backlog } from '../../../broker/session/backlog.ts';
import { sleep } from '../../support/wait.ts';

describe('Backlog', () => {
  it('holds reading while any connected session is over its mark, and lets it go when the last one drains', async () => {
    const b = new Backlog(10_000);
    const [s1, s2] = [{}, {}];
    expect(b.room()).toBeUndefined();
    b.above(s1);
    b.above(s2);
    let done = false;
    const wait = b.room()!;
    void wait.then(() => (done = true));
    expect(b.room()).toBe(wait); // one wait, however many ask
    b.below(s1);
    await sleep(5);
    expect(done).toBe(false);
    b.below(s2);
    await wait;
    expect(b.room()).toBeUndefined();
    expect(b.heldMs).toBeGreaterThanOrEqual(4);
    expect(b.slowConsumers).toBe(0);
  });

  it('lets a session go after the longest hold; it holds nothing again until it has drained', async () => {
    const b = new Backlog(50);
    const slow = {};
    b.above(slow);
    const t0 = performance.now();
    await b.room();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
    expect(b.slowConsumers).toBe(1);
    b.above(slow); // still behind: no new hold
    expect(b.room()).toBeUndefined();
    b.below(slow); // drained
    b.above(slow); // behind again: a burst, held again
    expect(b.room()).toBeDefined();
    b.below(slow);
    expect(b.room()).toBeUndefined();
  });
});
