// The trie's shared-group gate (what a replica delivers of a message whose origin picked a replica per
// group, broker/replication.ts): a closed group is skipped without advancing its round-robin, plain
// subscriptions are not gated, and no gate means every group delivers (one replica).
import { describe, expect, it } from 'vitest';
import { SubscriptionTrie } from '../../../broker/router/trie.ts';
import type { Subscriber, SubscriptionOptions } from '../../../broker/router/trie.ts';

const options: SubscriptionOptions = { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, identifier: undefined };
const member = (clientId: string): Subscriber => ({ clientId, isOnline: () => true });

function visits(trie: SubscriptionTrie<Subscriber>, topic: string, gate?: (key: string) => boolean): string[] {
  const out: string[] = [];
  trie.match(topic, (s, _o, shared) => out.push(`${shared ? 'shared' : 'plain'}:${s.clientId}`), gate);
  return out.sort();
}

describe('shared-group gate', () => {
  const trie = new SubscriptionTrie<Subscriber>();
  const [a, b, c, p] = ['a', 'b', 'c', 'p'].map(member) as [Subscriber, Subscriber, Subscriber, Subscriber];
  trie.add('jobs/+', 'g', a, options);
  trie.add('jobs/+', 'g', b, options);
  trie.add('jobs/#', 'h', c, options);
  trie.add('jobs/+', undefined, p, options);

  it.each([
    ['no gate: every group and the plain subscriber', undefined, ['plain:p', 'shared:a', 'shared:c']],
    ['gate closed for all groups: only the plain subscriber', () => false, ['plain:p']],
    ['gate open for g/jobs/+ only', (k: string) => k === 'g/jobs/+', ['plain:p', 'shared:b']],
    ['gate open for h/jobs/# only', (k: string) => k === 'h/jobs/#', ['plain:p', 'shared:c']],
  ] as const)('%s', (_name, gate, expected) => {
    expect(visits(trie, 'jobs/1', gate)).toEqual(expected);
  });

  it('a closed gate does not advance the round-robin of the group', () => {
    const t = new SubscriptionTrie<Subscriber>();
    t.add('x', 'g', a, options);
    t.add('x', 'g', b, options);
    expect(visits(t, 'x')).toEqual(['shared:a']);
    for (let i = 0; i < 3; i++) expect(visits(t, 'x', () => false)).toEqual([]);
    expect(visits(t, 'x')).toEqual(['shared:b']);
  });
});
