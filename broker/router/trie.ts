// The subscription index: a trie over topic levels with `+`/`#` nodes and, per node, the plain
// subscribers and the shared-subscription groups (round-robin across members). [MQTT-4.7, 4.8.2]

export interface SubscriptionOptions {
  qos: 0 | 1 | 2;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  /** v5 Subscription Identifier, undefined when none. */
  identifier: number | undefined;
}

/** Whatever owns subscriptions (a session); the trie only needs identity and liveness. */
export interface Subscriber {
  readonly clientId: string;
  /** Prefer online members when picking a shared-subscription target. */
  isOnline(): boolean;
}

interface SharedGroup<S> {
  /** `group/filter`: the name the cluster's shared-group picks use (broker/cluster/shared.ts). */
  key: string;
  members: S[];
  options: Map<S, SubscriptionOptions>;
  next: number;
}

class TrieNode<S> {
  children: Map<string, TrieNode<S>> | undefined = undefined;
  subscribers: Map<S, SubscriptionOptions> | undefined = undefined;
  shared: Map<string, SharedGroup<S>> | undefined = undefined;

  isEmpty(): boolean {
    return (this.children === undefined || this.children.size === 0)
      && (this.subscribers === undefined || this.subscribers.size === 0)
      && (this.shared === undefined || this.shared.size === 0);
  }
}

export type Visit<S> = (subscriber: S, options: SubscriptionOptions, shared: boolean) => void;
/**
 * Whether this broker delivers to a shared group (key `group/filter`) at all: with replicas, only
 * the replica the message's origin picked does (broker/cluster/shared.ts). No gate: always.
 */
export type SharedGate = (key: string) => boolean;

export class SubscriptionTrie<S extends Subscriber> {
  private readonly root = new TrieNode<S>();
  private count = 0;
  /** The gate of the match() running (none: every shared group delivers). */
  private gate: SharedGate | undefined = undefined;

  get size(): number {
    return this.count;
  }

  /** Adds or replaces; returns true when the subscription already existed. [MQTT-3.8.4-3] */
  add(filter: string, group: string | undefined, subscriber: S, options: SubscriptionOptions): boolean {
    let node = this.root;
    for (const level of filter.split('/')) {
      node.children ??= new Map();
      let child = node.children.get(level);
      if (child === undefined) {
        child = new TrieNode<S>();
        node.children.set(level, child);
      }
      node = child;
    }
    if (group === undefined) {
      node.subscribers ??= new Map();
      const existed = node.subscribers.has(subscriber);
      node.subscribers.set(subscriber, options);
      if (!existed) this.count++;
      return existed;
    }
    node.shared ??= new Map();
    let g = node.shared.get(group);
    if (g === undefined) {
      g = { key: `${group}/${filter}`, members: [], options: new Map(), next: 0 };
      node.shared.set(group, g);
    }
    const existed = g.options.has(subscriber);
    if (!existed) {
      g.members.push(subscriber);
      this.count++;
    }
    g.options.set(subscriber, options);
    return existed;
  }

  /** Removes; returns true when a subscription existed. */
  remove(filter: string, group: string | undefined, subscriber: S): boolean {
    const path: TrieNode<S>[] = [this.root];
    const levels = filter.split('/');
    let node: TrieNode<S> | undefined = this.root;
    for (const level of levels) {
      node = node.children?.get(level);
      if (node === undefined) return false;
      path.push(node);
    }
    let removed = false;
    if (group === undefined) {
      removed = node.subscribers?.delete(subscriber) ?? false;
    } else {
      const g = node.shared?.get(group);
      if (g !== undefined && g.options.delete(subscriber)) {
        removed = true;
        const i = g.members.indexOf(subscriber);
        g.members.splice(i, 1);
        if (g.next > i) g.next--;
        if (g.members.length === 0) node.shared!.delete(group);
      }
    }
    if (removed) this.count--;
    // Prune empty nodes so churn of unique topics does not grow memory.
    for (let i = levels.length; i > 0; i--) {
      const n = path[i]!;
      if (!n.isEmpty()) break;
      path[i - 1]!.children!.delete(levels[i - 1]!);
    }
    return removed;
  }

  /** Calls visit once per matching plain subscription and once per matching shared group. */
  match(topic: string, visit: Visit<S>, gate?: SharedGate): void {
    const levels = topic.split('/');
    const outer = this.gate;
    this.gate = gate;
    try {
      // [MQTT-4.7.2-1] wildcards at the first level do not match topics starting with '$'
      this.walk(this.root, levels, 0, visit, topic.charCodeAt(0) === 0x24);
    } finally {
      this.gate = outer;
    }
  }

  private walk(node: TrieNode<S>, levels: string[], depth: number, visit: Visit<S>, dollar: boolean): void {
    const children = node.children;
    if (depth === levels.length) {
      this.emit(node, visit);
      // "sport/#" also matches "sport" [MQTT-4.7.1-2]
      const hash = children?.get('#');
      if (hash !== undefined) this.emit(hash, visit);
      return;
    }
    if (children === undefined) return;
    const wildOk = !(dollar && depth === 0);
    if (wildOk) {
      const hash = children.get('#');
      if (hash !== undefined) this.emit(hash, visit);
      const plus = children.get('+');
      if (plus !== undefined) this.walk(plus, levels, depth + 1, visit, dollar);
    }
    const exact = children.get(levels[depth]!);
    if (exact !== undefined) this.walk(exact, levels, depth + 1, visit, dollar);
  }

  private emit(node: TrieNode<S>, visit: Visit<S>): void {
    if (node.subscribers !== undefined) {
      for (const [subscriber, options] of node.subscribers) visit(subscriber, options, false);
    }
    if (node.shared !== undefined) {
      const gate = this.gate;
      for (const g of node.shared.values()) {
        if (gate !== undefined && !gate(g.key)) continue;
        const picked = pickMember(g);
        if (picked !== undefined) visit(picked, g.options.get(picked)!, true);
      }
    }
  }
}

/** Round-robin, skipping offline members while an online one exists. */
function pickMember<S extends Subscriber>(g: SharedGroup<S>): S | undefined {
  const n = g.members.length;
  for (let i = 0; i < n; i++) {
    const idx = (g.next + i) % n;
    const m = g.members[idx]!;
    if (m.isOnline()) {
      g.next = (idx + 1) % n;
      return m;
    }
  }
  const m = g.members[g.next % n];
  g.next = (g.next + 1) % n;
  return m;
}
