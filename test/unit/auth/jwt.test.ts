// The jwt source with real tokens signed by jose: HMAC secret file, RSA public key file, JWKS file
// and a JWKS URL served on 127.0.0.1 (fetched once, then cached); exp/nbf/iss/aud, verifyClaims
// templates, the `acl` claim in both EMQX formats, and expiresAt for disconnect-at-expiry.
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import type { JwtSourceConfig } from '../../../broker/auth/config.ts';
import { attempt, chainOf, clientOf, pub, sub } from './helpers.ts';

let dir: string;
let rsa: { publicKey: CryptoKey; privateKey: CryptoKey };
let ec: { publicKey: CryptoKey; privateKey: CryptoKey };
let jwksServer: Server;
let jwksUrl: string;
let jwksFetches = 0;
const secret = 'a-long-hmac-secret-for-the-tests-0123456789';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'auth-jwt-'));
  rsa = await generateKeyPair('RS256');
  ec = await generateKeyPair('ES256');
  await writeFile(join(dir, 'secret'), `${secret}\n`);
  await writeFile(join(dir, 'rsa.pem'), await exportSPKI(rsa.publicKey));
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' }] });
  await writeFile(join(dir, 'jwks.json'), jwks);
  jwksServer = createServer((req, res) => {
    // An identity provider having a bad day: an error status, an HTML page, JSON that is no key set.
    if (req.url === '/500') return void res.writeHead(500).end('{"error":"down"}');
    if (req.url === '/404') return void res.writeHead(404).end();
    if (req.url === '/html') return void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>maintenance</html>');
    if (req.url === '/not-a-set') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":"none"}');
    jwksFetches++;
    res.setHeader('content-type', 'application/json');
    res.end(jwks);
  });
  await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
});
afterAll(async () => {
  await new Promise((r) => jwksServer.close(r));
  await rm(dir, { recursive: true, force: true });
});

const hmac = (claims: JWTPayload, opts: { exp?: string | number; nbf?: string | number; key?: string } = {}): Promise<string> => {
  const j = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (opts.exp !== undefined) j.setExpirationTime(opts.exp);
  if (opts.nbf !== undefined) j.setNotBefore(opts.nbf);
  return j.sign(Buffer.from(opts.key ?? secret));
};

const hmacSource = (extra: Partial<JwtSourceConfig> = {}): JwtSourceConfig => ({ type: 'jwt', from: 'password', secretFile: join(dir, 'secret'), ...extra });

