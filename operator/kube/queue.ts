// A keyed work queue: one in-flight job per key (a key re-added while running runs once more after),
// a bounded number of workers, and per-key exponential backoff after failures. Level-triggered:
// a key carries no event payload, the job reads the world itself.
export type Job = (key: string) => Promise<{ requeueAfterMs?: number } | void>;

export interface QueueOptions {
  workers: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  onError?: (key: string, err: unknown) => void;
}

export class KeyedQueue {
  private readonly pending: string[] = [];
  private readonly queued = new Set<string>();
  private readonly running = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly idleWaiters: (() => void)[] = [];
  private active = 0;
  private stopped = false;
  private readonly job: Job;
  private readonly opts: Required<Omit<QueueOptions, 'onError'>> & Pick<QueueOptions, 'onError'>;

  constructor(job: Job, opts: QueueOptions) {
    this.job = job;
    this.opts = { baseBackoffMs: 500, maxBackoffMs: 60_000, ...opts };
  }

  get depth(): number {
    return this.pending.length + this.running.size;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.running.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    const timer = this.timers.get(key);
    if (timer) {
      clearTimeout(timer);
      this.timers.delete(key);
    }
    this.queued.add(key);
    this.pending.push(key);
    this.pump();
  }

  addAfter(key: string, ms: number): void {
    if (this.stopped || this.timers.has(key)) return;
    this.timers.set(key, setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms).unref());
  }

  /** Resolves when nothing is queued or running (timers for later retries don't count). */
  async idle(): Promise<void> {
    if (this.depth === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private pump(): void {
    while (!this.stopped && this.active < this.opts.workers && this.pending.length > 0) {
      const key = this.pending.shift()!;
      this.queued.delete(key);
      this.running.add(key);
      this.active++;
      void this.run(key);
    }
    if (this.depth === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async run(key: string): Promise<void> {
    try {
      const result = await this.job(key);
      this.failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      this.opts.onError?.(key, err);
      this.addAfter(key, Math.min(this.opts.maxBackoffMs, this.opts.baseBackoffMs * 2 ** (n - 1)));
    } finally {
      this.running.delete(key);
      this.active--;
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
    }
  }
}
