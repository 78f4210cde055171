// operator/api/auth-source-secrets.ts: the one list of Secret keys each AuthSource type needs. The
// AuthSource status checks exactly these keys and the broker config copies exactly these files.
import { describe, expect, it } from 'vitest';
import { sourceSecretKeys } from '../../../operator/api/auth-source-secrets.ts';
import type { AuthSource } from '../../../operator/api/types.ts';
import { renderBrokerConfig } from '../../../operator/resources/broker-config.ts';
import { b64, ctx, md, source } from './fixtures.ts';

const tls = { enabled: true, secretRef: { name: 'ca' } };
const cases: [string, AuthSource['spec'], string[]][] = [
  ['builtin, default key', { type: 'builtin', builtin: { secretRef: { name: 'users' } } }, ['users/users.yaml → dataFile']],
  ['builtin, named key', { type: 'builtin', builtin: { secretRef: { name: 'users', key: 'list.yaml' } } }, ['users/list.yaml → dataFile']],
  ['postgres with TLS', { type: 'postgres', postgres: { host: 'db', database: 'mqtt', credentialsSecretRef: { name: 'pg' }, tls } },
    ['pg/username → usernameFile', 'pg/password → passwordFile', 'ca/ca.crt → tls.caFile', 'ca/tls.crt → tls.certFile (optional)', 'ca/tls.key → tls.keyFile (optional)']],
  ['mysql without credentials, TLS off', { type: 'mysql', mysql: { host: 'db', database: 'mqtt', tls: { enabled: false, secretRef: { name: 'ca' } } } }, []],
  ['redis: the user name is optional', { type: 'redis', redis: { host: 'r', credentialsSecretRef: { name: 'rc' } } }, ['rc/username → usernameFile (optional)', 'rc/password → passwordFile']],
  ['http bearer token', { type: 'http', http: { url: 'https://a.example', bearerTokenSecretRef: { name: 'tok' } } }, ['tok/token → bearerTokenFile']],
  ['jwt HMAC secret', { type: 'jwt', jwt: { secretRef: { name: 'k', key: 'hmac' } } }, ['k/hmac → secretFile']],
  ['jwt public key', { type: 'jwt', jwt: { publicKeySecretRef: { name: 'k' } } }, ['k/public.pem → publicKeyFile']],
  ['jwt JWKS', { type: 'jwt', jwt: { jwksSecretRef: { name: 'k' } } }, ['k/jwks.json → jwksFile']],
  ['jwt JWKS URL: no Secret', { type: 'jwt', jwt: { jwksUrl: 'https://idp.example/jwks' } }, []],
  ['x509: no Secret', { type: 'x509' }, []],
];

describe('sourceSecretKeys', () => {
  it.each(cases)('%s', (_name, spec, expected) => {
    expect(sourceSecretKeys(source('s', spec)).map((k) => `${k.secret}/${k.key} → ${k.field}${k.optional ? ' (optional)' : ''}`)).toEqual(expected);
  });

  it('is what the broker config copies: every required key a file, optional ones only when present', () => {
    const pg = source('pg', { type: 'postgres', postgres: { host: 'db', database: 'mqtt', credentialsSecretRef: { name: 'pg' }, tls }, passwordHash: { algorithm: 'plain' } });
    const secrets = { pg: { username: b64('u'), password: b64('p') }, ca: { 'ca.crt': b64('CA') } };
    const data = renderBrokerConfig(ctx(md({ authentication: { chain: [{ name: 'pg' }] } }), { sources: [pg], secrets })).secret.data ?? {};
    expect(Object.keys(data).filter((k) => k !== 'config.yaml').sort()).toEqual(['source-pg-ca.crt', 'source-pg-password', 'source-pg-username']);
  });
});
