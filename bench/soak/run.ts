// `npm run bench:soak [-- --minutes N] [-- --warmup S] [-- --node-flags F]`: minutes of churn
// against a broker child process (load.ts: connects and disconnects, persistent sessions going
// offline and back, slow consumers, retained writes, auth reloads), printing once a minute the
// broker's RSS (at the minute's end and its peak, sampled every 5 s), heap used and committed,
// external memory (Buffers), event-loop delay (p99 and max over the minute) and what the load did.
// The last line is the verdict: the last minute's RSS against the first's. Flat memory is the
// target; the warm-up (not reported) lets queues, the retained store and V8's heap reach their
// working size first. Not a test: it reports, and exits 1 only when memory grew more than
// --tolerance percent.
import { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { startSoakBroker } from './broker.ts';
import { startSoakLoad } from './load.ts';
import type { LoadStats } from './load.ts';

const opts = new Command()
  .name('bench:soak')
  .option('--minutes <n>', 'minutes of churn after the warm-up', '30')
  .option('--warmup <seconds>', 'seconds of the same load before the first minute counts', '30')
  .option('--tolerance <percent>', 'RSS growth from the first minute to the last still called flat', '10')
  .option('--node-flags <flags>', 'flags for the broker\'s node process, space-separated (e.g. "--max-semi-space-size=16")', '')
  .parse()
  .opts<{ minutes: string; warmup: string; tolerance: string; nodeFlags: string }>();
const minutes = Number(opts.minutes);
const warmupMs = Number(opts.warmup) * 1000;
const tolerance = Number(opts.tolerance);
if (!Number.isInteger(minutes) || minutes < 1) throw new Error(`--minutes must be a whole number ≥ 1, got "${opts.minutes}"`);

const MiB = 1024 * 1024;
const f0 = (x: number): string => x.toFixed(0);
const f1 = (x: number): string => x.toFixed(1);

const nodeFlags = opts.nodeFlags.split(' ').filter((f) => f !== '');
const broker = await startSoakBroker(nodeFlags);
const load = startSoakLoad(broker);
console.log(`soak: broker pid ${broker.pid} on port ${broker.port}${nodeFlags.length > 0 ? ` (node ${nodeFlags.join(' ')})` : ''}; ${opts.warmup} s warm-up, then ${minutes} min`);
await sleep(warmupMs);
await broker.scrape(); // resets the broker's event-loop histogram: minute 1 starts here

const header = ['min', 'rss MiB', 'rss peak', 'heap MiB', 'heap total', 'external MiB', 'loop p99 ms', 'loop max ms', 'conns', 'sessions', 'subs', 'retained', 'connects', 'refused', 'closed by broker', 'published', 'received', 'dropped (queue/slow)', 'auth reloads'];
console.log(header.join('\t'));
const firstLast: number[] = [];
let before: LoadStats = { ...load.stats };
let dropsBefore = { queue: 0, slow: 0 };
try {
  for (let minute = 1; minute <= minutes; minute++) {
    let peak = 0;
    const end = performance.now() + 60_000;
    while (performance.now() < end) {
      await sleep(Math.min(5000, end - performance.now()));
      peak = Math.max(peak, broker.rssMiB());
    }
    const rss = broker.rssMiB();
    const m = await broker.scrape();
    const s = load.stats;
    const drops = { queue: m.get('enclave_broker_messages_dropped_total{reason="queue-full"}') ?? 0, slow: m.get('enclave_broker_messages_dropped_total{reason="slow-consumer"}') ?? 0 };
    console.log([
      minute, f0(rss), f0(peak), f1((m.get('enclave_broker_process_nodejs_heap_size_used_bytes') ?? 0) / MiB), f0((m.get('enclave_broker_process_nodejs_heap_size_total_bytes') ?? 0) / MiB), f1((m.get('enclave_broker_process_nodejs_external_memory_bytes') ?? 0) / MiB),
      f1((m.get('enclave_broker_process_nodejs_eventloop_lag_p99_seconds') ?? 0) * 1000), f1((m.get('enclave_broker_process_nodejs_eventloop_lag_max_seconds') ?? 0) * 1000),
      m.get('enclave_broker_connections'), m.get('enclave_broker_sessions'), m.get('enclave_broker_subscriptions'), m.get('enclave_broker_retained_messages'),
      s.connects - before.connects, s.connectFailures - before.connectFailures, s.unexpectedCloses - before.unexpectedCloses,
      s.published - before.published, s.received - before.received, `${drops.queue - dropsBefore.queue}/${drops.slow - dropsBefore.slow}`, s.authReloads - before.authReloads,
    ].join('\t'));
    if (minute === 1) firstLast[0] = rss;
    firstLast[1] = rss;
    before = { ...s };
    dropsBefore = drops;
  }
} finally {
  await load.stop();
  await broker.stop();
}
const [first, last] = firstLast as [number, number];
const growth = ((last - first) / first) * 100;
const flat = growth <= tolerance;
console.log(`verdict: RSS ${f0(first)} MiB after minute 1, ${f0(last)} MiB after minute ${minutes} (${growth >= 0 ? '+' : ''}${f1(growth)}%): ${flat ? 'flat' : `GREW more than ${tolerance}%`}`);
process.exit(flat ? 0 : 1);
