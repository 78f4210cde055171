// `npm run bench:ha [-- --quick] [-- --only cross-qos1,...] [-- --targets ours-2-redis,aedes-2-redis]
// [-- --rows-only] [-- --profile DIR] [-- --logs DIR] [-- --baseline DIR]`: shared-state brokers on loopback, one load generator (load.ts)
// for all: our broker with one replica in memory, one replica with Redis, two replicas with Redis
// (publishers on one, subscribers on the other), and two Aedes instances sharing Redis through
// mqemitter-redis + aedes-persistence-redis. Redis is a private redis-server on a free port, flushed
// before each run. CPU per message counts the broker processes (and Redis separately) from /proc
// between GO and RESULT. Our Redis rows are measured only once every replica heartbeats into Redis
// (a config that is accepted but not acted on would measure the memory path under a Redis label).
// redis-restart-qos1 kills Redis mid-traffic and starts it again empty: what is lost or duplicated.
// The last table puts our two replicas next to the two Aedes instances, as ratios. latency-5k also
// runs floor-relay.ts twice on the same Redis: the latency any two-replica Node.js broker has at
// least on this machine, so a p99 can be read against what the machine allows in the same run.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { freePort, spawnService, waitUntilReady } from '../../test/support/process.ts';
import type { ServiceProcess } from '../../test/support/process.ts';
import type { HaResult } from './load.ts';
import { layerTable, measureLayer } from './layer.ts';
import { measureRedisMemory } from './memory.ts';
import { waitForPort } from '../support/ports.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.includes('--only') ? args[args.indexOf('--only') + 1]!.split(',') : undefined;
/** `--logs DIR`: each broker's output goes to a file there (else it is discarded). */
const logsDir = args.includes('--logs') ? args[args.indexOf('--logs') + 1]! : undefined;
/** `--profile DIR`: our brokers write a V8 CPU profile there (node --cpu-prof) when they stop. */
const rowsOnly = args.includes('--rows-only'); // no state-layer or memory tables
const profileDir = args.includes('--profile') ? args[args.indexOf('--profile') + 1]! : undefined;
const scenarios = ['cross-qos1', 'cross-qos2', 'latency-5k', 'redis-restart-qos1'].filter((s) => only === undefined || only.includes(s));
const CLK_TCK = 100;

/** `--baseline DIR`: also runs the broker of another checkout (with its node_modules) as `base-2-redis`. */
const baselineDir = args.includes('--baseline') ? args[args.indexOf('--baseline') + 1]! : undefined;

type Target = 'ours-1-memory' | 'ours-1-redis' | 'ours-2-redis' | 'base-2-redis' | 'aedes-2-redis' | 'floor-2-redis';
/** floor-2-redis (floor-relay.ts): two relays that only forward through Redis pub/sub, the latency floor; latency-5k only. */
const allTargets: Target[] = ['ours-1-memory', 'ours-1-redis', 'ours-2-redis', ...(baselineDir === undefined ? [] : ['base-2-redis' as const]), 'aedes-2-redis', 'floor-2-redis'];
/** `--targets ours-2-redis,aedes-2-redis`: only these (to profile or repeat one comparison). */
const targets = args.includes('--targets') ? allTargets.filter((t) => args[args.indexOf('--targets') + 1]!.split(',').includes(t)) : allTargets;

export interface PrivateRedis {
  service: ServiceProcess;
  port: number;
  password: string;
  client: Redis;
  dir: string;
}

interface Row {
  target: Target;
  scenario: string;
  result: HaResult | undefined;
  brokerUsPerMsg: number;
  /** Per broker process: with two, the publishers' one first. */
  perBrokerUs: number[];
  redisUsPerMsg: number;
  note: string;
}

/** utime+stime of a live process; NaN when it is gone (a broker that exited shows up as '-'). */
function cpuTicks(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return NaN;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime
}

async function startRedis(): Promise<PrivateRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-ha-'));
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const client = new Redis({ host: '127.0.0.1', port, password, maxRetriesPerRequest: 1, retryStrategy: (n) => Math.min(n * 50, 500) });
  client.on('error', () => undefined);
  const service = await spawnRedis(dir, port, password, client);
  return { service, port, password, client, dir };
}

/** SIGKILL, then the same server again after `downMs` (empty: memory only), as a crashed Redis pod. */
async function restartRedis(redis: PrivateRedis, downMs: number): Promise<void> {
  process.kill(redis.service.pid, 'SIGKILL');
  await redis.service.stop(100);
  await new Promise((r) => setTimeout(r, downMs));
  redis.service = await spawnRedis(redis.dir, redis.port, redis.password, redis.client);
}

