// The auth chain's semantics over real sources on this machine: a builtin users file, an x509
// source with real certificates, and an HTTP auth service on 127.0.0.1. Asserts decisions, what
// the access log says (and never says), metrics, the cache and reload.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { AuthSourceConfig } from '../../../broker/auth/config.ts';
import { hashPassword } from '../../../broker/auth/password.ts';
import { attempt, chainOf, clientOf, createTestPki, pub, sub, type TestPki } from './helpers.ts';

let dir: string;
let usersFile: string;
let server: Server;
let serverUrl: string;
const hits: string[] = [];
let pki: TestPki;

async function usersYaml(aclTopic = 'topic/${clientid}/status'): Promise<string> {
  return stringify({
    users: [
      { username: 'alice', password_hash: await hashPassword({ algorithm: 'sha256', saltPosition: 'prefix' }, 'alice-pw', 's4lt'), salt: 's4lt' },
      { username: 'root', password_hash: await hashPassword({ algorithm: 'sha256', saltPosition: 'prefix' }, 'root-pw', ''), is_superuser: true },
    ],
    acl: [
      { username: 'alice', permission: 'allow', action: 'publish', topic: aclTopic },
      { permission: 'allow', action: 'subscribe', topic: 'topic/+/status' },
    ],
  });
}

