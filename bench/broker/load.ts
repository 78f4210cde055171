// The load generator, run as its own process by run.ts: `node load.ts PORT SCENARIO SCALE`.
// Protocol on stdio: prints READY once clients are connected and subscribed, waits for GO on
// stdin, runs, prints RESULT {json}, exits. The orchestrator samples broker CPU between GO and RESULT.
import { createInterface } from 'node:readline';
import { BenchClient } from './client.ts';

const port = Number(process.argv[2]);
const scenario = process.argv[3]!;
const quick = process.argv[4] === 'quick';

interface Result {
  sent: number;
  expected: number;
  delivered: number;
  lost: number;
  duplicated: number;
  elapsedMs: number;
  genCpuMs: number;
  connectRate?: number;
  latencyP50Ms?: number;
  latencyP99Ms?: number;
}

const go = new Promise<void>((resolve) => {
  createInterface({ input: process.stdin }).on('line', (l) => {
    if (l.trim() === 'GO') resolve();
  });
});

function payloadOf(size: number, pub: number, seq: number): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt16BE(pub, 0);
  b.writeUInt32BE(seq, 2);
  return b;
}

/** Tracks deliveries per (publisher, seq) to count lost and duplicated. */
class Tally {
  delivered = 0;
  duplicated = 0;
  private readonly seen: Uint8Array[];
  private readonly perPub: number;
  constructor(pubs: number, perPub: number, copies: number) {
    this.perPub = perPub;
    this.seen = Array.from({ length: pubs }, () => new Uint8Array(perPub));
    this.copies = copies;
  }
  private readonly copies: number;
  record(payload: Buffer): void {
    const pub = payload.readUInt16BE(0);
    const seq = payload.readUInt32BE(2);
    const row = this.seen[pub];
    if (row === undefined || seq >= this.perPub) return;
    if (row[seq]! >= this.copies) this.duplicated++;
    else {
      row[seq]!++;
      this.delivered++;
    }
  }
}

async function waitUntil(done: () => boolean, progress: () => number, idleMs: number): Promise<void> {
  let last = progress();
  let lastChange = performance.now();
  while (!done()) {
    await new Promise((r) => setTimeout(r, 20));
    const p = progress();
    if (p !== last) {
      last = p;
      lastChange = performance.now();
    } else if (performance.now() - lastChange > idleMs) {
      return;
    }
  }
}

async function qos0Blast(pub: BenchClient, topic: string, pubIndex: number, count: number, size: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    if (!pub.publish(topic, payloadOf(size, pubIndex, i), 0, 0)) await pub.drained();
    else if ((i & 255) === 255) await new Promise((r) => setImmediate(r));
  }
}

function windowed(pub: BenchClient, topic: string, pubIndex: number, count: number, size: number, qos: 1 | 2, window: number): Promise<void> {
  return new Promise((resolve) => {
    let next = 0;
    let acked = 0;
    const send = (): void => {
      const id = (next % 65535) + 1;
      pub.publish(topic, payloadOf(size, pubIndex, next), qos, id);
      next++;
    };
    pub.onAck = () => {
      acked++;
      if (acked === count) resolve();
      else if (next < count) send();
    };
    for (let i = 0; i < Math.min(window, count); i++) send();
  });
}

async function fan(pubs: number, subs: number, perPub: number, size: number, qos: 0 | 1 | 2, pairs: boolean): Promise<Result> {
  const tally = new Tally(pubs, perPub, pairs ? 1 : subs);
  const subClients: BenchClient[] = [];
  for (let s = 0; s < subs; s++) {
    const c = await BenchClient.connect(port, `bench-sub-${s}`);
    c.onMessage = (p) => tally.record(p);
    await c.subscribe(pairs ? `bench/pair/${s}` : 'bench/fan/#', qos);
    subClients.push(c);
  }
  const pubClients: BenchClient[] = [];
  for (let p = 0; p < pubs; p++) pubClients.push(await BenchClient.connect(port, `bench-pub-${p}`));
  process.stdout.write('READY\n');
  await go;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const expected = pubs * perPub * (pairs ? 1 : subs);
  await Promise.all(pubClients.map((c, p) => {
    const topic = pairs ? `bench/pair/${p}` : `bench/fan/${p}`;
    return qos === 0 ? qos0Blast(c, topic, p, perPub, size) : windowed(c, topic, p, perPub, size, qos, WINDOW);
  }));
  await waitUntil(() => tally.delivered >= expected, () => tally.delivered + tally.duplicated, 1500);
  // A short grace so late duplicates are counted.
  if (qos > 0) await new Promise((r) => setTimeout(r, 100));
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  for (const c of [...subClients, ...pubClients]) c.end();
  return {
    sent: pubs * perPub, expected, delivered: tally.delivered, lost: expected - tally.delivered, duplicated: tally.duplicated,
    elapsedMs, genCpuMs: (cpu.user + cpu.system) / 1000,
  };
}

