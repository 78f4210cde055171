// Source config validation: every problem named by its path, valid configs accepted as rendered.
import { describe, expect, it } from 'vitest';
import { authSourceProblems } from '../../../broker/auth/source-schema.ts';

describe('authSourceProblems', () => {
  it('accepts one valid source of every type', () => {
    expect(
      authSourceProblems({
        b: { type: 'builtin', dataFile: '/s/users.yaml', passwordHash: { algorithm: 'bcrypt' } },
        p: { type: 'postgres', host: 'db', port: 5432, database: 'mqtt', passwordFile: '/s/pw', tls: { enabled: true, caFile: '/s/ca' }, passwordHash: { algorithm: 'pbkdf2', macFun: 'sha256', iterations: 1000 } },
        m: { type: 'mysql', host: 'db', port: 3306, database: 'mqtt', onBackendFailure: 'ignore', timeoutMs: 500, passwordHash: { algorithm: 'sha256', saltPosition: 'disable' } },
        r: { type: 'redis', host: 'r', port: 6379, db: 2, passwordHash: { algorithm: 'sha256' } },
        h: { type: 'http', url: 'https://auth/x', method: 'POST', bodyFormat: 'json', body: { u: '${username}' } },
        hp: { type: 'http', url: 'https://auth/x', method: 'POST', bodyFormat: 'form', body: { u: '${username}', p: '${password}', q: '%P' } },
        hd: { type: 'http', url: 'https://auth/x', method: 'POST' },
        hg: { type: 'http', url: 'https://auth/${clientid}', method: 'GET', body: { u: '${username}', c: '%c' } },
        j: { type: 'jwt', from: 'password', jwksUrl: 'https://idp/jwks.json', verifyClaims: { clientid: '${clientid}' } },
        x: { type: 'x509', identityFrom: 'cn', superusers: ['ops'] },
      }),
    ).toEqual([]);
  });
  it.each([
    [{ type: 'ldap' }, 'sources.s.type: must be one of'],
    [{ type: 'postgres', host: 'db', database: 'x', passwordHash: { algorithm: 'md5' } }, 'sources.s.port: is required'],
    [{ type: 'postgres', host: 'db', port: '5432', database: 'x' }, 'sources.s.port: must be integer'],
    [{ type: 'postgres', host: 'db', port: 5432, database: 'x', pasword: 'oops' }, 'sources.s: unknown field "pasword"'],
    [{ type: 'builtin', dataFile: '/f', passwordHash: { algorithm: 'pbkdf2' } }, 'sources.s.passwordHash.macFun: is required'],
    [{ type: 'http', url: 'ftp://x', method: 'POST' }, 'sources.s.url: must match pattern'],
    [{ type: 'jwt', from: 'password' }, 'sources.s: needs exactly one of secretFile, publicKeyFile, jwksFile, jwksUrl'],
    [{ type: 'jwt', from: 'password', secretFile: '/a', jwksUrl: 'http://x' }, 'sources.s: needs exactly one of'],
    [{ type: 'x509', identityFrom: 'serial' }, 'sources.s.identityFrom: must be one of "cn"'],
    [{ type: 'redis', host: 'r', port: 6379, onBackendFailure: 'allow' }, 'sources.s.onBackendFailure: must be one of "deny", "ignore"'],
    // The password never in a URL or a GET query string (access logs of servers and proxies).
    [{ type: 'http', url: 'https://a/x', method: 'GET', body: { u: '${username}', p: '${password}' } }, 'sources.s.body.p: ${password} (or %P) is not allowed with method GET'],
    [{ type: 'http', url: 'https://a/x', method: 'GET', body: { p: 'x%P' } }, 'sources.s.body.p: ${password} (or %P) is not allowed with method GET'],
    [{ type: 'http', url: 'https://a/x', method: 'GET' }, 'sources.s.body: is required with method GET'],
    [{ type: 'http', url: 'https://a/x?p=${password}', method: 'GET', body: {} }, 'sources.s.url: ${password} (or %P) is not allowed in a URL'],
    [{ type: 'http', url: 'https://a/%u/%P', method: 'POST' }, 'sources.s.url: ${password} (or %P) is not allowed in a URL'],
    [{ type: 'http', url: 'https://a/x', aclUrl: 'https://a/acl?p=%P', method: 'POST' }, 'sources.s.aclUrl: ${password} (or %P) is not allowed in a URL'],
  ])('%j', (raw, message) => {
    const problems = authSourceProblems({ s: raw });
    expect(problems.some((p) => p.startsWith(message))).toBe(true);
  });
});
