// `npm run bench:memory [-- --scale N]`: the memory budget per feature, our broker against Aedes
// (npm) and Mosquitto 2 (/usr/sbin/mosquitto) in the same run. Each broker runs as its own process,
// is loaded from outside over MQTT 3.1.1, and the growth of its resident set size is divided by
// what the load added:
//
//   idle connection     2,000 clients connected (clean session, keep-alive off), doing nothing
//   subscription        20,000 subscriptions: 200 connected clients × 100 distinct filters
//   queued message      20,000 QoS 1 messages (64-byte payload) waiting for 20 offline persistent
//                       sessions, 1,000 each (every broker's default per-session limit)
//   retained message    20,000 retained messages (64-byte payload) on distinct topics
//
// Each feature is measured on a fresh broker process. The Node.js brokers collect garbage fully
// before each reading (node-broker.ts), so a reading is what the broker holds; Mosquitto frees as
// it goes. Each figure includes what the broker keeps per item: buffers, indexes, per-message headers.
// `--scale` multiplies every count (default 1); `--rounds N` repeats everything and shows medians.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Interface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { encodePublishPlain, publishHeader } from '../../broker/protocol/codec.ts';
import { BenchClient } from '../broker/client.ts';

const opts = new Command()
  .name('bench:memory')
  .option('--scale <n>', 'multiply every count', '1')
  .option('--rounds <n>', 'measure every broker and feature this many times; the table shows medians', '1')
  .parse()
  .opts<{ scale: string; rounds: string }>();
const scale = Number(opts.scale);
const rounds = Number(opts.rounds);
const counts = { connections: 2000 * scale, subscribers: 200 * scale, filtersEach: 100, sessions: 20 * scale, queuedEach: 1000, retained: 20_000 * scale };
const payload = Buffer.alloc(64, 'm');

type BrokerName = 'ours' | 'aedes' | 'mosquitto';
const brokers: BrokerName[] = ['ours', 'aedes', 'mosquitto'];
const features = ['idle connection', 'subscription', 'queued message', 'retained message'] as const;
type Feature = (typeof features)[number];

interface Reading {
  rss: number;
  /** Node.js brokers: live heap + external memory after a full GC. */
  held?: number;
}

interface Running {
  port: number;
  /** Resident set size in bytes, after a full GC for the Node.js brokers. */
  read(): Promise<Reading>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr !== null ? addr.port : 0));
    });
  });
}

function nextLine(lines: Interface, prefix: string): Promise<string> {
  return new Promise((resolve) => {
    const onLine = (l: string): void => {
      if (!l.startsWith(prefix)) return;
      lines.off('line', onLine);
      resolve(l.slice(prefix.length).trim());
    };
    lines.on('line', onLine);
  });
}

function stopProcess(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null) return resolve();
    proc.once('exit', () => resolve());
    proc.kill('SIGTERM');
    setTimeout(() => proc.kill('SIGKILL'), 5000).unref();
  });
}