async function latency(rate: number, seconds: number): Promise<Result> {
  const sub = await BenchClient.connect(port, 'bench-lat-sub');
  const samples: number[] = [];
  let delivered = 0;
  sub.onMessage = (p) => {
    delivered++;
    samples.push(performance.now() - p.readDoubleBE(8));
  };
  await sub.subscribe('bench/lat', 0);
  const pub = await BenchClient.connect(port, 'bench-lat-pub');
  process.stdout.write('READY\n');
  await go;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const total = rate * seconds;
  let sent = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      // Send what the schedule says is due by now: a steady rate in 1 ms steps.
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
      while (sent < due) {
        const b = payloadOf(64, 0, sent);
        b.writeDoubleBE(performance.now(), 8);
        pub.publish('bench/lat', b, 0, 0);
        sent++;
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  await waitUntil(() => delivered >= total, () => delivered, 1000);
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  samples.sort((a, b) => a - b);
  const q = (f: number): number => samples[Math.min(samples.length - 1, Math.floor(samples.length * f))] ?? NaN;
  sub.end();
  pub.end();
  return {
    sent, expected: total, delivered, lost: total - delivered, duplicated: 0, elapsedMs,
    genCpuMs: (cpu.user + cpu.system) / 1000, latencyP50Ms: q(0.5), latencyP99Ms: q(0.99),
  };
}

async function idle(count: number): Promise<Result> {
  process.stdout.write('READY\n');
  await go;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const clients: BenchClient[] = [];
  const concurrency = 100;
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++;
      clients.push(await BenchClient.connect(port, `bench-idle-${i}`, true, 0));
    }
  }));
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  // Tell the orchestrator that all are connected; it measures RSS, then sends GO again.
  process.stdout.write(`CONNECTED ${JSON.stringify({ connectRate: count / (elapsedMs / 1000) })}\n`);
  await new Promise<void>((resolve) => {
    createInterface({ input: process.stdin }).on('line', (l) => {
      if (l.trim() === 'RELEASE') resolve();
    });
  });
  for (const c of clients) c.socket.destroy();
  return {
    sent: 0, expected: count, delivered: clients.length, lost: count - clients.length, duplicated: 0, elapsedMs,
    genCpuMs: (cpu.user + cpu.system) / 1000, connectRate: count / (elapsedMs / 1000),
  };
}

/** QoS 1/2 messages in flight per publisher: below Mosquitto's default max_inflight_messages (20). */
const WINDOW = 16;
const k = quick ? 0.4 : 0.85;
let result: Result;
switch (scenario) {
  case 'fan-in-qos0':
    result = await fan(8, 1, Math.round(25_000 * k), 64, 0, false);
    break;
  case 'fan-out-qos0':
    result = await fan(1, 50, Math.round(4_000 * k), 64, 0, false);
    break;
  case 'pairs-qos1':
    result = await fan(10, 10, Math.round(5_000 * k), 256, 1, true);
    break;
  case 'pairs-qos2':
    result = await fan(10, 10, Math.round(2_500 * k), 256, 2, true);
    break;
  case 'idle-5000':
    result = await idle(quick ? 2_000 : 5_000);
    break;
  case 'latency-8k':
    result = await latency(8_000, quick ? 1.5 : 2.5);
    break;
  default:
    throw new Error(`unknown scenario ${scenario}`);
}
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
setTimeout(() => process.exit(0), 200);
