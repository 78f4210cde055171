// Property-based tests (fast-check) of the broker's pure cores against simple models: the
// subscription trie against a linear scan with topicMatches, shared-subscription parsing, ACL
// topic coverage against topic matching, and the session queue (ring buffer and the session's
// count/byte bounds) against an array.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newMessage } from '../../../broker/router/message.ts';
import type { Message } from '../../../broker/router/message.ts';
import { SubscriptionTrie } from '../../../broker/router/trie.ts';
import type { SubscriptionOptions } from '../../../broker/router/trie.ts';
import { filterProblem, parseShared, publishTopicProblem, ruleCovers, topicMatches } from '../../../broker/router/topics.ts';
import { PacketIdSet } from '../../../broker/session/packet-ids.ts';
import { MessageQueue } from '../../../broker/session/queue.ts';
import { Session } from '../../../broker/session/session.ts';
import type { SessionLink } from '../../../broker/session/session.ts';

const limits = { maxTopicLength: 1024, maxTopicLevels: 8 };

// A small alphabet, so generated filters and topics actually meet.
const level = fc.constantFrom('a', 'b', 'c', '$s', '');
const topicArb = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/')).filter((t) => publishTopicProblem(t, limits) === undefined);
const filterArb = fc.tuple(fc.array(fc.constantFrom('a', 'b', '$s', '', '+'), { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([l, hash]) => (hash ? [...l, '#'] : l).join('/'))
  .filter((f) => filterProblem(f, limits) === undefined);

const options = (qos: 0 | 1 | 2): SubscriptionOptions => ({ qos, noLocal: false, retainAsPublished: false, retainHandling: 0, identifier: undefined });

class Sub {
  readonly clientId: string;
  constructor(clientId: string) {
    this.clientId = clientId;
  }

  isOnline(): boolean {
    return true;
  }
}

describe('subscription trie vs a linear scan', () => {
  const op = fc.record({
    add: fc.boolean(),
    filter: filterArb,
    group: fc.option(fc.constantFrom('g1', 'g2'), { nil: undefined }),
    who: fc.integer({ min: 0, max: 3 }),
  });

  it('match visits exactly the plain subscribers whose filter matches, and one member per matching shared group', () => {
    fc.assert(fc.property(fc.array(op, { maxLength: 40 }), fc.array(topicArb, { minLength: 1, maxLength: 8 }), (ops, topics) => {
      const subs = [0, 1, 2, 3].map((i) => new Sub(`c${i}`));
      const trie = new SubscriptionTrie<Sub>();
      const model = new Map<string, { filter: string; group: string | undefined; who: number }>();
      for (const o of ops) {
        const key = `${o.filter}|${o.group ?? ''}|${o.who}`;
        if (o.add) {
          expect(trie.add(o.filter, o.group, subs[o.who]!, options(0))).toBe(model.has(key));
          model.set(key, { filter: o.filter, group: o.group, who: o.who });
        } else {
          expect(trie.remove(o.filter, o.group, subs[o.who]!)).toBe(model.delete(key));
        }
      }
      expect(trie.size).toBe(model.size);
      for (const topic of topics) {
        const plain: string[] = [];
        const shared: string[] = [];
        trie.match(topic, (s, _o, isShared) => (isShared ? shared : plain).push(s.clientId));
        const expectPlain = [...model.values()].filter((m) => m.group === undefined && topicMatches(m.filter, topic)).map((m) => `c${m.who}`);
        expect(plain.sort()).toEqual(expectPlain.sort());
        const groups = new Map<string, Set<string>>();
        for (const m of model.values()) {
          if (m.group === undefined || !topicMatches(m.filter, topic)) continue;
          const k = `${m.filter}|${m.group}`;
          groups.set(k, (groups.get(k) ?? new Set()).add(`c${m.who}`));
        }
        expect(shared).toHaveLength(groups.size);
        for (const picked of shared) expect([...groups.values()].some((members) => members.has(picked))).toBe(true);
      }
      // Removing everything leaves no node behind (churn of unique topics must not grow memory).
      for (const m of model.values()) trie.remove(m.filter, m.group, subs[m.who]!);
      expect(trie.size).toBe(0);
      const root = (trie as unknown as { root: { children?: Map<string, unknown> } }).root;
      expect(root.children === undefined || root.children.size === 0).toBe(true);
    }));
  });
});

describe('shared-subscription parsing', () => {
  const group = fc.stringMatching(/^[a-z0-9_$-]{1,8}$/);
  it('$share/{group}/{filter} gives back exactly its parts (one parser, for the router and the ACL code)', () => {
    fc.assert(fc.property(group, filterArb, (g, f) => {
      const s = `$share/${g}/${f}`;
      expect(parseShared(s)).toEqual({ group: g, filter: f });
    }));
  });

  it('anything else is not shared, or malformed; never a group with a wildcard or slash, never an empty filter', () => {
    fc.assert(fc.property(fc.string({ maxLength: 20 }), (tail) => {
      const r = parseShared(`$share/${tail}`);
      if (r instanceof Error) return;
      expect(r).toBeDefined();
      expect(r!.group.length).toBeGreaterThan(0);
      expect(/[/+#]/.test(r!.group)).toBe(false);
      expect(r!.filter.length).toBeGreaterThan(0);
      expect(`$share/${r!.group}/${r!.filter}`).toBe(`$share/${tail}`);
    }));
    fc.assert(fc.property(fc.string({ maxLength: 20 }).filter((s) => !s.startsWith('$share/')), (s) => {
      expect(parseShared(s)).toBeUndefined();
    }));
  });
});

describe('ACL topic coverage', () => {
  it('for PUBLISH, a rule covers a topic exactly when the rule, as a filter, matches it', () => {
    fc.assert(fc.property(filterArb, topicArb, (rule, topic) => {
      expect(ruleCovers(rule, topic)).toBe(topicMatches(rule, topic));
    }));
  });

  it('for SUBSCRIBE, a covered filter reaches no topic its rule does not', () => {
    fc.assert(fc.property(filterArb, filterArb, fc.array(topicArb, { minLength: 1, maxLength: 10 }), (rule, requested, topics) => {
      if (!ruleCovers(rule, requested)) return;
      for (const t of topics) if (topicMatches(requested, t)) expect(topicMatches(rule, t)).toBe(true);
    }));
  });

  it('every filter covers itself', () => {
    fc.assert(fc.property(filterArb, (f) => {
      expect(ruleCovers(f, f)).toBe(true);
    }));
  });
});

describe('packet id set vs a Set', () => {
  it('has/add/delete/size agree, across the switch to the bitmap and back', () => {
    const id = fc.integer({ min: 1, max: 600 });
    const op = fc.tuple(fc.constantFrom('add', 'delete', 'addMany', 'deleteAll'), id);
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const ids = new PacketIdSet();
      const model = new Set<number>();
      for (const [what, n] of ops) {
        if (what === 'add') {
          ids.add(n);
          model.add(n);
        } else if (what === 'delete') {
          expect(ids.delete(n)).toBe(model.delete(n));
        } else if (what === 'addMany') {
          for (let i = n; i < n + 300; i++) {
            ids.add(i);
            model.add(i);
          }
        } else {
          for (const m of [...model]) expect(ids.delete(m)).toBe(model.delete(m));
        }
        expect(ids.size).toBe(model.size);
        expect(ids.has(n)).toBe(model.has(n));
      }
    }));
  });
});

describe('session queue vs an array', () => {
  it('MessageQueue: order, length and bytes as an array; slots outside the queue hold nothing', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('push' as const), size: fc.integer({ min: 0, max: 100 }) }),
      fc.record({ kind: fc.constant('shift' as const) }),
      fc.record({ kind: fc.constant('retain' as const), mod: fc.integer({ min: 2, max: 3 }) }),
      fc.record({ kind: fc.constant('clear' as const) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const q = new MessageQueue<{ id: number; size: number }>((x) => x.size);
      let model: { id: number; size: number }[] = [];
      let next = 0;
      for (const o of ops) {
        if (o.kind === 'push') {
          const item = { id: next++, size: o.size };
          q.push(item);
          model.push(item);
        } else if (o.kind === 'shift') {
          expect(q.shift()).toBe(model.shift());
        } else if (o.kind === 'retain') {
          const removed = q.retain((x) => x.id % o.mod !== 0);
          expect(removed).toEqual(model.filter((x) => x.id % o.mod === 0));
          model = model.filter((x) => x.id % o.mod !== 0);
        } else {
          q.clear();
          model = [];
        }
        expect([...q]).toEqual(model);
        expect(q.length).toBe(model.length);
        expect(q.bytes).toBe(model.reduce((n, x) => n + x.size, 0));
        expect(q.peek()).toBe(model[0]);
        // What the ring references is exactly what the queue holds: nothing dropped stays reachable.
        const ring = (q as unknown as { ring: unknown[] }).ring;
        expect(ring.filter((x) => x !== undefined)).toHaveLength(model.length);
      }
    }));
  });

  it('an offline session keeps the newest messages within maxQueuedMessages and maxQueuedBytes (drop-oldest), delivered in order', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 20 }), fc.integer({ min: 300, max: 3000 }), fc.array(fc.integer({ min: 0, max: 800 }), { maxLength: 60 }),
      (maxQueued, maxQueuedBytes, sizes) => {
        let drops = 0;
        const session = new Session('model', {
          maxInflight: 65535, maxQueued, maxQueuedBytes, queueOverflow: 'drop-oldest',
          onDrop: () => drops++, onDeliver: () => undefined,
        });
        const sent: Message[] = sizes.map((n, i) => newMessage({ topic: `t/${i}`, payload: Buffer.alloc(n), qos: 1, retain: false }, undefined, 0, 'p', 0));
        const model: Message[] = [];
        let modelDrops = 0;
        for (const msg of sent) {
          session.deliver(msg, options(1), false);
          const size = msg.bytes;
          if (size > maxQueuedBytes) {
            modelDrops++;
            continue;
          }
          while (model.length >= maxQueued || model.reduce((n, m) => n + m.bytes, 0) + size > maxQueuedBytes) {
            model.shift();
            modelDrops++;
          }
          model.push(msg);
        }
        expect(session.queuedCount).toBe(model.length);
        expect(session.queuedBytes).toBe(model.reduce((n, m) => n + m.bytes, 0));
        expect(drops).toBe(modelDrops);
        const written: string[] = [];
        const link: SessionLink = {
          v5: false, clientMaxPacketSize: Infinity, clientTopicAliasMaximum: 0, clientReceiveMaximum: 65535,
          write: (buf) => {
            let pos = 1; // the topic follows the Remaining Length varint
            while (buf[pos]! & 0x80) pos++;
            pos++;
            written.push(buf.subarray(pos + 2, pos + 2 + buf.readUInt16BE(pos)).toString());
          },
          congested: () => false,
          outboundAlias: () => undefined,
        };
        session.attach(link, () => Buffer.alloc(0));
        expect(written).toEqual(model.map((m) => m.topic));
        expect(session.queuedCount).toBe(0);
      },
    ));
  });
});
