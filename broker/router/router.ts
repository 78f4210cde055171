// Owns routing: the subscription trie and the retained store of one broker. route() delivers a
// message to every matching subscription (merging overlapping ones that carry Subscription
// Identifiers) and keeps it when retained; retainedFor() hands a new subscriber the retained
// messages whose publisher may still publish them. Allocation-free per matched subscriber on the
// hot path: the visit callback and the hit stacks are made once.
import type { AuthenticatedClient } from '../auth/hook.ts';
import type { Authorization, AuthorizationCheck } from '../authorization.ts';
import type { Session } from '../session/session.ts';
import type { Message } from './message.ts';
import { RetainedStore } from './retained.ts';
import type { RetainedEntry } from './retained.ts';
import { SubscriptionTrie } from './trie.ts';
import type { SharedGate, SubscriptionOptions } from './trie.ts';

/** Retained messages kept at most, whatever their bytes. */
const MAX_RETAINED = 1_000_000;
/** Sequence of route() calls; never 0, the mark of a session no route has hit. */
let routeCounter = 0;

export interface RouterOptions {
  maxRetainedBytes: number;
  /** How long a publisher's confirmed right to a retained message holds (the decision cache TTL). */
  retainedRightTtlMs: number;
  authorization: Authorization;
  /** A retained message was delivered live but not kept (over the budget). */
  onRetainedNotStored(): void;
  /** A retained message whose publisher lost the right was removed. */
  onRetainedRevoked(): void;
  /**
   * A session joined (+1) or left (-1) shared group `group` of `filter` (replicas keep the
   * cluster-wide member counts from it); absent with one replica.
   */
  onSharedMembership?(group: string, filter: string, delta: 1 | -1): void;
}

export class Router {
  readonly retained: RetainedStore<AuthenticatedClient>;
  private readonly trie = new SubscriptionTrie<Session>();
  private readonly options: RouterOptions;
  private routing: Message | undefined;
  private readonly visit: (s: Session, o: SubscriptionOptions, shared: boolean) => void;
  /** Plain subscriptions matched by the message being routed (a stack: route() may re-enter). */
  private readonly hitSessions: Session[] = [];
  private readonly hitOptions: SubscriptionOptions[] = [];
  /** Marks sessions hit by the current route(), to notice overlapping subscriptions. */
  private routeSeq = 0;
  private routeOverlap = false;

  constructor(options: RouterOptions) {
    this.options = options;
    this.retained = new RetainedStore<AuthenticatedClient>(MAX_RETAINED, options.maxRetainedBytes);
    this.visit = (session, subOptions, shared) => {
      const msg = this.routing!;
      if (subOptions.noLocal && session.clientId === msg.senderId) return; // [MQTT-3.8.3-3]
      if (shared) {
        session.deliver(msg, subOptions, false);
        return;
      }
      if (session.routeMark === this.routeSeq) this.routeOverlap = true;
      session.routeMark = this.routeSeq;
      this.hitSessions.push(session);
      this.hitOptions.push(subOptions);
    };
  }

  get subscriptionCount(): number {
    return this.trie.size;
  }

  /** Adds or replaces a subscription; returns true when it existed before. */
  subscribe(session: Session, key: string, filter: string, group: string | undefined, options: SubscriptionOptions): boolean {
    const old = session.subscriptions.get(key);
    session.subscriptions.set(key, { filter, group, options });
    this.trie.add(filter, group, session, options);
    if (group !== undefined && old === undefined) this.options.onSharedMembership?.(group, filter, 1);
    return old !== undefined;
  }

  unsubscribe(session: Session, key: string): boolean {
    const sub = session.subscriptions.get(key);
    if (sub === undefined) return false;
    session.subscriptions.delete(key);
    this.trie.remove(sub.filter, sub.group, session);
    if (sub.group !== undefined) this.options.onSharedMembership?.(sub.group, sub.filter, -1);
    return true;
  }

  /** Every subscription of an ending session goes. */
  unsubscribeAll(session: Session): void {
    for (const sub of session.subscriptions.values()) {
      this.trie.remove(sub.filter, sub.group, session);
      if (sub.group !== undefined) this.options.onSharedMembership?.(sub.group, sub.filter, -1);
    }
    session.subscriptions.clear();
  }