describe('jwt: HMAC secret', () => {
  it.each<[string, () => Promise<string>, string]>([
    ['valid', async () => hmac({ sub: 'u' }, { exp: '5m' }), 'allow'],
    ['no exp is accepted', async () => hmac({}), 'allow'],
    ['expired', async () => hmac({}, { exp: Math.floor(Date.now() / 1000) - 60 }), 'deny'],
    ['not yet valid', async () => hmac({}, { nbf: '10m' }), 'deny'],
    ['other key → ignore → deny by the chain', async () => hmac({}, { key: 'another-key-another-key-another-key!!' }), 'deny'],
    ['not a JWT', async () => 'plain-password', 'deny'],
    ['alg none', async () => `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.`, 'deny'],
  ])('%s', async (_n, make, outcome) => {
    const { hook } = await chainOf({ jwt: hmacSource() }, { authz: [] });
    expect((await hook.authenticate(attempt({ username: 'u', password: await make() }))).outcome).toBe(outcome);
    await hook.close();
  });

  it('a bad signature is ignored so a later source can still authenticate the password', async () => {
    const { hook } = await chainOf({ jwt: hmacSource(), anon: { type: 'x509', identityFrom: 'cn' } }, { authz: [], allowAnonymous: true });
    const r = await hook.authenticate(attempt({ password: await hmac({}, { key: 'another-key-another-key-another-key!!' }) }));
    expect(r).toMatchObject({ outcome: 'allow', source: 'anonymous' });
    await hook.close();
  });

  it('issuer, audience and verifyClaims templates', async () => {
    const { hook } = await chainOf({ jwt: hmacSource({ issuer: 'idp', audience: 'mqtt', verifyClaims: { clientid: '${clientid}', username: '${username}' } }) }, { authz: [] });
    const good = await hmac({ iss: 'idp', aud: 'mqtt', clientid: 'c1', username: 'u' });
    expect((await hook.authenticate(attempt({ username: 'u', clientId: 'c1', password: good }))).outcome).toBe('allow');
    expect(await hook.authenticate(attempt({ username: 'u', clientId: 'c2', password: good }))).toMatchObject({ outcome: 'deny', reason: 'bad-credentials' });
    expect(await hook.authenticate(attempt({ username: 'v', clientId: 'c1', password: good }))).toMatchObject({ outcome: 'deny', reason: 'bad-credentials' });
    const wrongIss = await hmac({ iss: 'other', aud: 'mqtt', clientid: 'c1', username: 'u' });
    expect((await hook.authenticate(attempt({ username: 'u', clientId: 'c1', password: wrongIss }))).outcome).toBe('deny');
    const wrongAud = await hmac({ iss: 'idp', aud: 'web', clientid: 'c1', username: 'u' });
    expect((await hook.authenticate(attempt({ username: 'u', clientId: 'c1', password: wrongAud }))).outcome).toBe('deny');
    await hook.close();
  });

  it('tokens never reach the log, accepted or not', async () => {
    const { hook, logs } = await chainOf({ jwt: hmacSource({ verifyClaims: { clientid: '${clientid}' } }) }, { authz: [] });
    const good = await hmac({ clientid: 'c1' });
    const expired = await hmac({ clientid: 'c1' }, { exp: Math.floor(Date.now() / 1000) - 60 });
    await hook.authenticate(attempt({ clientId: 'c1', password: good }));
    await hook.authenticate(attempt({ clientId: 'c2', password: good }));
    await hook.authenticate(attempt({ clientId: 'c1', password: expired }));
    expect(logs.length).toBeGreaterThanOrEqual(3);
    for (const t of [good, expired]) {
      for (const part of t.split('.')) expect(logs.join('\n')).not.toContain(part);
    }
    await hook.close();
  });

  it('token in the username field (and then not logged as the username)', async () => {
    const { hook, logs } = await chainOf({ jwt: hmacSource({ from: 'username' }) }, { authz: [] });
    const token = await hmac({});
    expect((await hook.authenticate(attempt({ username: token }))).outcome).toBe('allow');
    expect(logs.join('')).toContain('"username":"<jwt>"');
    expect(logs.join('')).not.toContain(token.split('.')[1]);
    await hook.close();
  });

  it('acl claim (list format) travels with the client; exp becomes expiresAt; is_superuser honoured', async () => {
    const { hook } = await chainOf({ jwt: hmacSource() }, { authz: [] });
    const exp = Math.floor(Date.now() / 1000) + 120;
    const a = attempt({ clientId: 'c1', password: await hmac({ acl: [{ permission: 'allow', action: 'publish', topic: 't/${clientid}' }] }, { exp }) });
    const r = await hook.authenticate(a);
    expect(r).toMatchObject({ outcome: 'allow', superuser: false, expiresAt: new Date(exp * 1000) });
    const c = clientOf(a, r);
    expect(await hook.authorize(c, pub('t/c1'))).toBe(true);
    expect(await hook.authorize(c, pub('t/c2'))).toBe(false);
    expect(await hook.authenticate(attempt({ password: await hmac({ is_superuser: true }) }))).toMatchObject({ outcome: 'allow', superuser: true });
    await hook.close();
  });

  it('acl claim (old pub/sub map) ends in deny even when noMatch is allow', async () => {
    const { hook } = await chainOf({ jwt: hmacSource() }, { authz: [], noMatch: 'allow' });
    const a = attempt({ password: await hmac({ acl: { pub: ['p/#'], sub: ['s/+'] } }) });
    const c = clientOf(a, await hook.authenticate(a));
    expect(await hook.authorize(c, pub('p/1'))).toBe(true);
    expect(await hook.authorize(c, sub('s/1'))).toBe(true);
    expect(await hook.authorize(c, sub('p/1'))).toBe(false);
    expect(await hook.authorize(c, pub('$SYS/x'))).toBe(false);
    await hook.close();
  });

  it('an invalid acl claim denies the CONNECT', async () => {
    const { hook } = await chainOf({ jwt: hmacSource() }, { authz: [] });
    expect(await hook.authenticate(attempt({ password: await hmac({ acl: 'everything' }) }))).toMatchObject({ outcome: 'deny', reason: 'bad-credentials' });
    await hook.close();
  });
});

