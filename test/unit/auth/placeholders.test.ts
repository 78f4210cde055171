// Placeholder rendering: variables become bound parameters / single arguments, never query text.
import { describe, expect, it } from 'vitest';
import { compileRedisCommand, compileSql, compileUrl, compileValue, parseTemplate, renderTopicTemplate, templateUses, type PlaceholderValues } from '../../../broker/auth/placeholders.ts';

const v: PlaceholderValues = {
  username: "bob'; DROP TABLE mqtt_user; --",
  clientid: 'dev 1',
  peerhost: '10.0.0.7',
  cert_common_name: 'cn-1',
  cert_subject: 'CN=cn-1,O=Acme',
  password: 'pw',
};

describe('compileSql', () => {
  it.each([
    ['postgres', 'SELECT * FROM u WHERE username = ${username} LIMIT 1', 'SELECT * FROM u WHERE username = $1 LIMIT 1', [v.username]],
    ['mysql', 'SELECT * FROM u WHERE username = ${username} LIMIT 1', 'SELECT * FROM u WHERE username = ? LIMIT 1', [v.username]],
    ['postgres', "select password from mqtt_user where username = '%u' limit 1", 'select password from mqtt_user where username = $1 limit 1', [v.username]],
    ['mysql', "where ipaddr = '%a' or username = '%u' or username = '$all' or clientid = '%c'", "where ipaddr = ? or username = ? or username = '$all' or clientid = ?", [v.peerhost, v.username, v.clientid]],
    ['postgres', 'x = ${clientid} AND y = ${peerhost} AND z = ${cert_common_name} AND s = ${cert_subject}', 'x = $1 AND y = $2 AND z = $3 AND s = $4', [v.clientid, v.peerhost, 'cn-1', 'CN=cn-1,O=Acme']],
    ['postgres', "a = '%C' AND b = '${$}x'", "a = $1 AND b = '$x'", ['cn-1']],
  ] as const)('%s: %s', (dialect, template, text, values) => {
    expect(compileSql(template, dialect)(v)).toEqual({ text, values });
  });

  it('binds a missing username as NULL (matches no row)', () => {
    expect(compileSql('u = ${username}', 'postgres')({ ...v, username: undefined }).values).toEqual([null]);
  });

  it.each(['${nope}', '${username', '${password}'])('rejects %s where not allowed', (t) => {
    expect(() => compileSql(`x = ${t}`, 'postgres', new Set(['username']))).toThrow(/template/);
  });
});

describe('single-value templates', () => {
  it('redis: split first, then render, so a value with spaces stays one argument', () => {
    const c = compileRedisCommand('hmget mqtt_user:${username} password_hash salt');
    expect(c.command).toBe('HMGET');
    expect(c.args({ ...v, username: 'a b c' })).toEqual(['mqtt_user:a b c', 'password_hash', 'salt']);
  });
  it('value: plain substitution, missing → empty', () => {
    expect(compileValue('${clientid}-%u')({ ...v, username: undefined })).toBe('dev 1-');
  });
  it('url: values are percent-encoded', () => {
    expect(compileUrl('http://h/auth/${username}?c=${clientid}')({ ...v, username: '../admin?x=1&y' })).toBe(
      'http://h/auth/..%2Fadmin%3Fx%3D1%26y?c=dev%201',
    );
  });
  it('parses text and variables', () => {
    expect(parseTemplate('a/${username}/%c')).toEqual([{ text: 'a/' }, { variable: 'username' }, { text: '/' }, { variable: 'clientid' }]);
  });
});

describe('renderTopicTemplate (CVE-2017-7650)', () => {
  const base: PlaceholderValues = { username: 'u1', clientid: 'c1', peerhost: '1.2.3.4', cert_common_name: undefined, cert_subject: undefined };
  it.each([
    ['topic/${clientid}/status', {}, 'topic/c1/status'],
    ['/smarthome/%c/temperature', {}, '/smarthome/c1/temperature'],
    ['u/%u/#', {}, 'u/u1/#'],
    ['plain/+/x', {}, 'plain/+/x'],
    ['topic/${clientid}/status', { clientid: '#' }, undefined],
    ['topic/${clientid}/status', { clientid: '+' }, undefined],
    ['topic/${clientid}/status', { clientid: 'a/b' }, undefined],
    ['u/${username}', { username: undefined }, undefined],
    ['u/${username}', { username: '' }, undefined],
    ['c/${cert_common_name}', {}, undefined],
    ['c/${cert_common_name}', { cert_common_name: 'dev' }, 'c/dev'],
    ['c/${peerhost}', {}, undefined],
  ] as const)('%s with %j → %s', (t, over, want) => {
    expect(renderTopicTemplate(t, { ...base, ...over })).toBe(want);
  });
});

describe('templateUses', () => {
  it.each([
    ['${password}', true],
    ['pw=%P', true],
    ['https://a/%u?x=${clientid}', false],
    ['${$}{password}', false], // the escape is literal text
    ['${nope} ${password}', false], // invalid: reported when compiled
  ] as const)('%s → %s', (t, uses) => {
    expect(templateUses(t, 'password')).toBe(uses);
  });
});