async function spawnRedis(dir: string, port: number, password: string, client: Redis): Promise<ServiceProcess> {
  const service = spawnService({
    name: 'redis', command: 'redis-server', logFile: join(dir, 'redis.log'),
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--requirepass', password, '--logfile', ''],
  });
  await waitUntilReady(service, async () => (await client.ping()) === 'PONG', 20_000);
  return service;
}

interface Broker {
  proc: ChildProcess;
  port: number;
  /** Our broker's admin port (/metrics); undefined for Aedes. */
  adminPort: number | undefined;
}

function oursConfig(dir: string, port: number, adminPort: number, redis: PrivateRedis | undefined): string {
  const file = join(dir, `broker-${port}.yaml`);
  const passwordFile = join(dir, 'redis-password');
  writeFileSync(passwordFile, redis?.password ?? '');
  const state = redis === undefined ? '' : `state:\n  backend: redis\n  redis: { host: 127.0.0.1, port: ${redis.port}, passwordFile: ${passwordFile}, keyPrefix: 'enclave:bench:' }\n`;
  writeFileSync(file, `name: bench\nlisteners: [{ name: default, protocol: mqtt, host: 127.0.0.1, port: ${port}, allowAnonymous: true }]\n`
    + `admin: { host: 127.0.0.1, port: ${adminPort} }\nauthorization: { noMatch: allow }\nlogging: { level: ${logsDir === undefined ? 'warn' : 'info'} }\n${state}`);
  return file;
}

async function startBroker(target: Target, index: number, redis: PrivateRedis): Promise<Broker> {
  const port = await freePort();
  let proc: ChildProcess;
  let adminPort: number | undefined;
  const out = logsDir === undefined ? 'ignore' : openSync(join(logsDir, `${target}-${index}-${port}.log`), 'w');
  if (target === 'aedes-2-redis' || target === 'floor-2-redis') {
    const server = target === 'aedes-2-redis' ? 'aedes-redis.ts' : 'floor-relay.ts';
    proc = spawn(process.execPath, [join(here, server), String(port), String(redis.port), redis.password], { stdio: ['ignore', out, out] });
  } else {
    adminPort = await freePort();
    const config = oursConfig(redis.dir, port, adminPort, target === 'ours-1-memory' ? undefined : redis);
    const profile = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `${target}-${index}-${port}.cpuprofile`];
    const brokerRoot = target === 'base-2-redis' ? baselineDir! : root;
    proc = spawn(process.execPath, [...profile, join(brokerRoot, 'broker/main.ts'), '--config', config], {
      stdio: ['ignore', out, out], env: { ...process.env, ENCLAVE_REPLICA_ID: `bench-${index}` },
    });
  }
  await waitForPort(port, 600); // 30 s: a loaded machine starts a broker slowly
  return { proc, port, adminPort };
}

/**
 * Messages our brokers dropped on purpose (`enclave_broker_messages_dropped_total`), by reason:
 * e.g. queue-full is the configured slow-consumer limit (`maxQueuedMessages`), which Aedes does
 * not have: a "lost" count is read next to it.
 */
async function drops(brokers: Broker[]): Promise<Map<string, number>> {
  const byReason = new Map<string, number>();
  for (const b of brokers) {
    if (b.adminPort === undefined) continue;
    const text = await fetch(`http://127.0.0.1:${b.adminPort}/metrics`).then((r) => r.text(), () => '');
    for (const m of text.matchAll(/^enclave_broker_messages_dropped_total\{reason="([^"]+)"\} (\d+)/gm)) {
      byReason.set(m[1]!, (byReason.get(m[1]!) ?? 0) + Number(m[2]));
    }
  }
  return byReason;
}

/** Drops between GO and RESULT (the warm-up's are not the run's). */
function dropsSince(before: Map<string, number>, after: Map<string, number>): string {
  return [...after].map(([reason, n]) => [reason, n - (before.get(reason) ?? 0)] as const)
    .filter(([, n]) => n > 0).map(([reason, n]) => `dropped ${n} ${reason}`).join(', ');
}

async function stopBroker(b: Broker): Promise<void> {
  b.proc.kill('SIGTERM');
  await new Promise((r) => {
    if (b.proc.exitCode !== null) r(undefined);
    else b.proc.once('exit', r);
    setTimeout(() => {
      b.proc.kill('SIGKILL');
      r(undefined);
    }, 5000).unref();
  });
}

