// ACL parsing (EMQX 5 rows, EMQX 4 mqtt_acl rows, Redis hashes, JWT claims) and first-match evaluation.
import { describe, expect, it } from 'vitest';
import { evaluateAcl, parseAclClaim, parseRedisAcl, parseRule, type Rule } from '../../../broker/auth/acl.ts';
import type { AuthorizationRequest } from '../../../broker/auth/hook.ts';
import type { PlaceholderValues } from '../../../broker/auth/placeholders.ts';

const who = (over: Partial<PlaceholderValues> = {}): PlaceholderValues => ({
  username: 'alice', clientid: 'c1', peerhost: '10.1.2.3', cert_common_name: undefined, cert_subject: undefined, ...over,
});
const pub = (topic: string, qos: 0 | 1 | 2 = 0, retain = false): AuthorizationRequest => ({ action: 'publish', topic, qos, retain });
const sub = (topic: string, qos: 0 | 1 | 2 = 0): AuthorizationRequest => ({ action: 'subscribe', topic, qos, retain: false });

// Seed 003's EMQX 4 sample rows, in id order.
const emqx4Rows = [
  { allow: 1, ipaddr: null, username: '$all', clientid: null, access: 2, topic: '#' },
  { allow: 0, ipaddr: null, username: '$all', clientid: null, access: 1, topic: '$SYS/#' },
  { allow: 0, ipaddr: null, username: '$all', clientid: null, access: 1, topic: 'eq #' },
  { allow: 1, ipaddr: '127.0.0.1', username: null, clientid: null, access: 2, topic: '$SYS/#' },
  { allow: 1, ipaddr: '127.0.0.1', username: null, clientid: null, access: 2, topic: '#' },
  { allow: 1, ipaddr: null, username: 'dashboard', clientid: null, access: 1, topic: '$SYS/#' },
  { allow: 1, ipaddr: null, username: '$all', clientid: null, access: 3, topic: '/smarthome/%c/temperature' },
];

describe('EMQX 4 mqtt_acl rows', () => {
  const rules = emqx4Rows.flatMap((r) => parseRule(r));
  it.each([
    ['anyone may publish #', who(), pub('a/b'), 'allow'],
    ['$all denied subscribe $SYS/#', who(), sub('$SYS/broker/x'), 'deny'],
    ['eq # is literal', who(), sub('#'), 'deny'],
    ['a/# is not eq #', who(), sub('a/#'), 'ignore'],
    ['127.0.0.1 may publish $SYS', who({ peerhost: '127.0.0.1' }), pub('$SYS/x'), 'allow'],
    ['others may not publish $SYS', who(), pub('$SYS/x'), 'ignore'],
    ['IPv4-mapped peer', who({ peerhost: '::ffff:127.0.0.1' }), pub('$SYS/x'), 'allow'],
    ['dashboard: $all deny comes first', who({ username: 'dashboard' }), sub('$SYS/x'), 'deny'],
    ['own temperature', who(), sub('/smarthome/c1/temperature'), 'allow'],
    ['someone else temperature', who(), sub('/smarthome/c2/temperature'), 'ignore'],
    ['client id # does not widen', who({ clientid: '#' }), sub('/smarthome/#'), 'ignore'],
    ['client id + does not widen', who({ clientid: '+' }), sub('/smarthome/+/temperature'), 'ignore'],
  ] as const)('%s', (_n, v, req, want) => {
    expect(evaluateAcl(rules, req, v)).toBe(want);
  });
  it('CIDR ipaddr', () => {
    const r = parseRule({ allow: 1, ipaddr: '10.1.0.0/16', username: null, clientid: null, access: 3, topic: 'x' });
    expect(evaluateAcl(r, pub('x'), who())).toBe('allow');
    expect(evaluateAcl(r, pub('x'), who({ peerhost: '10.2.0.1' }))).toBe('ignore');
  });
  it('username and clientid are AND-ed', () => {
    const r = parseRule({ allow: 1, ipaddr: null, username: 'alice', clientid: 'c9', access: 3, topic: 'x' });
    expect(evaluateAcl(r, pub('x'), who())).toBe('ignore');
    expect(evaluateAcl(r, pub('x'), who({ clientid: 'c9' }))).toBe('allow');
  });
});

