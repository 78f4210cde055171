// What the chain does when a source's backend fails, against an HTTP auth service on 127.0.0.1 that
// the tests switch between failing, hanging and answering: decisions taken around a failed source
// are not cached; after the backoff exactly one probe reaches the backend while other calls fail
// fast (half-open), and its success closes the circuit; calls in flight per source are capped (the
// rest wait).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { AuthSourceConfig } from '../../../broker/auth/config.ts';
import { minMaxInFlight } from '../../../broker/auth/circuit.ts';
import { sleep } from '../../support/wait.ts';
import { attempt, chainOf, clientOf, pub } from './helpers.ts';

let dir: string;
let usersFile: string;
let server: Server;
let base: string;
/** How /gate answers: 500, hold the response until the test releases it, or allow. */
let gate: 'fail' | 'hold' | 'ok' = 'ok';
let gateHits = 0;
const held: ServerResponse[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'auth-failure-'));
  usersFile = join(dir, 'users.yaml');
  await writeFile(usersFile, stringify({
    users: [{ username: 'alice', password_hash: 'alice-pw' }],
    acl: [{ username: 'alice', permission: 'allow', action: 'publish', topic: 'topic/${clientid}/status' }],
  }));
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/gate/authn') {
        gateHits++;
        if (gate === 'hold') return void held.push(res);
        res.statusCode = gate === 'fail' ? 500 : 200;
        res.end(gate === 'fail' ? '' : '{"result":"allow"}');
        return;
      }
      res.statusCode = 500; // /down/…: a broken auth service
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

const builtin = (): AuthSourceConfig => ({ type: 'builtin', dataFile: usersFile, passwordHash: { algorithm: 'plain' } });
const http = (path: string, extra: Partial<AuthSourceConfig> = {}): AuthSourceConfig =>
  ({ type: 'http', method: 'POST', url: `${base}${path}/authn`, aclUrl: `${base}${path}/acl`, timeoutMs: 1000, ...extra }) as AuthSourceConfig;

function release(allow: boolean): void {
  for (const res of held.splice(0)) res.end(allow ? '{"result":"allow"}' : '{"result":"deny"}');
}

async function heldCount(n: number): Promise<void> {
  await expect.poll(() => held.length, { timeout: 5000, interval: 10 }).toBe(n);
}

describe('the decision cache keeps only clean decisions', () => {
  it('an allow and a noMatch deny reached after a failed source (onBackendFailure: ignore) are not cached', async () => {
    const { hook, logs } = await chainOf({ svc: http('/down', { onBackendFailure: 'ignore' }), file: builtin() }, { authn: ['file'], authz: ['svc', 'file'] });
    const a = attempt({ username: 'alice', password: 'alice-pw', clientId: 'c1' });
    const alice = clientOf(a, await hook.authenticate(a));
    expect(await hook.authorize(alice, pub('topic/c1/status'))).toBe(true);
    expect(hook.authorizeSync!(alice, pub('topic/c1/status'))).toBeUndefined();
    expect(await hook.authorize(alice, pub('elsewhere'))).toBe(false);
    expect(hook.authorizeSync!(alice, pub('elsewhere'))).toBeUndefined();
    const lines = logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'auth decision' && l.action === 'publish');
    expect(lines.map((l) => [l.topic, l.source, l.result, l.failed])).toEqual([
      ['topic/c1/status', 'file', 'allow', ['svc']],
      ['elsewhere', 'no-match', 'deny', ['svc']],
    ]);
    await hook.close();
  });

  it('the same decisions with every source answering are cached', async () => {
    const { hook } = await chainOf({ file: builtin() }, { authn: ['file'], authz: ['file'] });
    const a = attempt({ username: 'alice', password: 'alice-pw', clientId: 'c1' });
    const alice = clientOf(a, await hook.authenticate(a));
    expect(await hook.authorize(alice, pub('topic/c1/status'))).toBe(true);
    expect(hook.authorizeSync!(alice, pub('topic/c1/status'))).toBe(true);
    expect(await hook.authorize(alice, pub('elsewhere'))).toBe(false);
    expect(hook.authorizeSync!(alice, pub('elsewhere'))).toBe(false);
    await hook.close();
  });
});

describe('a failed source is a circuit breaker', () => {
  it('after the backoff one probe reaches the backend, the others fail fast; a failed probe doubles the backoff; a good one closes', async () => {
    let now = 1_000_000;
    const { hook } = await chainOf({ svc: http('/gate') }, { authz: [], now: () => now });
    const a = attempt({ username: 'u', password: 'p' });
    gate = 'fail';
    gateHits = 0;
    expect(await hook.authenticate(a)).toMatchObject({ outcome: 'deny', reason: 'unavailable' });
    expect(gateHits).toBe(1);

    now += 150; // past the first backoff (100 ms): half-open
    gate = 'hold';
    const probe = hook.authenticate(a);
    await heldCount(1);
    for (let i = 0; i < 3; i++) expect(await hook.authenticate(a)).toMatchObject({ outcome: 'deny', reason: 'unavailable' });
    now += 60_000; // however long the probe takes, it stays the only call through
    expect(await hook.authenticate(a)).toMatchObject({ outcome: 'deny', reason: 'unavailable' });
    expect(gateHits).toBe(2);
    for (const res of held.splice(0)) {
      res.statusCode = 500;
      res.end();
    }
    expect(await probe).toMatchObject({ outcome: 'deny', reason: 'unavailable' });

    gate = 'ok';
    now += 150; // the backoff doubled to 200 ms: still open
    expect(await hook.authenticate(a)).toMatchObject({ outcome: 'deny', reason: 'unavailable' });
    expect(gateHits).toBe(2);
    now += 100;
    expect(await hook.authenticate(a)).toMatchObject({ outcome: 'allow', source: 'svc' });
    // Closed: concurrent calls all reach the backend again.
    const all = await Promise.all([hook.authenticate(a), hook.authenticate(a), hook.authenticate(a)]);
    expect(all.map((r) => r.outcome)).toEqual(['allow', 'allow', 'allow']);
    expect(gateHits).toBe(6);
    await hook.close();
  });

  it(`at most ${minMaxInFlight} calls are on a hanging backend; the rest wait their turn, none is refused for it`, async () => {
    const { hook } = await chainOf({ svc: http('/gate', { timeoutMs: 20_000 }) }, { authz: [] });
    gate = 'hold';
    gateHits = 0;
    const settled: string[] = [];
    const calls = Array.from({ length: minMaxInFlight + 5 }, (_, i) =>
      hook.authenticate(attempt({ username: `u${i}`, password: 'p', clientId: `c${i}` })).then((r) => {
        settled.push(r.outcome === 'deny' ? `deny:${r.reason}` : r.outcome);
        return r;
      }));
    await heldCount(minMaxInFlight);
    await sleep(100);
    expect(held).toHaveLength(minMaxInFlight); // the cap holds
    expect(settled).toEqual([]); // and the 5 beyond it wait rather than fail
    gate = 'ok';
    release(true);
    const results = await Promise.all(calls);
    expect(results.filter((r) => r.outcome === 'allow')).toHaveLength(minMaxInFlight + 5);
    expect(gateHits).toBe(minMaxInFlight + 5);
    await hook.close();
  });
});
