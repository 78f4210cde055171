// Leader election with a coordination.k8s.io/v1 Lease: one replica reconciles, the others wait.
// Acquire when the Lease is free or expired, renew every `renewMs`; losing the Lease is fatal to the
// leader's work (onLost), because two leaders would fight over the same objects. A failed renew is
// retried until `renewDeadlineMs` after the last good one (client-go's RenewDeadline): shorter than
// the lease, so nobody else can have taken it meanwhile, and one API hiccup is not a restart.
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { isConflict, isNotFound } from './client.ts';

export interface LeaderOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseSeconds?: number;
  renewMs?: number;
  /** Give up leadership when no renew succeeded for this long; must stay below leaseSeconds. */
  renewDeadlineMs?: number;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly opts: Required<LeaderOptions>;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  leading = false;

  constructor(kc: KubeConfig, opts: LeaderOptions) {
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.opts = { leaseSeconds: 15, renewMs: 5000, renewDeadlineMs: 10_000, ...opts };
  }

  /** Resolves once this process holds the Lease; then renews until stop(); calls onLost if it is taken. */
  async acquire(onLost: () => void): Promise<void> {
    while (!this.stopped && !(await this.tryAcquire())) await new Promise((r) => setTimeout(r, 2000));
    if (this.stopped) return;
    this.leading = true;
    let lastRenew = Date.now();
    const renew = async () => {
      if (this.stopped) return;
      let ok: boolean;
      try {
        ok = await this.tryAcquire();
      } catch {
        ok = false;
      }
      if (ok) lastRenew = Date.now();
      if (!ok && this.leading && Date.now() - lastRenew >= this.opts.renewDeadlineMs) {
        this.leading = false;
        onLost();
        return;
      }
      // A failed renew retries soon (within the deadline); a good one waits the normal period.
      this.timer = setTimeout(() => void renew(), ok ? this.opts.renewMs : Math.min(1000, this.opts.renewMs));
    };
    this.timer = setTimeout(() => void renew(), this.opts.renewMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    // Release so a successor need not wait for expiry.
    try {
      const lease = await this.api.readNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace });
      if (lease.spec?.holderIdentity === this.opts.identity) {
        lease.spec.holderIdentity = undefined;
        await this.api.replaceNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace, body: lease });
      }
    } catch {
      // Best effort: the Lease expires on its own.
    }
  }

  private async tryAcquire(): Promise<boolean> {
    const { name, namespace, identity, leaseSeconds } = this.opts;
    const now = new Date();
    // MicroTime: the API server wants exactly six fractional digits.
    const micro = now.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as never;
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: leaseSeconds, acquireTime: micro, renewTime: micro, leaseTransitions: 0 } } });
        return true;
      } catch (e) {
        if (isConflict(e)) return false;
        throw e;
      }
    }
    const spec = lease.spec ?? {};
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? leaseSeconds) * 1000 < now.getTime();
    const mine = spec.holderIdentity === identity;
    if (!mine && spec.holderIdentity && !expired) return false;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: leaseSeconds,
      renewTime: micro,
      ...(mine ? {} : { acquireTime: micro, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
    };
    try {
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (e) {
      if (isConflict(e)) return false;
      throw e;
    }
  }
}