function lineReader(gen: ChildProcess, label: string): (prefix: string) => Promise<string> {
  const lines = createInterface({ input: gen.stdout! });
  return (prefix) => new Promise((resolve, reject) => {
    const onLine = (l: string): void => {
      if (l.startsWith(prefix)) {
        lines.off('line', onLine);
        resolve(l.slice(prefix.length).trim());
      }
    };
    lines.on('line', onLine);
    gen.once('exit', () => reject(new Error(`generator for ${label} exited before ${prefix}`)));
  });
}

/**
 * Whether our replicas really run on Redis: each heartbeats into `<prefix>replicas`
 * (broker/cluster/shared.ts). A config that is accepted but not acted on does not count.
 */
async function replicasHeartbeat(redis: PrivateRedis, count: number): Promise<boolean> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const scores = await Promise.all(Array.from({ length: count }, (_, i) => redis.client.zscore('enclave:bench:replicas', `bench-${i}`)));
    if (scores.every((x) => x !== null)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/**
 * Redis commands per delivered message, the most frequent first (INFO commandstats since the
 * RESETSTAT at GO; a script's own calls count too): how much each side batches. Empty after a
 * Redis restart (its counters are new).
 */
async function commandsPerMessage(redis: PrivateRedis, delivered: number): Promise<string> {
  if (delivered === 0) return '';
  const info = await redis.client.info('commandstats').catch(() => '');
  const calls = [...info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)]
    .map(([, name, n]) => [name!, Number(n) / delivered] as const)
    .filter(([name, per]) => per >= 0.01 && name !== 'info' && name !== 'config');
  return calls.sort((a, b) => b[1] - a[1]).slice(0, 7).map(([name, per]) => `${name} ${per.toFixed(2)}`).join(' ');
}

const failed = (target: Target, scenario: string, why: string): Row => ({ target, scenario, result: undefined, brokerUsPerMsg: NaN, perBrokerUs: [], redisUsPerMsg: NaN, note: why });

async function runOne(target: Target, scenario: string, redis: PrivateRedis): Promise<Row> {
  await redis.client.flushall();
  const replicas = target.startsWith('ours-1') ? 1 : 2;
  const brokers: Broker[] = [];
  for (let i = 0; i < replicas; i++) brokers.push(await startBroker(target, i, redis));
  if (target !== 'aedes-2-redis' && target !== 'floor-2-redis' && target.endsWith('-redis') && !await replicasHeartbeat(redis, replicas)) {
    for (const b of brokers) await stopBroker(b);
    return failed(target, scenario, 'no replica heartbeat in Redis');
  }
  const subPort = brokers[brokers.length - 1]!.port;
  const gen = spawn(process.execPath, [join(here, 'load.ts'), String(brokers[0]!.port), String(subPort), scenario, quick ? 'quick' : 'full'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const next = lineReader(gen, `${target}/${scenario}`);
  try {
    await next('READY');
    const pids = brokers.map((b) => b.proc.pid!);
    const cpu0 = pids.map(cpuTicks);
    const redis0 = cpuTicks(redis.service.pid);
    const redisPid = redis.service.pid; // a restart replaces the process: its CPU is then not counted
    const drops0 = await drops(brokers);
    await redis.client.config('RESETSTAT');
    gen.stdin.write('GO\n');
    const outage = scenario === 'redis-restart-qos1'
      ? new Promise((r) => setTimeout(r, 1500)).then(() => restartRedis(redis, 1000))
      : Promise.resolve();
    const result = JSON.parse(await next('RESULT')) as HaResult;
    await outage;
    const commands = await commandsPerMessage(redis, result.delivered);
    const per = (ticks: number): number => (result.delivered > 0 ? (ticks * 1e6) / CLK_TCK / result.delivered : NaN);
    const exited = brokers.filter((b) => b.proc.exitCode !== null || b.proc.signalCode !== null).map((b) => b.proc.exitCode ?? b.proc.signalCode);
    const perBrokerUs = pids.map((p, i) => per(cpuTicks(p) - cpu0[i]!));
    const note = [
      exited.length > 0 ? `broker exited (${exited.join(', ')})` : '', dropsSince(drops0, await drops(brokers)),
      result.reconnects ? `publisher reconnected ${result.reconnects}×` : '', commands,
    ].filter((x) => x !== '').join('; ');
    return {
      target, scenario, result, note,
      brokerUsPerMsg: perBrokerUs.reduce((a, b) => a + b, 0), perBrokerUs, redisUsPerMsg: redis.service.pid === redisPid ? per(cpuTicks(redisPid) - redis0) : NaN,
    };
  } finally {
    gen.kill();
    for (const b of brokers) await stopBroker(b);
  }
}

const f = (x: number | undefined, digits = 1): string => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));

