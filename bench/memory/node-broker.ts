// A Node.js broker for the memory budget (run.ts): `node --expose-gc node-broker.ts ours|aedes`.
// Listens on an ephemeral 127.0.0.1 port and prints `READY <port>`; each `measure` line on stdin
// is answered with `RSS <bytes> HELD <bytes>` after two full garbage collections, so what is
// measured is what the broker holds, not garbage it has not collected yet. HELD is V8's live heap
// plus memory outside it that JS objects own (Buffers): what the broker's data takes, without the
// free heap pages V8 keeps committed and the process's native allocations.
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { Aedes } from 'aedes';
import { pino } from 'pino';
import { embeddedDefaultConfig, validateBrokerConfig } from '../../broker/config.ts';
import { createBroker } from '../../broker/server.ts';

const which = process.argv[2];
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

let port: number;
if (which === 'ours') {
  const config = embeddedDefaultConfig('127.0.0.1', 0);
  config.admin.port = 0;
  const broker = createBroker({ config: validateBrokerConfig(config), logger: pino({ level: 'warn' }), sysIntervalMs: 0 });
  await broker.start();
  port = broker.addresses()[0]!.port;
} else if (which === 'aedes') {
  const aedes = await Aedes.createBroker();
  const server = createServer(aedes.handle);
  port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    resolve(typeof addr === 'object' && addr !== null ? addr.port : 0);
  }));
} else {
  throw new Error(`usage: node --expose-gc node-broker.ts ours|aedes (got ${String(which)})`);
}
process.stdout.write(`READY ${port}\n`);
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line !== 'measure') return;
  gc();
  gc();
  const m = process.memoryUsage();
  process.stdout.write(`RSS ${m.rss} HELD ${m.heapUsed + m.external}\n`);
});
process.stdin.on('end', () => process.exit(0));
