// ruleCovers: a rule filter must cover every topic a requested topic/filter can name.
import { describe, expect, it } from 'vitest';
import { parseSharedSubscription, ruleCovers } from '../../../broker/auth/topic-match.ts';

describe('ruleCovers', () => {
  it.each([
    ['a/b', 'a/b', true],
    ['a/b', 'a/c', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['#', 'x/y', true],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
    ['$SYS/#', '$SYS/broker/uptime', true],
    ['a/+', 'a/+', true],
    ['a/+', 'a/#', false],
    ['a/b', 'a/+', false],
    ['a/#', 'a/+/c', true],
    ['topic/+/status', 'topic/+/status', true],
    ['topic/+/status', 'topic/#', false],
    ['/smarthome/c1/temperature', '/smarthome/c1/temperature', true],
    ['a//b', 'a//b', true],
    ['a/+/b', 'a//b', true],
  ] as const)('%s covers %s → %s', (rule, req, want) => {
    expect(ruleCovers(rule, req)).toBe(want);
  });
});

describe('parseSharedSubscription', () => {
  it.each([
    ['$share/g/a/b', { group: 'g', filter: 'a/b' }],
    ['$share/g', undefined],
    ['$share//a', undefined],
    ['$share/g/', undefined],
    ['a/b', undefined],
  ] as const)('%s', (f, want) => {
    expect(parseSharedSubscription(f)).toEqual(want);
  });
});