function readBody(req: IncomingMessage): Promise<Record<string, string>> {
  return new Promise((resolve) => {
    let s = '';
    req.on('data', (c: Buffer) => (s += c.toString()));
    req.on('end', () => resolve(s === '' ? {} : (JSON.parse(s) as Record<string, string>)));
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'auth-chain-'));
  usersFile = join(dir, 'users.yaml');
  await writeFile(usersFile, await usersYaml());
  pki = await createTestPki(dir);
  // The tenant's auth service: "http-user" is allowed with an ACL, "blocked" denied, others ignored.
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void readBody(req).then((body) => {
      hits.push(`${req.url} ${body.username ?? ''} ${body.topic ?? ''}`);
      res.setHeader('content-type', 'application/json');
      if (req.url === '/authn') {
        if (body.username === 'http-user' && body.password === 'http-pw') {
          res.end(JSON.stringify({ result: 'allow', is_superuser: false, acl: [{ permission: 'deny', action: 'publish', topic: 'secret/#' }] }));
        } else if (body.username === 'blocked') res.end(JSON.stringify({ result: 'deny' }));
        else res.end(JSON.stringify({ result: 'ignore' }));
      } else if (req.url === '/acl') {
        res.end(JSON.stringify({ result: body.topic?.startsWith('secret/') || body.topic?.startsWith('open/') ? 'allow' : 'ignore' }));
      } else {
        res.statusCode = 500;
        res.end('{}');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

const builtin = (): AuthSourceConfig => ({ type: 'builtin', dataFile: usersFile, passwordHash: { algorithm: 'sha256', saltPosition: 'prefix' } });
const httpSource = (url = serverUrl, extra: Partial<AuthSourceConfig> = {}): AuthSourceConfig =>
  ({ type: 'http', method: 'POST', bodyFormat: 'json', url: `${url}/authn`, aclUrl: `${url}/acl`, timeoutMs: 2000, ...extra }) as AuthSourceConfig;

describe('authentication', () => {
  it.each([
    ['builtin allows alice', { username: 'alice', password: 'alice-pw' }, 'allow', 'file'],
    ['builtin denies a wrong password and stops the chain', { username: 'alice', password: 'nope' }, 'deny', 'file'],
    ['http allows its own user after builtin ignored it', { username: 'http-user', password: 'http-pw' }, 'allow', 'svc'],
    ['http denies', { username: 'blocked', password: 'x' }, 'deny', 'svc'],
    ['all ignore → deny', { username: 'ghost', password: 'x' }, 'deny', undefined],
    ['no username → deny', {}, 'deny', undefined],
  ] as const)('%s', async (_n, creds, outcome, source) => {
    const { hook } = await chainOf({ file: builtin(), svc: httpSource() });
    const r = await hook.authenticate(attempt(creds));
    expect(r.outcome).toBe(outcome);
    expect(r.source).toBe(source);
    await hook.close();
  });

  it('all ignore with allowAnonymous → allow (not superuser)', async () => {
    const { hook } = await chainOf({ file: builtin() }, { allowAnonymous: true });
    expect(await hook.authenticate(attempt({ username: 'ghost' }))).toMatchObject({ outcome: 'allow', superuser: false, source: 'anonymous' });
    await hook.close();
  });

  it('an unreachable backend denies (unavailable) unless onBackendFailure: ignore', async () => {
    const dead = 'http://127.0.0.1:9'; // discard port: nothing listens
    const closed = await chainOf({ svc: httpSource(dead), file: builtin() });
    expect(await closed.hook.authenticate(attempt({ username: 'alice', password: 'alice-pw' }))).toMatchObject({ outcome: 'deny', reason: 'unavailable', source: 'svc' });
    await closed.hook.close();
    const open = await chainOf({ svc: httpSource(dead, { onBackendFailure: 'ignore' }), file: builtin() });
    expect(await open.hook.authenticate(attempt({ username: 'alice', password: 'alice-pw' }))).toMatchObject({ outcome: 'allow', source: 'file' });
    await open.hook.close();
  });

  it('a failing source is not called again until its backoff passes, then recovers', async () => {
    let now = 1_000_000;
    const { hook, registry } = await chainOf({ svc: httpSource(serverUrl.replace(/\/?$/, '/broken')) }, { now: () => now });
    // /broken/authn answers 500: a backend failure.
    const before = hits.length;
    const a = attempt({ username: 'http-user', password: 'http-pw' });
    expect(await hook.authenticate(a)).toMatchObject({ outcome: 'deny', reason: 'unavailable' });
    expect(await hook.authenticate(a)).toMatchObject({ outcome: 'deny', reason: 'unavailable' });
    expect(hits.length - before).toBe(1);
    now += 150;
    expect(await hook.authenticate(a)).toMatchObject({ outcome: 'deny', reason: 'unavailable' });
    expect(hits.length - before).toBe(2);
    const metrics = await registry.getSingleMetricAsString('enclave_auth_decisions_total');
    expect(metrics).toContain('source="svc",stage="authn",result="error"} 3');
    await hook.close();
  });

  it('x509: identity from the verified certificate, no password needed', async () => {
    const { hook } = await chainOf({ cert: { type: 'x509', identityFrom: 'cn', superusers: ['ops'] } }, { authz: [] });
    const dev = await pki.issue('dev-1', { organizations: ['Acme'] });
    const ops = await pki.issue('ops');
    // The certificate's CN is who the client is from now on: the broker authorizes that name.
    expect(await hook.authenticate(attempt({ certificate: dev.verified }))).toMatchObject({ outcome: 'allow', superuser: false, identity: 'dev-1' });
    expect(await hook.authenticate(attempt({ username: 'dev-1', certificate: dev.verified }))).toMatchObject({ outcome: 'allow', identity: 'dev-1' });
    expect(await hook.authenticate(attempt({ username: 'ops', certificate: dev.verified }))).toMatchObject({ outcome: 'deny', reason: 'not-authorized' });
    expect(await hook.authenticate(attempt({ certificate: ops.verified }))).toMatchObject({ outcome: 'allow', superuser: true });
    expect(await hook.authenticate(attempt({ username: 'dev-1', password: 'x' }))).toMatchObject({ outcome: 'deny', reason: 'not-authorized', source: undefined });
    await hook.close();
  });

  it('x509 by DNS SAN', async () => {
    const { hook } = await chainOf({ cert: { type: 'x509', identityFrom: 'dns' } }, { authz: [] });
    const c = await pki.issue('ignored', { altNames: ['DNS:a.devices.example', 'DNS:b.devices.example'] });
    expect(c.verified.dnsNames).toEqual(['a.devices.example', 'b.devices.example']);
    expect(await hook.authenticate(attempt({ username: 'b.devices.example', certificate: c.verified }))).toMatchObject({ outcome: 'allow', identity: 'b.devices.example' });
    expect(await hook.authenticate(attempt({ certificate: c.verified }))).toMatchObject({ outcome: 'allow', identity: 'a.devices.example' });
    expect(await hook.authenticate(attempt({ username: 'c.devices.example', certificate: c.verified }))).toMatchObject({ outcome: 'deny' });
    await hook.close();
  });
});

describe('authorization', () => {
  it('superuser skips authorization; ACL from authentication first; then sources; then noMatch', async () => {
    const { hook } = await chainOf({ file: builtin(), svc: httpSource() });
    const rootA = attempt({ username: 'root', password: 'root-pw' });
    const root = clientOf(rootA, await hook.authenticate(rootA));
    expect(root.superuser).toBe(true);
    expect(await hook.authorize(root, pub('$SYS/anything'))).toBe(true);

    const ha = attempt({ username: 'http-user', password: 'http-pw', clientId: 'h1' });
    const h = clientOf(ha, await hook.authenticate(ha));
    expect(await hook.authorize(h, pub('secret/x'))).toBe(false); // client ACL deny beats the service's allow
    expect(await hook.authorize(h, sub('secret/x'))).toBe(true); // client ACL says nothing → service allows
    expect(await hook.authorize(h, pub('open/x'))).toBe(true);
    expect(await hook.authorize(h, sub('topic/+/status'))).toBe(true); // builtin rule for everyone
    expect(await hook.authorize(h, pub('elsewhere'))).toBe(false); // noMatch deny
    await hook.close();
  });

  it('noMatch allow', async () => {
    const { hook } = await chainOf({ file: builtin() }, { noMatch: 'allow' });
    const a = attempt({ username: 'alice', password: 'alice-pw' });
    expect(await hook.authorize(clientOf(a, await hook.authenticate(a)), pub('elsewhere'))).toBe(true);
    await hook.close();
  });

  it('caches decisions per connection; a data file reload clears them', async () => {
    const { hook, registry } = await chainOf({ file: builtin(), svc: httpSource() });
    const ha = attempt({ username: 'http-user', password: 'http-pw', clientId: 'h2' });
    const h = clientOf(ha, await hook.authenticate(ha));
    const before = hits.length;
    expect(await hook.authorize(h, pub('open/1'))).toBe(true);
    expect(await hook.authorize(h, pub('open/1'))).toBe(true);
    expect(hits.length - before).toBe(1);
    expect(await registry.getSingleMetricAsString('enclave_auth_cache_hits_total')).toContain('enclave_auth_cache_hits_total 1');
    // The synchronous fast path answers cached decisions and says "unknown" otherwise.
    expect(hook.authorizeSync!(h, pub('open/1'))).toBe(true);
    expect(hook.authorizeSync!(h, pub('open/2'))).toBeUndefined();
    expect(hits.length - before).toBe(1);

    const a = attempt({ username: 'alice', password: 'alice-pw', clientId: 'c9' });
    const alice = clientOf(a, await hook.authenticate(a));
    expect(await hook.authorize(alice, pub('topic/c9/status'))).toBe(true);
    await writeFile(usersFile, await usersYaml('other/${clientid}'));
    await expect.poll(() => hook.authorize(alice, pub('topic/c9/status')), { timeout: 5000, interval: 50 }).toBe(false);
    expect(await hook.authorize(alice, pub('other/c9'))).toBe(true);
    await writeFile(usersFile, await usersYaml());
    await hook.close();
  });

  it('a data file reload tells onDataChanged listeners, after the cache is cleared', async () => {
    const { hook } = await chainOf({ file: builtin() });
    const a = attempt({ username: 'alice', password: 'alice-pw', clientId: 'c10' });
    const alice = clientOf(a, await hook.authenticate(a));
    expect(await hook.authorize(alice, pub('topic/c10/status'))).toBe(true); // now cached
    const seen: (boolean | undefined)[] = [];
    hook.onDataChanged!(() => seen.push(hook.authorizeSync!(alice, pub('topic/c10/status'))));
    await writeFile(`${usersFile}.new`, await usersYaml('other/${clientid}'));
    await rename(`${usersFile}.new`, usersFile); // one change, never a half-written file
    await expect.poll(() => seen.length, { timeout: 5000, interval: 20 }).toBe(1);
    expect(seen).toEqual([undefined]); // the listener never sees the decision made on the old data
    expect(await hook.authorize(alice, pub('topic/c10/status'))).toBe(false);
    await writeFile(usersFile, await usersYaml());
    await hook.close();
  });

  it('client ids with wildcards or separators never widen a template rule', async () => {
    const { hook } = await chainOf({ file: builtin() });
    for (const clientId of ['#', '+', 'a/b']) {
      const a = attempt({ username: 'alice', password: 'alice-pw', clientId });
      const c = clientOf(a, await hook.authenticate(a));
      expect(await hook.authorize(c, pub(`topic/${clientId}/status`))).toBe(false);
      expect(await hook.authorize(c, pub('topic/x/status'))).toBe(false);
    }
    await hook.close();
  });
});

describe('access log', () => {
  it('one line per decision with who/what/source/result, never a password', async () => {
    const { hook, logs } = await chainOf({ file: builtin(), svc: httpSource() });
    const a = attempt({ username: 'alice', password: 'alice-pw', clientId: 'log-1', peerHost: '10.9.8.7' });
    const c = clientOf(a, await hook.authenticate(a));
    await hook.authenticate(attempt({ username: 'alice', password: 'WRONG-SECRET' }));
    await hook.authenticate(attempt({ username: 'http-user', password: 'http-pw' }));
    await hook.authorize(c, pub('topic/log-1/status'));
    const decisions = logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'auth decision');
    expect(decisions).toHaveLength(4);
    expect(decisions[0]).toMatchObject({ clientId: 'log-1', username: 'alice', peer: '10.9.8.7', action: 'connect', source: 'file', result: 'allow' });
    expect(decisions[1]).toMatchObject({ action: 'connect', source: 'file', result: 'deny', reason: 'bad-credentials' });
    expect(decisions[3]).toMatchObject({ action: 'publish', topic: 'topic/log-1/status', source: 'file', result: 'allow' });
    const all = logs.join('\n');
    for (const secret of ['alice-pw', 'WRONG-SECRET', 'http-pw']) expect(all).not.toContain(secret);
    await hook.close();
  });
});