describe('EMQX 5 rules', () => {
  const rules: Rule[] = [
    { permission: 'allow', action: 'publish', topic: 'topic/${clientid}/status', qos: [0, 1], retain: false },
    { permission: 'deny', action: 'all', topic: '$share/+/jobs/#' },
    { permission: 'allow', action: 'subscribe', topic: '$share/workers/jobs/#' },
    { permission: 'allow', action: 'subscribe', topic: 'topic/+/status' },
    { permission: 'deny', action: 'all', topic: '#' },
  ];
  it.each([
    ['own status qos1', pub('topic/c1/status', 1), 'allow'],
    ['own status qos2 not allowed', pub('topic/c1/status', 2), 'deny'],
    ['own status retained not allowed', pub('topic/c1/status', 0, true), 'deny'],
    ['other status', pub('topic/c2/status'), 'deny'],
    ['subscribe all statuses', sub('topic/+/status'), 'allow'],
    ['subscribe broader', sub('topic/#'), 'deny'],
    ['shared sub any group denied first', sub('$share/workers/jobs/a'), 'deny'],
    ['shared sub to status via plain rule', sub('$share/g/topic/+/status'), 'allow'],
  ] as const)('%s', (_n, req, want) => {
    expect(evaluateAcl(rules, req, who())).toBe(want);
  });

  it.each([
    [{ permission: 'allow', action: 'pub', topic: 't', qos: '0,1', retain: 'all' }, [{ permission: 'allow', action: 'publish', topic: 't', qos: [0, 1] }]],
    [{ permission: 'deny', action: 'sub', topics: ['a', 'b'], qos: 2, retain: 1 }, [
      { permission: 'deny', action: 'subscribe', topic: 'a', qos: [2], retain: true },
      { permission: 'deny', action: 'subscribe', topic: 'b', qos: [2], retain: true },
    ]],
    [{ permission: 'allow', action: 'all', topic: 't', username: 'u', ipaddress: '1.1.1.1' }, [{ permission: 'allow', action: 'all', topic: 't', who: { username: 'u', ipaddr: '1.1.1.1' } }]],
  ])('parses %j', (raw, want) => {
    expect(parseRule(raw)).toEqual(want);
  });
  it.each([{ action: 'publish', topic: 't' }, { permission: 'maybe', action: 'publish', topic: 't' }, { permission: 'allow', action: 'x', topic: 't' },
    { permission: 'allow', action: 'publish', topic: '' }, { permission: 'allow', action: 'publish', topic: 't', qos: 3 }, { allow: 1, access: 4, topic: 't' }])('rejects %j', (raw) => {
    expect(() => parseRule(raw)).toThrow(/invalid ACL rule/);
  });
});

describe('Redis hashes and JWT claims', () => {
  it('redis: allow-only; access names, bitmasks and JSON', () => {
    const rules = parseRedisAcl({ 'a/#': '2', 'b/+': 'subscribe', 'c/${clientid}': 'all', d: '{"action":"publish","qos":[1]}' });
    expect(evaluateAcl(rules, pub('a/x'), who())).toBe('allow');
    expect(evaluateAcl(rules, sub('a/x'), who())).toBe('ignore');
    expect(evaluateAcl(rules, sub('b/1'), who())).toBe('allow');
    expect(evaluateAcl(rules, pub('c/c1'), who())).toBe('allow');
    expect(evaluateAcl(rules, pub('d', 1), who())).toBe('allow');
    expect(evaluateAcl(rules, pub('d', 0), who())).toBe('ignore');
  });
  it('jwt list format: no match → ignore', () => {
    const rules = parseAclClaim([{ permission: 'allow', action: 'publish', topic: 'x/${username}' }]);
    expect(evaluateAcl(rules, pub('x/alice'), who())).toBe('allow');
    expect(evaluateAcl(rules, pub('y'), who())).toBe('ignore');
  });
  it('jwt old map format: no match → deny, including $ topics', () => {
    const rules = parseAclClaim({ pub: ['p/#'], sub: ['s/+'], all: ['a'] });
    expect(evaluateAcl(rules, pub('p/1'), who())).toBe('allow');
    expect(evaluateAcl(rules, sub('s/1'), who())).toBe('allow');
    expect(evaluateAcl(rules, sub('a'), who())).toBe('allow');
    expect(evaluateAcl(rules, sub('p/1'), who())).toBe('deny');
    expect(evaluateAcl(rules, sub('$SYS/x'), who())).toBe('deny');
  });
  it.each(['string', 5, { pub: 'x' }])('rejects claim %j', (raw) => {
    expect(() => parseAclClaim(raw)).toThrow(/ACL/);
  });
});
