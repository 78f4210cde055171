// `npm run bench:auth [-- --quick] [-- --rounds N]`: what authentication and authorization cost the broker.
// Starts PostgreSQL, MariaDB and Redis (test/support/databases.ts), loads the conformance data set
// into each (test/integration/auth/fixtures.ts), then for each backend runs the broker as its own
// process and measures: CONNECT rate and latency with that backend vs no auth, and QoS 1 publish
// throughput with ACL decisions answered by the per-connection cache vs allow-all. One run, one
// table, ratios against the no-auth / allow-all baseline.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { createAuthChain } from '../../broker/auth/chain.ts';
import { embeddedDefaultConfig, type BrokerConfig } from '../../broker/config.ts';
import { startMariadb, startPostgres, startRedis, type RunningDatabase } from '../../test/support/databases.ts';
import { builtinFixture, httpFixture, jwtFixture, redisFixture, sqlFixture, type ConformanceFixture, type UserName } from '../../test/integration/auth/fixtures.ts';
import { connectPacket, connectStorm, publishStream, type ConnectStats, type Credential } from './load.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const quick = process.argv.includes('--quick');
const roundsArg = process.argv.indexOf('--rounds');
const rounds = roundsArg >= 0 ? Number(process.argv[roundsArg + 1]) : quick ? 1 : 3;
const connects = quick ? 1000 : 4000;
const concurrency = 32;
const publishes = quick ? 20_000 : 100_000;

function configFor(f: ConformanceFixture | undefined, cache = true): BrokerConfig {
  const c = embeddedDefaultConfig('127.0.0.1', 0);
  c.name = 'bench-auth';
  c.listeners[0]!.allowAnonymous = f === undefined;
  c.admin = { host: '127.0.0.1', port: 0 };
  c.logging = { level: 'warn', accessLog: false };
  if (f) {
    c.sources = f.sources;
    c.authentication = { chain: f.authn, allowAnonymous: false };
    c.authorization = { chain: f.authz, noMatch: 'deny', denyAction: 'ignore', cache: { enabled: cache, maxSize: 32, ttlSeconds: 60 } };
  } else {
    c.authentication = { chain: [], allowAnonymous: true };
    c.authorization = { chain: [], noMatch: 'allow', denyAction: 'ignore', cache: { enabled: true, maxSize: 32, ttlSeconds: 60 } };
  }
  return c;
}

