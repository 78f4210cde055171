// Pure cores, table-driven: config validation, topic rules, the subscription trie, the retained
// store's budget, framing.
import { describe, expect, it } from 'vitest';
import { ConfigError, validateBrokerConfig } from '../../../broker/config.ts';
import { FrameSplitter, readRemainingLength } from '../../../broker/protocol/framing.ts';
import { v3ConnackCode } from '../../../broker/protocol/reason-codes.ts';
import { MESSAGE_OVERHEAD, newMessage } from '../../../broker/router/message.ts';
import { RetainedStore } from '../../../broker/router/retained.ts';
import { SubscriptionTrie } from '../../../broker/router/trie.ts';
import type { SubscriptionOptions } from '../../../broker/router/trie.ts';
import { filterProblem, parseShared, publishTopicProblem, topicMatches } from '../../../broker/router/topics.ts';

const listener = { name: 'a', protocol: 'mqtt', port: 1883 };

describe('config validation names the path of every problem', () => {
  const cases: [string, unknown, string[]][] = [
    ['port above range', { listeners: [listener, { name: 'b', protocol: 'mqtt', port: 70000 }] }, ['listeners[1].port: must be <= 65535']],
    ['unknown protocol', { listeners: [{ ...listener, protocol: 'http' }] }, ['listeners[0].protocol: must be one of "mqtt", "mqtts", "ws", "wss"']],
    ['missing listeners', {}, ['listeners: is required']],
    ['unknown field', { listeners: [listener], limitz: {} }, ['(root): unknown field "limitz"']],
    ['negative limit', { listeners: [listener], limits: { maxInflight: 0 } }, ['limits.maxInflight: must be >= 1']],
    ['new limits are bounded', { listeners: [listener], limits: { maxSessions: -1, maxSubscriptionsPerClient: 0, maxRetainedBytes: 0 } },
      ['limits.maxSessions: must be >= 0', 'limits.maxSubscriptionsPerClient: must be >= 1', 'limits.maxRetainedBytes: must be >= 1']],
    ['tls missing on mqtts', { listeners: [{ ...listener, protocol: 'mqtts' }] }, ['listeners[0].tls: is required for protocol mqtts']],
    ['client CA needed', { listeners: [{ ...listener, protocol: 'mqtts', tls: { certFile: 'c', keyFile: 'k', clientAuth: 'required' } }] }, ['listeners[0].tls.clientCaFile: is required when clientAuth is required']],
    ['duplicate names', { listeners: [listener, { ...listener, port: 1884 }] }, ['listeners[1].name: duplicate listener name "a"']],
    ['chain references a missing source', { listeners: [listener], authentication: { chain: ['pg'] } }, ['authentication.chain[0]: no source named "pg" in sources']],
  ];
  for (const [name, raw, problems] of cases) {
    it(name, () => {
      let err: unknown;
      try {
        validateBrokerConfig(raw);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems).toEqual(problems);
    });
  }

  it('fills defaults', () => {
    const c = validateBrokerConfig({ listeners: [listener] });
    expect(c.listeners[0]!.host).toBe('0.0.0.0');
    expect(c.limits.maxPacketSize).toBe(1024 * 1024);
    expect(c.authorization.noMatch).toBe('deny');
    expect(c.authentication.allowAnonymous).toBe(false);
    expect(c.limits).toMatchObject({ maxSessions: 100_000, maxSubscriptionsPerClient: 1000, maxRetainedBytes: 128 * 1024 * 1024 });
  });

  it('quota exceeded is "server unavailable" (3) for a 3.1.1 CONNACK', () => {
    expect(v3ConnackCode(0x97)).toBe(3);
  });
});

describe('retained store budget', () => {
  const msg = (topic: string, payload: string, expiresAt = 0): ReturnType<typeof newMessage> =>
    newMessage({ topic, payload: Buffer.from(payload), qos: 0, retain: true }, undefined, expiresAt, 'p', 0);
  // Every byte counts: a message with a one-letter topic holds its payload plus O.
  const O = MESSAGE_OVERHEAD + 1;
  type Step = [what: string, topic: string, payload: string, stored: boolean, bytesAfter: number, topicsAfter: string[]];
  const steps: Step[] = [
    ['first message fits', 'a', '1234', true, 4 + O, ['a']],
    ['second fits', 'b', '123456', true, 10 + 2 * O, ['a', 'b']],
    ['a new topic over the budget is not kept', 'c', '12', false, 10 + 2 * O, ['a', 'b']],
    ['a smaller replacement frees bytes', 'b', '12', true, 6 + 2 * O, ['a', 'b']],
    ['now a new topic fits exactly (budget 10 + 3 O)', 'c', '1234', true, 10 + 3 * O, ['a', 'b', 'c']],
    ['a replacement over the budget removes the old one too', 'a', '12345', false, 6 + 2 * O, ['b', 'c']],
    ['an empty payload deletes', 'b', '', true, 4 + O, ['c']],
    ['deleting an absent topic is fine', 'zz', '', true, 4 + O, ['c']],
  ];
  const store = new RetainedStore(1000, 10 + 3 * O);
  for (const [what, topic, payload, stored, bytes, topics] of steps) {
    it(what, () => {
      expect(store.store(msg(topic, payload))).toBe(stored);
      expect(store.bytes).toBe(bytes);
      expect(store.match('#', Date.now()).map((m) => m.topic).sort()).toEqual(topics);
    });
  }

  it('an expired message found by match gives its bytes back; the message count still bounds', () => {
    const s = new RetainedStore(2, 10_000);
    expect(s.store(msg('old', '12345', Date.now() - 1))).toBe(true);
    expect(s.store(msg('new', '123'))).toBe(true);
    expect(s.store(msg('third', '1'))).toBe(false); // count limit 2
    expect(s.match('#', Date.now()).map((m) => m.topic)).toEqual(['new']);
    expect(s.bytes).toBe(3 + 3 + MESSAGE_OVERHEAD);
  });
});