function table(rows: Row[]): string {
  const header = ['scenario', 'target', 'msg/s', 'p50 ms', 'p99 ms', 'lost', 'dup', 'broker µs/msg', '(pub + sub)', 'redis µs/msg', 'note'];
  const cells = rows.map((r) => {
    const x = r.result;
    return [r.scenario, r.target, f(x === undefined ? undefined : x.delivered / (x.elapsedMs / 1000), 0), f(x?.latencyP50Ms, 2), f(x?.latencyP99Ms, 2),
      x === undefined ? '-' : String(x.lost), x === undefined ? '-' : String(x.duplicated), f(r.brokerUsPerMsg, 1),
      r.perBrokerUs.length > 1 ? r.perBrokerUs.map((x) => f(x, 1)).join(' + ') : '', f(r.redisUsPerMsg, 1), r.note];
  });
  return markdown(header, cells);
}

function markdown(header: string[], cells: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string => `| ${c.map((s, i) => s.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

/**
 * Ours across two replicas next to Aedes across two instances, per scenario: throughput (higher is
 * better for us), CPU per delivered message of the brokers, and of brokers + Redis (lower is better).
 */
function ratios(rows: Row[]): string {
  const header = ['scenario', 'msg/s ours / Aedes', 'broker CPU/msg ours / Aedes', 'broker+Redis CPU/msg ours / Aedes', 'p99 ms ours | Aedes'];
  const cells: string[][] = [];
  for (const scenario of new Set(rows.map((r) => r.scenario))) {
    const ours = rows.find((r) => r.scenario === scenario && r.target === 'ours-2-redis');
    const aedes = rows.find((r) => r.scenario === scenario && r.target === 'aedes-2-redis');
    if (ours?.result === undefined || aedes?.result === undefined) continue;
    const rate = (r: Row): number => r.result!.delivered / r.result!.elapsedMs;
    const total = (r: Row): number => r.brokerUsPerMsg + r.redisUsPerMsg;
    // latency-5k and redis-restart-qos1 send at a fixed rate: their msg/s compare nothing.
    cells.push([scenario, scenario.startsWith('cross-') ? f(rate(ours) / rate(aedes), 2) : 'fixed rate', f(ours.brokerUsPerMsg / aedes.brokerUsPerMsg, 2), f(total(ours) / total(aedes), 2),
      `${f(ours.result.latencyP99Ms, 2)} | ${f(aedes.result.latencyP99Ms, 2)}`]);
  }
  const floor = rows.find((r) => r.target === 'floor-2-redis' && r.result !== undefined);
  const floorLine = floor === undefined ? '' : `\nLatency floor of this machine, same run (floor-relay.ts: two relays that only forward through Redis pub/sub, nothing kept): p50 ${f(floor.result!.latencyP50Ms, 2)} ms, p99 ${f(floor.result!.latencyP99Ms, 2)} ms at ${floor.scenario}`;
  return `Ours (2 replicas, Redis) relative to Aedes (2 instances, Redis)\n${markdown(header, cells)}${floorLine}`;
}

async function main(): Promise<void> {
  const started = performance.now();
  const redis = await startRedis();
  const rows: Row[] = [];
  try {
    for (const scenario of scenarios) {
      for (const target of targets) {
        if (target === 'floor-2-redis' && scenario !== 'latency-5k') continue; // it keeps nothing: a floor for latency only
        const row = await runOne(target, scenario, redis);
        rows.push(row);
        const x = row.result;
        process.stderr.write(`${scenario} ${target}: ${x === undefined ? row.note : `${f(x.delivered / (x.elapsedMs / 1000), 0)} msg/s, lost ${x.lost}, dup ${x.duplicated}`}\n`);
      }
    }
    process.stdout.write(`\nHA benchmark (${quick ? 'quick' : 'full'}; 2-replica rows: publishers on replica 1, subscribers on replica 2; QoS 1/2 windows of 16 per publisher)\n`);
    process.stdout.write(`${table(rows)}\n\n${ratios(rows)}\n\n`);
    if (rowsOnly) return;
    process.stdout.write(`${layerTable(await measureLayer(redis, quick))}\n\n`);
    process.stdout.write(`${await measureRedisMemory(redis, quick ? 200 : 1000)}\n`);
  } finally {
    redis.client.disconnect();
    await redis.service.stop();
    rmSync(redis.dir, { recursive: true, force: true });
  }
  process.stdout.write(`total ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
}

await main();