async function startBroker(config: BrokerConfig, dir: string): Promise<{ port: number; child: ChildProcess }> {
  const file = join(dir, `broker-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, JSON.stringify(config));
  const child = spawn(join(root, 'node_modules', '.bin', 'node'), [join(here, 'broker-proc.ts'), file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      const m = /^READY (\d+)$/.exec(line);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`broker exited with ${code} before READY`)));
  });
  return { port, child };
}

async function stopBroker(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '—');

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'enclave-bench-auth-'));
  const dbs: RunningDatabase[] = [];
  const fixtures: ConformanceFixture[] = [];
  const children: ChildProcess[] = [];
  try {
    console.log('starting PostgreSQL, MariaDB, Redis …');
    const [pgDb, myDb, redisDb] = await Promise.all([startPostgres(dir), startMariadb(dir), startRedis(dir)]);
    dbs.push(pgDb, myDb, redisDb);
    const clientIds = Array.from({ length: connects }, (_, i) => `bench-${i}`);
    const backends: [string, () => Promise<ConformanceFixture | undefined>][] = [
      ['none (anonymous)', async () => undefined],
      ['builtin', builtinFixture],
      ['postgres', () => sqlFixture('postgres', pgDb, 'bench_auth', { poolSize: 8 })],
      ['mysql', () => sqlFixture('mysql', myDb, 'bench_auth', { poolSize: 8 })],
      ['redis', () => redisFixture(redisDb, 3)],
      ['http (service in the load process)', httpFixture],
      ['jwt (HS256)', jwtFixture],
    ];
    // Rounds alternate the backends so drift (other load on the machine) hits all alike; medians.
    const prepared: { name: string; f: ConformanceFixture | undefined; packets: Buffer[] }[] = [];
    const byName = new Map<string, ConformanceFixture>();
    for (const [name, make] of backends) {
      const f = await make();
      if (f) {
        fixtures.push(f);
        byName.set(name, f);
        await f.prepare?.([...clientIds.map((c) => ['alice', c] as [UserName, string]), ['alice', 'publisher']]);
      }
      const packets = clientIds.map((c) => connectPacket(f ? (f.good('alice', c) as Credential) : { clientId: c }));
      prepared.push({ name, f, packets });
    }
    const samples = new Map<string, ConnectStats[]>();
    for (let round = 0; round < rounds; round++) {
      for (const { name, f, packets } of prepared) {
        const { port, child } = await startBroker(configFor(f), dir);
        children.push(child);
        await connectStorm(port, packets.slice(0, 200), concurrency); // warm-up: JIT, pools
        const stats = await connectStorm(port, packets, concurrency);
        samples.set(name, [...(samples.get(name) ?? []), stats]);
        console.log(`  round ${round + 1} ${name}: ${fmt(stats.perSecond)} CONNECT/s, p99 ${fmt(stats.p99Ms, 1)} ms, refused ${stats.refused}`);
        await stopBroker(child);
      }
    }
    const median = (xs: number[]): number => {
      const s = [...xs].sort((a, b) => a - b);
      return s[Math.floor(s.length / 2)] ?? NaN;
    };
    const connectRows: [string, ConnectStats][] = prepared.map(({ name }) => {
      const ss = samples.get(name)!;
      return [name, { ok: median(ss.map((x) => x.ok)), refused: Math.max(...ss.map((x) => x.refused)), perSecond: median(ss.map((x) => x.perSecond)), p50Ms: median(ss.map((x) => x.p50Ms)), p99Ms: median(ss.map((x) => x.p99Ms)) }];
    });

    // The chain alone, in this process (no sockets, no broker): authenticate() calls per second and
    // latency per backend, 32 in flight, to separate the sources' cost from the broker's.
    const chainRows: [string, { perSecond: number; p50Ms: number; p99Ms: number; denied: number }][] = [];
    for (const { name, f } of prepared) {
      if (!f) continue;
      const c = configFor(f);
      const hook = await createAuthChain(c, { logger: pino({ level: 'warn' }) });
      const attempts = clientIds.map((id) => {
        const g = f.good('alice', id);
        return {
          clientId: id, username: g.username, password: typeof g.password === 'string' ? Buffer.from(g.password) : g.password,
          peerHost: '127.0.0.1', listener: 'default', protocolVersion: 4 as const, certificate: g.certificate,
        };
      });
      const lat: number[] = [];
      let denied = 0;
      let next = 0;
      const started = process.hrtime.bigint();
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < attempts.length) {
          const a = attempts[next++]!;
          const t = process.hrtime.bigint();
          const r = await hook.authenticate(a);
          lat.push(Number(process.hrtime.bigint() - t) / 1e6);
          if (r.outcome !== 'allow') denied++;
        }
      }));
      const secs = Number(process.hrtime.bigint() - started) / 1e9;
      lat.sort((x, y) => x - y);
      chainRows.push([name, { perSecond: attempts.length / secs, p50Ms: lat[Math.floor(lat.length * 0.5)]!, p99Ms: lat[Math.floor(lat.length * 0.99)]!, denied }]);
      await hook.close();
    }

    // Publish throughput: allow-all vs ACL decisions from the cache (first publish asks the source).
    const pubRows: [string, number][] = [];
    const topic = 'topic/publisher/status';
    const pubModes: [string, ConformanceFixture | undefined, boolean][] = [
      ['allow-all (no authorization)', undefined, true],
      ['postgres ACL, cache hits', byName.get('postgres'), true],
      ['builtin ACL, cache hits', byName.get('builtin'), true],
      ['builtin ACL, cache off (rule list per message)', byName.get('builtin'), false],
    ];
    const pubSamples = new Map<string, number[]>();
    for (let round = 0; round < rounds; round++) {
      for (const [name, f, cache] of pubModes) {
        const { port, child } = await startBroker(configFor(f, cache), dir);
        children.push(child);
        const cred: Credential = f ? (f.good('alice', 'publisher') as Credential) : { clientId: 'publisher' };
        await publishStream(port, cred, topic, Math.min(5000, publishes), 100);
        const r = await publishStream(port, cred, topic, publishes, 100);
        pubSamples.set(name, [...(pubSamples.get(name) ?? []), r.perSecond]);
        console.log(`  round ${round + 1} ${name}: ${fmt(r.perSecond)} msg/s`);
        await stopBroker(child);
      }
    }
    for (const [name] of pubModes) pubRows.push([name, median(pubSamples.get(name)!)]);

    const base = connectRows[0]![1].perSecond;
    console.log(`\nCONNECT (median of ${rounds} rounds × ${connects} connections, ${concurrency} concurrent, MQTT 3.1.1, sha256+salt passwords; broker in its own process)`);
    console.log('| backend | CONNECT/s | vs none | p50 ms | p99 ms | refused |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const [name, s] of connectRows) {
      console.log(`| ${name} | ${fmt(s.perSecond)} | ${fmt(s.perSecond / base, 2)} | ${fmt(s.p50Ms, 2)} | ${fmt(s.p99Ms, 2)} | ${s.refused} |`);
    }
    console.log(`\nCHAIN ONLY (createAuthChain in the load process, ${connects} authenticate() calls, ${concurrency} in flight)`);
    console.log('| backend | authenticate/s | p50 ms | p99 ms | denied |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    for (const [name, r] of chainRows) console.log(`| ${name} | ${fmt(r.perSecond)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${r.denied} |`);
    const pubBase = pubRows[0]![1];
    console.log(`\nPUBLISH (median of ${rounds} rounds; 1 client, QoS 1, window 100, ${publishes} messages, 64 B payload)`);
    console.log('| mode | msg/s | vs allow-all | loss |');
    console.log('| --- | ---: | ---: | ---: |');
    for (const [name, rate] of pubRows) console.log(`| ${name} | ${fmt(rate)} | ${fmt(rate / pubBase, 2)} | ${fmt((1 - rate / pubBase) * 100, 1)} % |`);
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await Promise.allSettled(fixtures.map((f) => f.close()));
    await Promise.allSettled(dbs.map((d) => d.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