async function startBroker(name: BrokerName): Promise<Running> {
  if (name !== 'mosquitto') {
    const proc = spawn(process.execPath, ['--expose-gc', join(import.meta.dirname, 'node-broker.ts'), name], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: proc.stdout });
    const port = Number(await nextLine(lines, 'READY'));
    return {
      port,
      async read() {
        const answer = nextLine(lines, 'RSS');
        proc.stdin.write('measure\n');
        const [rss, , held] = (await answer).split(' ');
        return { rss: Number(rss), held: Number(held) };
      },
      stop: () => stopProcess(proc),
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'bench-memory-mosq-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\nmax_queued_messages 1000\n`);
  const proc = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: 'ignore' });
  for (let i = 0; ; i++) {
    try {
      const probe = await BenchClient.connect(port, 'probe');
      probe.end();
      break;
    } catch (err) {
      if (i > 100) throw err;
      await sleep(50);
    }
  }
  return {
    port,
    async read() {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
      return { rss: Number(m![1]) * 1024 };
    },
    async stop() {
      await stopProcess(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Sends QoS 1 PUBLISHes `window` at a time, each window waiting for its PUBACKs. */
async function publishQos1(c: BenchClient, messages: { topic: string; retain: boolean }[], window = 200): Promise<void> {
  let id = 0;
  for (let at = 0; at < messages.length; at += window) {
    const batch = messages.slice(at, at + window);
    let acked = 0;
    const all = new Promise<void>((resolve) => {
      c.onAck = () => {
        if (++acked === batch.length) resolve();
      };
    });
    c.socket.write(Buffer.concat(batch.map((m) => {
      id = (id % 65535) + 1;
      return encodePublishPlain(m.topic, payload, publishHeader(1, m.retain, false), id, false);
    })));
    await all;
  }
}

async function inBatches<T>(n: number, size: number, make: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += size) out.push(...(await Promise.all(Array.from({ length: Math.min(size, n - i) }, (_, j) => make(i + j)))));
  return out;
}

/**
 * One feature on a fresh broker process (a process that already grew and freed memory for another
 * feature would hand the next one pages it does not show in RSS): `prepare` builds what the feature
 * needs (connections, offline sessions), then `load` adds `items` of it between two readings.
 */
interface FeatureRun {
  prepare(port: number, clients: BenchClient[]): Promise<void>;
  load(port: number, clients: BenchClient[]): Promise<number>;
}

const runs: Record<Feature, FeatureRun> = {
  'idle connection': {
    async prepare() {},
    async load(port, clients) {
      clients.push(...(await inBatches(counts.connections, 100, (i) => BenchClient.connect(port, `idle-${i}`))));
      return counts.connections;
    },
  },
  subscription: {
    async prepare(port, clients) {
      clients.push(...(await inBatches(counts.subscribers, 100, (i) => BenchClient.connect(port, `sub-${i}`))));
    },
    async load(_port, clients) {
      await inBatches(counts.subscribers, 20, async (i) => {
        await Promise.all(Array.from({ length: counts.filtersEach }, (_, f) => clients[i]!.subscribe(`mem/s/${i}/${f}`, 0)));
      });
      return counts.subscribers * counts.filtersEach;
    },
  },
  'queued message': {
    async prepare(port, clients) {
      // Persistent sessions subscribed at QoS 1, then offline.
      await inBatches(counts.sessions, 20, async (i) => {
        const c = await BenchClient.connect(port, `offline-${i}`, false);
        await c.subscribe(`mem/q/${i}`, 1);
        c.end();
        await new Promise((r) => c.socket.once('close', r));
      });
      clients.push(await BenchClient.connect(port, 'publisher'));
    },
    async load(_port, clients) {
      const queued: { topic: string; retain: boolean }[] = [];
      for (let n = 0; n < counts.queuedEach; n++) for (let i = 0; i < counts.sessions; i++) queued.push({ topic: `mem/q/${i}`, retain: false });
      await publishQos1(clients[0]!, queued);
      return queued.length;
    },
  },
  'retained message': {
    async prepare(port, clients) {
      clients.push(await BenchClient.connect(port, 'publisher'));
    },
    async load(_port, clients) {
      await publishQos1(clients[0]!, Array.from({ length: counts.retained }, (_, i) => ({ topic: `mem/r/${i}`, retain: true })));
      return counts.retained;
    },
  },
};

/** Bytes per item of `feature` on a fresh `name` broker. */
async function measure(name: BrokerName, feature: Feature): Promise<Reading> {
  const b = await startBroker(name);
  const clients: BenchClient[] = [];
  const settle = async (): Promise<Reading> => {
    await sleep(500);
    return b.read();
  };
  try {
    await runs[feature].prepare(b.port, clients);
    const before = await settle();
    const items = await runs[feature].load(b.port, clients);
    const after = await settle();
    return { rss: (after.rss - before.rss) / items, held: after.held === undefined ? undefined : (after.held - before.held!) / items };
  } finally {
    for (const c of clients) c.socket.destroy();
    await b.stop();
  }
}

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const m = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[m]! : (sorted[m - 1]! + sorted[m]!) / 2;
};

// Rounds alternate the broker order, so drift (other load on the machine) hits all alike.
const readings = new Map<string, Reading[]>();
for (let r = 0; r < rounds; r++) {
  for (const name of r % 2 === 0 ? brokers : [...brokers].reverse()) {
    process.stderr.write(`round ${r + 1}/${rounds}: ${name}\n`);
    for (const feature of features) {
      const key = `${name}/${feature}`;
      readings.set(key, [...(readings.get(key) ?? []), await measure(name, feature)]);
    }
  }
}
const rssOf = (name: BrokerName, feature: Feature): number => median(readings.get(`${name}/${feature}`)!.map((x) => x.rss));
const heldOf = (name: BrokerName, feature: Feature): number => median(readings.get(`${name}/${feature}`)!.map((x) => x.held!));

const f0 = (x: number): string => Math.round(x).toLocaleString('en-US');
const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}×` : '-');
console.log(`\nbytes per item: RSS growth (held: live heap + Buffers after GC, Node.js brokers); payloads ${payload.length} B, counts ×${scale}, ${rounds === 1 ? '1 round' : `median of ${rounds} rounds`}\n`);
console.log('| feature | ours | (held) | aedes | (held) | mosquitto | ours ÷ aedes | ours ÷ mosquitto |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const feature of features) {
  const [o, a, m] = brokers.map((n) => rssOf(n, feature)) as [number, number, number];
  console.log(`| ${feature} | ${f0(o)} | ${f0(heldOf('ours', feature))} | ${f0(a)} | ${f0(heldOf('aedes', feature))} | ${f0(m)} | ${ratio(o, a)} | ${ratio(o, m)} |`);
}
