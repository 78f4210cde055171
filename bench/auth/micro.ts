// In-process micro-benchmark of the auth chain alone (no sockets): authenticate() and authorize()
// calls per second with the builtin source, to separate the chain's cost from the broker's.
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createAuthChain } from '../../broker/auth/chain.ts';
import { embeddedDefaultConfig } from '../../broker/config.ts';
import { builtinFixture } from '../../test/integration/auth/fixtures.ts';

const f = await builtinFixture();
const c = embeddedDefaultConfig();
c.sources = f.sources;
c.authentication = { chain: f.authn, allowAnonymous: false };
c.authorization = { chain: f.authz, noMatch: 'deny', denyAction: 'ignore', cache: { enabled: true, maxSize: 32, ttlSeconds: 60 } };
c.logging = { level: 'warn', accessLog: false };
const hook = await createAuthChain(c, { logger: pino({ level: 'warn' }), metrics: { registry: new Registry() } });
const good = f.good('alice', 'c1');
const attempt = { clientId: 'c1', username: good.username, password: Buffer.from(good.password as string), peerHost: '127.0.0.1', listener: 'l', protocolVersion: 4 as const, certificate: undefined };
const time = async (what: string, n: number, fn: () => Promise<unknown>): Promise<void> => {
  for (let i = 0; i < 1000; i++) await fn();
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  console.log(`${what}: ${Math.round(n / s).toLocaleString('en-US')}/s (${((s / n) * 1e6).toFixed(2)} µs each)`);
};
await time('authenticate (builtin, sha256)', 50_000, () => hook.authenticate(attempt));
const r = await hook.authenticate(attempt);
if (r.outcome !== 'allow') throw new Error('not allowed');
const client = { attempt: { ...attempt, password: undefined }, superuser: false, acl: undefined };
await time('authorize, cache hit', 500_000, () => hook.authorize(client, { action: 'publish', topic: 'topic/c1/status', qos: 1, retain: false }));
await hook.close();
await f.close();
