// The http source against auth services on 127.0.0.1: GET with query parameters, JSON and form
// bodies, 204 = allow, bearer token from a file (rotated), TLS with our own CA, and the failure
// modes (5xx, timeout, huge body) that must deny as "unavailable".
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpSourceConfig } from '../../../broker/auth/config.ts';
import { createCa, createLeaf } from '../../support/pki.ts';
import { attempt, chainOf } from './helpers.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}
let dir: string;
const seen: Seen[] = [];
let plain: Server;
let tls: Server;
let plainUrl: string;
let tlsUrl: string;

function handler(req: IncomingMessage, res: ServerResponse): void {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
    const path = (req.url ?? '').split('?')[0];
    if (path === '/204') {
      res.statusCode = 204;
      res.end();
    } else if (path === '/500') {
      res.statusCode = 500;
      res.end();
    } else if (path === '/slow') {
      setTimeout(() => res.end('{"result":"allow"}'), 3000).unref();
    } else if (path === '/huge') {
      res.end(`{"result":"allow","pad":"${'x'.repeat(200_000)}"}`);
    } else if (path === '/bearer') {
      res.end(JSON.stringify({ result: req.headers.authorization === 'Bearer t2' ? 'allow' : 'deny' }));
    } else {
      res.setHeader('content-type', 'application/json');
      res.end('{"result":"allow","is_superuser":"true"}');
    }
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'auth-http-'));
  const ca = await createCa(dir, 'ca', 'Auth HTTP Test CA');
  const leaf = await createLeaf(dir, 'server', ca, { commonName: 'auth.local', altNames: ['IP:127.0.0.1', 'DNS:auth.local'], usage: 'serverAuth' });
  plain = createHttpServer(handler);
  tls = createHttpsServer({ cert: await readFile(leaf.cert), key: await readFile(leaf.key) }, handler);
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
  plainUrl = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
  tlsUrl = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`;
  await writeFile(join(dir, 'ca.pem'), await readFile(ca.cert));
  await writeFile(join(dir, 'token'), 't1\n');
});
afterAll(async () => {
  plain.closeAllConnections();
  tls.closeAllConnections();
  await new Promise((r) => plain.close(r));
  await new Promise((r) => tls.close(r));
  await rm(dir, { recursive: true, force: true });
});

const src = (url: string, extra: Partial<HttpSourceConfig> = {}): HttpSourceConfig => ({ type: 'http', method: 'POST', url, timeoutMs: 1000, ...extra });
const login = attempt({ username: 'u&x=1', password: 'p w', clientId: 'c/1', peerHost: '10.0.0.1' });

describe('http source', () => {
  it('POST JSON: each value one field, is_superuser "true" honoured', async () => {
    const { hook } = await chainOf({ s: src(`${plainUrl}/ok`) }, { authz: [] });
    expect(await hook.authenticate(login)).toMatchObject({ outcome: 'allow', superuser: true });
    const last = seen.at(-1)!;
    expect(last.method).toBe('POST');
    expect(JSON.parse(last.body)).toEqual({ username: 'u&x=1', password: 'p w', clientid: 'c/1', peerhost: '10.0.0.1' });
    await hook.close();
  });
  it('POST form and GET query parameters are encoded, not spliced', async () => {
    const form = await chainOf({ s: src(`${plainUrl}/ok`, { bodyFormat: 'form', body: { u: '${username}', c: '%c' } }) }, { authz: [] });
    await form.hook.authenticate(login);
    expect(Object.fromEntries(new URLSearchParams(seen.at(-1)!.body))).toEqual({ u: 'u&x=1', c: 'c/1' });
    await form.hook.close();
    const get = await chainOf({ s: src(`${plainUrl}/ok/\${clientid}`, { method: 'GET', body: { u: '${username}' } }) }, { authz: [] });
    await get.hook.authenticate(login);
    const url = new URL(seen.at(-1)!.url, plainUrl);
    expect(url.pathname).toBe('/ok/c%2F1');
    expect(url.searchParams.get('u')).toBe('u&x=1');
    await get.hook.close();
  });
  it('GET with ${password} in the query is refused at start, naming the field; nothing is sent', async () => {
    const before = seen.length;
    await expect(chainOf({ s: src(`${plainUrl}/ok`, { method: 'GET', body: { u: '${username}', pw: '${password}' } }) }, { authz: [] }))
      .rejects.toThrow(/sources\.s\.body\.pw: \$\{password\} \(or %P\) is not allowed with method GET/);
    await expect(chainOf({ s: src(`${plainUrl}/ok?pw=%P`, { method: 'GET', body: {} }) }, { authz: [] })).rejects.toThrow(/sources\.s\.url: /);
    expect(seen.length).toBe(before);
  });
  it('204 = allow, not superuser', async () => {
    const { hook } = await chainOf({ s: src(`${plainUrl}/204`) }, { authz: [] });
    expect(await hook.authenticate(login)).toMatchObject({ outcome: 'allow', superuser: false });
    await hook.close();
  });
  it.each(['/500', '/slow', '/huge'])('%s → deny (unavailable)', async (path) => {
    const { hook } = await chainOf({ s: src(`${plainUrl}${path}`) }, { authz: [] });
    expect(await hook.authenticate(login)).toMatchObject({ outcome: 'deny', reason: 'unavailable' });
    await hook.close();
  });
  it('bearer token read from a file, and re-read when it changes', async () => {
    const { hook } = await chainOf({ s: src(`${plainUrl}/bearer`, { bearerTokenFile: join(dir, 'token') }) }, { authz: [] });
    expect((await hook.authenticate(login)).outcome).toBe('deny');
    await writeFile(join(dir, 'token'), 't2\n');
    await expect.poll(async () => (await hook.authenticate(login)).outcome, { timeout: 5000, interval: 50 }).toBe('allow');
    await hook.close();
  });
  it('TLS: verified with the configured CA; unknown CA refused', async () => {
    const ok = await chainOf({ s: src(`${tlsUrl}/ok`, { tls: { enabled: true, caFile: join(dir, 'ca.pem') } }) }, { authz: [] });
    expect((await ok.hook.authenticate(login)).outcome).toBe('allow');
    await ok.hook.close();
    const bad = await chainOf({ s: src(`${tlsUrl}/ok`, { tls: { enabled: true } }) }, { authz: [] });
    expect(await bad.hook.authenticate(login)).toMatchObject({ outcome: 'deny', reason: 'unavailable' });
    await bad.hook.close();
  });
});
