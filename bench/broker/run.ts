// `npm run bench:broker [-- --quick] [-- --rounds N]`: our broker vs Aedes vs Mosquitto 2 on
// loopback. Each broker runs as its own process; the load generator (load.ts) is another process.
// Rounds alternate brokers so drift (thermal, other load) hits all alike; the table shows medians.
// Broker CPU comes from /proc/<pid>/stat (utime+stime) sampled between GO and RESULT.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { waitForPort } from '../support/ports.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const roundsArg = args.indexOf('--rounds');
const rounds = roundsArg >= 0 ? Number(args[roundsArg + 1]) : quick ? 1 : 2;
const only = args.includes('--only') ? args[args.indexOf('--only') + 1]!.split(',') : undefined;
const CLK_TCK = 100;

type BrokerName = 'ours' | 'aedes' | 'mosquitto';
const brokers: BrokerName[] = ['ours', 'aedes', 'mosquitto'];
const scenarios = ['fan-in-qos0', 'fan-out-qos0', 'pairs-qos1', 'pairs-qos2', 'idle-5000', 'latency-8k'].filter((s) => only === undefined || only.includes(s));

interface Run {
  broker: BrokerName;
  scenario: string;
  delivered: number;
  lost: number;
  duplicated: number;
  msgPerSec: number;
  cpuUsPerMsg: number;
  genCpuPct: number;
  brokerCpuPct: number;
  connectRate?: number;
  rssPerConnKiB?: number;
  p50?: number;
  p99?: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

interface Running {
  proc: ChildProcess;
  port: number;
  cleanup(): void;
}

async function startBroker(name: BrokerName): Promise<Running> {
  const port = await freePort();
  let proc: ChildProcess;
  let cleanup = (): void => undefined;
  if (name === 'ours') {
    const prof = process.env.BENCH_CPU_PROF === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF];
    proc = spawn(process.execPath, [...prof, join(root, 'broker/main.ts'), '--port', String(port)], { stdio: 'ignore' });
  } else if (name === 'aedes') {
    proc = spawn(process.execPath, [join(here, 'aedes-server.ts'), String(port)], { stdio: 'ignore' });
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'bench-mosq-'));
    const conf = join(dir, 'mosquitto.conf');
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\nmax_queued_messages 1000\n`);
    proc = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: 'ignore' });
    cleanup = () => rmSync(dir, { recursive: true, force: true });
  }
  await waitForPort(port);
  return { proc, port, cleanup };
}

async function stopBroker(b: Running): Promise<void> {
  b.proc.kill('SIGTERM');
  await new Promise((r) => {
    if (b.proc.exitCode !== null) r(undefined);
    else b.proc.once('exit', r);
    setTimeout(() => {
      b.proc.kill('SIGKILL');
      r(undefined);
    }, 5000).unref();
  });
  b.cleanup();
}

async function runScenario(broker: BrokerName, scenario: string): Promise<Run> {
  const b = await startBroker(broker);
  const pid = b.proc.pid!;
  const gen = spawn(process.execPath, [join(here, 'load.ts'), String(b.port), scenario, quick ? 'quick' : 'full'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: gen.stdout });
  const next = (prefix: string): Promise<string> => new Promise((resolve, reject) => {
    const onLine = (l: string): void => {
      if (l.startsWith(prefix)) {
        lines.off('line', onLine);
        resolve(l.slice(prefix.length).trim());
      }
    };
    lines.on('line', onLine);
    gen.once('exit', () => reject(new Error(`generator for ${broker}/${scenario} exited before ${prefix}`)));
  });
  try {
    await next('READY');
    const rss0 = rssKiB(pid);
    const cpu0 = cpuTicks(pid);
    const t0 = performance.now();
    gen.stdin.write('GO\n');
    let rssPerConnKiB: number | undefined;
    if (scenario === 'idle-5000') {
      await next('CONNECTED');
      await new Promise((r) => setTimeout(r, 1000));
      rssPerConnKiB = (rssKiB(pid) - rss0) / (quick ? 2000 : 5000);
      gen.stdin.write('RELEASE\n');
    }
    const result = JSON.parse(await next('RESULT')) as {
      delivered: number; lost: number; duplicated: number; elapsedMs: number; genCpuMs: number;
      connectRate?: number; latencyP50Ms?: number; latencyP99Ms?: number;
    };
    const cpuMs = ((cpuTicks(pid) - cpu0) * 1000) / CLK_TCK;
    const wallMs = performance.now() - t0;
    return {
      broker, scenario, delivered: result.delivered, lost: result.lost, duplicated: result.duplicated,
      msgPerSec: result.delivered / (result.elapsedMs / 1000),
      cpuUsPerMsg: result.delivered > 0 ? (cpuMs * 1000) / result.delivered : NaN,
      genCpuPct: (result.genCpuMs / result.elapsedMs) * 100,
      brokerCpuPct: (cpuMs / wallMs) * 100,
      connectRate: result.connectRate, rssPerConnKiB, p50: result.latencyP50Ms, p99: result.latencyP99Ms,
    };
  } finally {
    gen.kill();
    await stopBroker(b);
  }
}

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const f = (x: number | undefined, digits = 1): string => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));

async function main(): Promise<void> {
  const started = performance.now();
  const runs: Run[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const scenario of scenarios) {
      // Alternate the order each round.
      const order = r % 2 === 0 ? brokers : [...brokers].reverse();
      for (const broker of order) {
        const run = await runScenario(broker, scenario);
        runs.push(run);
        process.stderr.write(`round ${r + 1} ${scenario} ${broker}: ${f(run.msgPerSec, 0)} msg/s, ${f(run.cpuUsPerMsg, 2)} µs/msg\n`);
      }
    }
  }
  const header = ['scenario', 'broker', 'msg/s', 'broker µs/msg', 'broker CPU %', 'gen CPU %', 'lost', 'dup', 'conn/s', 'KiB/idle conn', 'p50 ms', 'p99 ms', 'µs/msg vs aedes', 'vs mosquitto'];
  const rows: string[][] = [];
  for (const scenario of scenarios) {
    const agg = new Map<BrokerName, Record<string, number | undefined>>();
    for (const broker of brokers) {
      const rs = runs.filter((x) => x.broker === broker && x.scenario === scenario);
      const pick = (k: keyof Run): number | undefined => (rs.some((x) => typeof x[k] === 'number') ? median(rs.map((x) => x[k] as number)) : undefined);
      agg.set(broker, {
        msgPerSec: pick('msgPerSec'), cpu: pick('cpuUsPerMsg'), bcpu: pick('brokerCpuPct'), gcpu: pick('genCpuPct'),
        lost: Math.max(...rs.map((x) => x.lost)), dup: Math.max(...rs.map((x) => x.duplicated)),
        conn: pick('connectRate'), rss: pick('rssPerConnKiB'), p50: pick('p50'), p99: pick('p99'),
      });
    }
    for (const broker of brokers) {
      const a = agg.get(broker)!;
      const ratio = (other: BrokerName): string => {
        if (broker !== 'ours') return '';
        const metric = scenario === 'idle-5000' ? 'rss' : 'cpu';
        return f(a[metric]! / agg.get(other)![metric]!, 2);
      };
      rows.push([
        scenario, broker, f(a.msgPerSec, 0), scenario === 'idle-5000' ? '-' : f(a.cpu, 2), f(a.bcpu, 0), f(a.gcpu, 0),
        String(a.lost), String(a.dup), f(a.conn, 0), f(a.rss, 2), f(a.p50, 3), f(a.p99, 3), ratio('aedes'), ratio('mosquitto'),
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const out = [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)];
  process.stdout.write(`\nMQTT broker benchmark (${quick ? 'quick' : 'full'}, ${rounds} round(s), medians; idle-5000 ratios are RSS per connection)\n`);
  process.stdout.write(`${out.join('\n')}\n`);
  process.stdout.write(`total ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
}

await main();