describe('topic rules', () => {
  const limits = { maxTopicLength: 32, maxTopicLevels: 4 };
  const publishCases: [string, string | undefined][] = [
    ['a/b', undefined], ['', 'empty topic name'], ['a/+', 'wildcard in topic name'], ['a/#', 'wildcard in topic name'],
    ['a\u0000b', 'U+0000 in topic name'], ['a/b/c/d/e', 'too many topic levels'], ['x'.repeat(33), 'topic name too long'], ['/', undefined],
  ];
  for (const [topic, problem] of publishCases) it(`publish ${JSON.stringify(topic)}`, () => expect(publishTopicProblem(topic, limits)).toBe(problem));

  const filterCases: [string, boolean][] = [
    ['a/+/c', true], ['#', true], ['a/#', true], ['a/#/c', false], ['a#', false], ['a/b+', false], ['+', true], ['', false],
  ];
  for (const [filter, ok] of filterCases) it(`filter ${JSON.stringify(filter)}`, () => expect(filterProblem(filter, limits) === undefined).toBe(ok));

  const matchCases: [string, string, boolean][] = [
    ['a/+', 'a/b', true], ['a/+', 'a/b/c', false], ['a/#', 'a', true], ['a/#', 'a/b/c', true], ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false], ['$SYS/#', '$SYS/x', true], ['+/+', '/x', true], ['a/b', 'a/b', true], ['a/b', 'a/c', false],
  ];
  for (const [filter, topic, match] of matchCases) it(`${filter} ~ ${topic}`, () => expect(topicMatches(filter, topic)).toBe(match));

  const shareCases: [string, unknown][] = [
    ['$share/g/a/b', { group: 'g', filter: 'a/b' }], ['a/b', undefined],
    ['$share/x', 'Error'], ['$share//t', 'Error'], ['$share/g/', 'Error'], ['$share/g+/t', 'Error'],
    ['$share/+/t', 'Error'], ['$share/#/t', 'Error'], // no wildcard in a ShareName [MQTT-4.8.2-2]
  ];
  for (const [filter, want] of shareCases) {
    it(`shared ${filter}`, () => {
      const got = parseShared(filter);
      if (want === 'Error') expect(got).toBeInstanceOf(Error);
      else expect(got).toEqual(want);
    });
  }
});

describe('subscription trie', () => {
  const opts: SubscriptionOptions = { qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0, identifier: undefined };
  const sub = (clientId: string, online = true): { clientId: string; isOnline(): boolean } => ({ clientId, isOnline: () => online });

  it('matches plain, wildcard and $ topics like topicMatches', () => {
    const trie = new SubscriptionTrie<ReturnType<typeof sub>>();
    const filters = ['a/+', 'a/#', '#', '+/x', '$SYS/#', 'a/b', '+/+'];
    const subs = filters.map((f) => {
      const s = sub(f);
      trie.add(f, undefined, s, opts);
      return s;
    });
    for (const topic of ['a/b', 'a', 'a/b/c', '$SYS/x', 'q/x', '/x']) {
      const got: string[] = [];
      trie.match(topic, (s) => got.push(s.clientId));
      expect(got.sort()).toEqual(filters.filter((f) => topicMatches(f, topic)).sort());
    }
    for (const [i, f] of filters.entries()) expect(trie.remove(f, undefined, subs[i]!)).toBe(true);
    expect(trie.size).toBe(0);
  });

  it('shared groups round-robin and prefer online members', () => {
    const trie = new SubscriptionTrie<ReturnType<typeof sub>>();
    const a = sub('a');
    const b = sub('b');
    const off = sub('off', false);
    for (const s of [a, off, b]) trie.add('t/#', 'g', s, opts);
    const picks: string[] = [];
    for (let i = 0; i < 4; i++) trie.match('t/1', (s) => picks.push(s.clientId));
    expect(picks).toEqual(['a', 'b', 'a', 'b']);
  });
});

describe('framing', () => {
  it('reads Remaining Length varints', () => {
    expect(readRemainingLength(Buffer.from([0x00]), 0)).toEqual({ length: 0, bytes: 1 });
    expect(readRemainingLength(Buffer.from([0xff, 0xff, 0xff, 0x7f]), 0)).toEqual({ length: 268_435_455, bytes: 4 });
    expect(readRemainingLength(Buffer.from([0x80, 0x80]), 0)).toBe(-1);
    expect(readRemainingLength(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x01]), 0)).toBe(-2);
  });

  it('splits frames across chunk boundaries and refuses oversize from the header alone', () => {
    const frames: string[] = [];
    const errors: string[] = [];
    const s = new FrameSplitter(10, { frame: (f) => frames.push(f.toString('hex')), error: (e, n) => errors.push(`${e}:${n}`) });
    s.push(Buffer.from('c000d0', 'hex'));
    s.push(Buffer.from('00300361', 'hex'));
    expect(s.buffered).toBe(3);
    s.push(Buffer.from('6263', 'hex'));
    expect(frames).toEqual(['c000', 'd000', '3003616263']);
    s.push(Buffer.from('30ff7f', 'hex'));
    expect(errors).toEqual(['packet-too-large:16386']);
    expect(s.buffered).toBe(0);
  });
});
