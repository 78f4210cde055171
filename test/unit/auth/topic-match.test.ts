// ruleCovers: a rule filter must cover every topic a requested topic/filter can name.
import { describe, expect, it } from 'vitest';
import { parseShared, ruleCovers } from '../../../broker/router/topics.ts';

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

describe('parseShared (the one $share parser, also used by the ACL)', () => {
  it.each([
    ['$share/g/a/b', { group: 'g', filter: 'a/b' }],
    ['a/b', undefined],
  ] as const)('%s', (f, want) => {
    expect(parseShared(f)).toEqual(want);
  });
  // A ShareName must not contain a wildcard [MQTT-4.8.2-2]; the other forms miss a part. [MQTT-4.8.2-1]
  it.each(['$share/g', '$share//a', '$share/g/', '$share/+/a', '$share/#/a', '$share/g+/a'])('%s is malformed', (f) => {
    expect(parseShared(f)).toBeInstanceOf(Error);
  });
});
