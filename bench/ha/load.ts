// The HA load generator, run as its own process by run.ts: `node load.ts PUB_PORT SUB_PORT SCENARIO SCALE`.
// Publishers connect to PUB_PORT, subscribers (persistent sessions) to SUB_PORT: with two replicas
// every message crosses between them. Same stdio protocol as bench/broker/load.ts: READY, wait for
// GO, RESULT {json}. Payload bytes 0..1 = publisher, 2..5 = sequence, 8..15 = send time (latency).
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { BenchClient } from '../broker/client.ts';

const [pubPort, subPort, scenario] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]!];
const quick = process.argv[5] === 'quick';
const run = randomBytes(3).toString('hex');
/** Publisher index of warm-up messages: proves the route exists before GO, never counted. */
const WARMUP = 0xffff;
const WINDOW = 16;

export interface HaResult {
  sent: number;
  expected: number;
  delivered: number;
  lost: number;
  duplicated: number;
  elapsedMs: number;
  genCpuMs: number;
  latencyP50Ms?: number;
  latencyP99Ms?: number;
  /** Times the steady-rate publisher connected again after its connection was closed. */
  reconnects?: number;
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
  b.writeDoubleBE(performance.now(), 8);
  return b;
}

/** Deliveries per (publisher, seq): lost, duplicated, and latency samples. */
class Tally {
  delivered = 0;
  duplicated = 0;
  warm = 0;
  readonly latencies: number[] = [];
  private readonly seen: Uint8Array[];
  constructor(pubs: number, perPub: number) {
    this.seen = Array.from({ length: pubs }, () => new Uint8Array(perPub));
  }
  record(payload: Buffer): void {
    const pub = payload.readUInt16BE(0);
    if (pub === WARMUP) {
      this.warm++;
      return;
    }
    const row = this.seen[pub];
    const seq = payload.readUInt32BE(2);
    if (row === undefined || seq >= row.length) return;
    if (row[seq]! > 0) {
      this.duplicated++;
      return;
    }
    row[seq] = 1;
    this.delivered++;
    this.latencies.push(performance.now() - payload.readDoubleBE(8));
  }
}

async function waitIdle(done: () => boolean, progress: () => number, idleMs: number): Promise<void> {
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

/** Connects publisher/subscriber pairs across the two ports and waits until each route carries. */
async function pairs(n: number, qos: 1 | 2, tally: Tally): Promise<BenchClient[]> {
  const subs: BenchClient[] = [];
  for (let i = 0; i < n; i++) {
    const c = await BenchClient.connect(subPort, `ha-sub-${run}-${i}`, false);
    c.onMessage = (p) => tally.record(p);
    await c.subscribe(`ha/pair/${i}`, qos);
    subs.push(c);
  }
  const pubs: BenchClient[] = [];
  for (let i = 0; i < n; i++) pubs.push(await BenchClient.connect(pubPort, `ha-pub-${run}-${i}`));
  // Subscriptions reach the other replica asynchronously: warm each route up with QoS 0 probes.
  const deadline = performance.now() + 10_000;
  while (tally.warm < n && performance.now() < deadline) {
    pubs.forEach((p, i) => p.publish(`ha/pair/${i}`, payloadOf(16, WARMUP, 0), 0, 0));
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 200));
  tally.warm = 0;
  return [...pubs, ...subs];
}

function windowed(pub: BenchClient, topic: string, index: number, count: number, qos: 1 | 2): Promise<void> {
  return new Promise((resolve) => {
    let next = 0;
    let acked = 0;
    const send = (): void => {
      pub.publish(topic, payloadOf(256, index, next), qos, (next % 65535) + 1);
      next++;
    };
    pub.onAck = () => {
      acked++;
      if (acked === count) resolve();
      else if (next < count) send();
    };
    for (let i = 0; i < Math.min(WINDOW, count); i++) send();
  });
}

function quantile(sorted: number[], f: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * f))] ?? NaN;
}

function finish(tally: Tally, sent: number, expected: number, t0: number, cpu0: NodeJS.CpuUsage): HaResult {
  const cpu = process.cpuUsage(cpu0);
  const sorted = tally.latencies.sort((a, b) => a - b);
  return {
    sent, expected, delivered: tally.delivered, lost: expected - tally.delivered, duplicated: tally.duplicated,
    elapsedMs: performance.now() - t0, genCpuMs: (cpu.user + cpu.system) / 1000,
    latencyP50Ms: quantile(sorted, 0.5), latencyP99Ms: quantile(sorted, 0.99),
  };
}

async function throughput(n: number, perPub: number, qos: 1 | 2): Promise<HaResult> {
  const tally = new Tally(n, perPub);
  const clients = await pairs(n, qos, tally);
  process.stdout.write('READY\n');
  await go;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(clients.slice(0, n).map((c, i) => windowed(c, `ha/pair/${i}`, i, perPub, qos)));
  await waitIdle(() => tally.delivered >= n * perPub, () => tally.delivered + tally.duplicated, 3000);
  await new Promise((r) => setTimeout(r, 200)); // late duplicates
  const result = finish(tally, n * perPub, n * perPub, t0, cpu0);
  for (const c of clients) c.end();
  return result;
}