describe('jwt: public keys', () => {
  it('RSA public key file', async () => {
    const { hook } = await chainOf({ jwt: { type: 'jwt', from: 'password', publicKeyFile: join(dir, 'rsa.pem') } }, { authz: [] });
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('5m').sign(rsa.privateKey);
    expect((await hook.authenticate(attempt({ password: token }))).outcome).toBe('allow');
    // An HMAC token "signed" with the public key text must not pass (algorithm confusion).
    const confused = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(await exportSPKI(rsa.publicKey)));
    expect((await hook.authenticate(attempt({ password: confused }))).outcome).toBe('deny');
    await hook.close();
  });

  it('JWKS file and JWKS URL (fetched once, then cached)', async () => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'ec-1' }).setExpirationTime('5m').sign(ec.privateKey);
    const file = await chainOf({ jwt: { type: 'jwt', from: 'password', jwksFile: join(dir, 'jwks.json') } }, { authz: [] });
    expect((await file.hook.authenticate(attempt({ password: token }))).outcome).toBe('allow');
    await file.hook.close();
    const url = await chainOf({ jwt: { type: 'jwt', from: 'password', jwksUrl, jwksRefreshSeconds: 300 } }, { authz: [] });
    for (let i = 0; i < 5; i++) expect((await url.hook.authenticate(attempt({ password: token }))).outcome).toBe('allow');
    expect(jwksFetches).toBe(1);
    const unknownKid = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'nope' }).sign(ec.privateKey);
    expect((await url.hook.authenticate(attempt({ password: unknownKid }))).outcome).toBe('deny');
    await url.hook.close();
  });

  it.each(['/500', '/404', '/html', '/not-a-set'])('JWKS URL answering %s is a backend failure: deny (unavailable), or skipped with onBackendFailure: ignore', async (path) => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'ec-1' }).sign(ec.privateKey);
    const url = new URL(path, jwksUrl).href;
    const closed = await chainOf({ jwt: { type: 'jwt', from: 'password', jwksUrl: url, timeoutMs: 1000 } }, { authz: [] });
    expect(await closed.hook.authenticate(attempt({ password: token }))).toMatchObject({ outcome: 'deny', reason: 'unavailable', source: 'jwt' });
    await closed.hook.close();
    const open = await chainOf({ jwt: { type: 'jwt', from: 'password', jwksUrl: url, timeoutMs: 1000, onBackendFailure: 'ignore' } }, { authz: [], allowAnonymous: true });
    expect(await open.hook.authenticate(attempt({ password: token }))).toMatchObject({ outcome: 'allow', source: 'anonymous' });
    const lines = open.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'auth decision');
    expect(lines[0]).toMatchObject({ source: 'jwt', result: 'ignore', reason: 'backend-failure' });
    await open.hook.close();
  });

  it('JWKS URL unreachable is a backend failure (unavailable)', async () => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'ec-1' }).sign(ec.privateKey);
    const { hook } = await chainOf({ jwt: { type: 'jwt', from: 'password', jwksUrl: 'http://127.0.0.1:9/jwks.json', timeoutMs: 1000 } }, { authz: [] });
    expect(await hook.authenticate(attempt({ password: token }))).toMatchObject({ outcome: 'deny', reason: 'unavailable' });
    await hook.close();
  });
});
