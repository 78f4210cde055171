// The broker's back-pressure bookkeeping (broker/session/backlog.ts) on its own: which queue
// lengths hold senders, what ends a wait, and how a slow consumer stops holding them.
import { describe, expect, it } from 'vitest';
import { Backlog } from '../../../broker/session/backlog.ts';
import { sleep } from '../../support/wait.ts';

const bounds = { maxQueued: 100, maxQueuedBytes: 1 << 20 };

describe('Backlog', () => {
  it('holds senders from half a queue limit until a quarter, while any connected session is over', async () => {
    const b = new Backlog(10_000);
    const [s1, s2] = [{}, {}];
    b.queued(s1, 49, 1000, bounds);
    expect(b.room()).toBeUndefined(); // under half
    b.queued(s1, 50, 1000, bounds);
    b.queued(s2, 10, bounds.maxQueuedBytes / 2, bounds); // half the bytes
    let done = false;
    const wait = b.room()!;
    void wait.then(() => (done = true));
    expect(b.room()).toBe(wait); // one wait, however many ask
    b.drained(s1, 26, 1000, bounds); // over a quarter: still behind
    b.left(s2); // its client left
    await sleep(5);
    expect(done).toBe(false);
    b.drained(s1, 25, 1000, bounds);
    await wait;
    expect(b.room()).toBeUndefined();
    expect(b.heldMs).toBeGreaterThanOrEqual(4);
    expect(b.slowConsumers).toBe(0);
  });

  it('counts a message queued for a session that holds, unless it is the publisher\'s own', () => {
    const b = new Backlog(10_000);
    const s = {};
    b.queued(s, 50, 0, bounds);
    expect(b.presses).toBe(1);
    b.publisher = s;
    b.queued(s, 51, 0, bounds);
    expect(b.presses).toBe(1);
  });

  it('lets a session go after the longest hold; it holds nothing again until it has drained', async () => {
    const b = new Backlog(50);
    const slow = {};
    b.queued(slow, 60, 0, bounds);
    const t0 = performance.now();
    await b.room();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
    expect(b.slowConsumers).toBe(1);
    b.queued(slow, 90, 0, bounds); // still behind: no new hold
    expect(b.room()).toBeUndefined();
    b.drained(slow, 20, 0, bounds); // drained
    b.queued(slow, 50, 0, bounds); // behind again: a burst, held again
    expect(b.room()).toBeDefined();
    b.left(slow);
    expect(b.room()).toBeUndefined();
  });
});