/**
 * The steady-rate publisher, doing what an MQTT client does when its connection is closed: it
 * connects again (every 100 ms until it is back) and sends every QoS 1 message not acknowledged
 * yet, in order. A 3.1.1 broker that cannot take a QoS 1 PUBLISH (ours while Redis is down) closes
 * the connection, the protocol's only negative answer: a generator that gave up there would count
 * everything after as lost, which no real client would lose. Messages due while it is away wait.
 */
class Publisher {
  private client: BenchClient | undefined;
  /** Sent, not acknowledged: packet id → payload, in the order sent. */
  private readonly unacked = new Map<number, Buffer>();
  private stopped = false;
  private readonly clientId: string;
  private readonly topic: string;
  reconnects = 0;

  constructor(first: BenchClient, clientId: string, topic: string) {
    this.clientId = clientId;
    this.topic = topic;
    this.attach(first);
  }

  /** Messages sent and not acknowledged yet. */
  get outstanding(): number {
    return this.unacked.size;
  }

  send(id: number, payload: Buffer): void {
    this.unacked.set(id, payload);
    this.client?.publish(this.topic, payload, 1, id);
  }

  end(): void {
    this.stopped = true;
    this.client?.end();
  }

  private attach(c: BenchClient): void {
    this.client = c;
    c.onAck = (id) => this.unacked.delete(id);
    c.socket.once('close', () => {
      this.client = undefined;
      if (!this.stopped) void this.reconnect();
    });
    for (const [id, payload] of this.unacked) c.publish(this.topic, payload, 1, id);
  }

  private async reconnect(): Promise<void> {
    while (!this.stopped) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        const c = await BenchClient.connect(pubPort, this.clientId);
        this.reconnects++;
        this.attach(c);
        return;
      } catch {
        // broker not there (yet): try again
      }
    }
  }
}

/**
 * A steady rate in 1 ms steps, QoS 1, one publisher → one subscriber on the other replica.
 * `idleMs`: how long deliveries may pause before the rest counts as lost (longer when run.ts
 * restarts Redis in the middle).
 */
/** Sends `count` QoS 1 messages of publisher `index` at `rate` per second, in 1 ms steps. */
function steady(pub: Publisher, rate: number, count: number, index: number): Promise<number> {
  const t0 = performance.now();
  let sent = 0;
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(count, Math.floor(((performance.now() - t0) / 1000) * rate));
      while (sent < due) {
        pub.send((sent % 65535) + 1, payloadOf(64, index, sent));
        sent++;
      }
      if (sent >= count) {
        clearInterval(timer);
        resolve(sent);
      }
    }, 1);
  });
}

async function latency(rate: number, seconds: number, idleMs = 3000): Promise<HaResult> {
  const total = rate * seconds;
  const tally = new Tally(1, total);
  const [first, ...rest] = await pairs(1, 1, tally);
  const pub = new Publisher(first!, `ha-pub-${run}-0`, 'ha/pair/0');
  // One second at the same rate and QoS before GO, not counted: the measured seconds are the steady
  // state, not the first QoS 1 deliveries (code paths compiled, the subscriber's window in use).
  // Without it the first ~0.8 s of a 4 s run, with latencies of 100-200 ms while every process
  // warmed up, made most of the p99 for every target.
  await steady(pub, rate, rate, WARMUP);
  await waitIdle(() => tally.warm >= rate && pub.outstanding === 0, () => tally.warm, 3000);
  tally.warm = 0;
  process.stdout.write('READY\n');
  await go;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const sent = await steady(pub, rate, total, 0);
  await waitIdle(() => tally.delivered >= total, () => tally.delivered, idleMs);
  await new Promise((r) => setTimeout(r, 200)); // late duplicates
  const result = { ...finish(tally, sent, total, t0, cpu0), reconnects: pub.reconnects };
  pub.end();
  for (const c of rest) c.end();
  return result;
}

const k = quick ? 0.3 : 1;
let result: HaResult;
switch (scenario) {
  case 'cross-qos1':
    result = await throughput(10, Math.round(3_000 * k), 1);
    break;
  case 'cross-qos2':
    result = await throughput(10, Math.round(1_500 * k), 2);
    break;
  case 'latency-5k':
    result = await latency(5_000, quick ? 2 : 4);
    break;
  case 'redis-restart-qos1':
    // run.ts kills Redis (SIGKILL) 1.5 s after GO and starts it again, empty, 1 s later.
    result = await latency(2_000, quick ? 4 : 6, 8_000);
    break;
  default:
    throw new Error(`unknown scenario ${scenario}`);
}
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
setTimeout(() => process.exit(0), 200);