  /**
   * Delivers a message to every matching subscription and keeps it if retained. `publisher` is
   * whose right to publish a kept message is checked again later (undefined: the broker itself,
   * or a client every right is granted to).
   */
  route(msg: Message, publisher: AuthenticatedClient | undefined, gate?: SharedGate): void {
    // Over the retained budget the message is still delivered live, just not kept.
    if (msg.retain && !this.retained.store(msg, { publisher, checkedAt: Date.now(), generation: this.options.authorization.generation })) {
      this.options.onRetainedNotStored();
    }
    this.deliver(msg, gate);
  }

  /**
   * Delivers to every matching subscription without touching the retained store: a message
   * another replica accepted (its retained part arrives in Redis order, broker/cluster/bus.ts).
   */
  deliver(msg: Message, gate: SharedGate | undefined): void {
    const outer = this.routing;
    const outerSeq = this.routeSeq;
    const outerOverlap = this.routeOverlap;
    const start = this.hitSessions.length;
    this.routing = msg;
    this.routeSeq = ++routeCounter;
    this.routeOverlap = false;
    try {
      this.trie.match(msg.topic, this.visit, gate);
      if (this.routeOverlap) this.deliverOverlapping(msg, start);
      else for (let i = start; i < this.hitSessions.length; i++) this.hitSessions[i]!.deliver(msg, this.hitOptions[i]!, false);
    } finally {
      this.hitSessions.length = start;
      this.hitOptions.length = start;
      this.routing = outer;
      this.routeSeq = outerSeq;
      this.routeOverlap = outerOverlap;
    }
  }

  /**
   * A session with several matching subscriptions of which at least one has a Subscription
   * Identifier gets one copy: the highest QoS, retained if any asks for retain-as-published, and
   * every identifier (what MQTT 5 clients and interop suites expect; MQTT-3.3.4-3 allows both).
   * Without identifiers each subscription gets its copy, as before.
   */
  private deliverOverlapping(msg: Message, start: number): void {
    const bySession = new Map<Session, SubscriptionOptions[]>();
    for (let i = start; i < this.hitSessions.length; i++) {
      const s = this.hitSessions[i]!;
      const list = bySession.get(s);
      if (list === undefined) bySession.set(s, [this.hitOptions[i]!]);
      else list.push(this.hitOptions[i]!);
    }
    for (const [session, list] of bySession) {
      const ids = list.flatMap((o) => (o.identifier === undefined ? [] : [o.identifier])).sort((a, b) => a - b);
      if (list.length === 1 || ids.length === 0) {
        for (const o of list) session.deliver(msg, o, false);
        continue;
      }
      const merged: SubscriptionOptions = {
        qos: list.reduce<0 | 1 | 2>((q, o) => (o.qos > q ? o.qos : q), 0),
        noLocal: false,
        retainAsPublished: list.some((o) => o.retainAsPublished),
        retainHandling: 0,
        identifier: undefined,
      };
      session.deliver(msg, merged, false, ids);
    }
  }

  /**
   * Retained messages matching `filter` whose publisher may still publish them: a right confirmed
   * before an auth source last reloaded, or longer ago than the decision cache TTL, is asked
   * again (so a source without change notifications is covered too); a message whose publisher
   * lost the right is removed from the store, not delivered. Fresh copies, in store order.
   */
  retainedFor(filter: string, now: number): Message[] | Promise<Message[]> {
    const entries = this.retained.matchEntries(filter, now);
    const { authorization, retainedRightTtlMs: ttlMs } = this.options;
    const generation = authorization.generation;
    const stale = entries.filter((e) => e.publisher !== undefined && (e.generation !== generation || now - e.checkedAt >= ttlMs));
    const copies = (): Message[] => entries.filter((e) => !denied.has(e)).map((e) => ({ ...e.message, encoded: undefined }));
    const denied = new Set<RetainedEntry<AuthenticatedClient>>();
    if (stale.length === 0) return copies();
    const checks = stale.map((e): AuthorizationCheck => ({ client: e.publisher!, action: 'publish', topic: e.message.topic, qos: e.message.qos, retain: true }));
    return authorization.each(checks).then((verdicts) => {
      stale.forEach((e, i) => {
        if (verdicts[i]) {
          e.checkedAt = now;
          e.generation = generation;
        } else {
          denied.add(e);
          this.retained.remove(e);
          this.options.onRetainedRevoked();
        }
      });
      return copies();
    });
  }
}
