// Aedes (npm) on a TCP port, as the benchmark's comparison broker: `node aedes-server.ts PORT`.
import { createServer } from 'node:net';
import { Aedes } from 'aedes';

const port = Number(process.argv[2] ?? 1883);
const aedes = await Aedes.createBroker();
const server = createServer(aedes.handle);
server.listen(port, '127.0.0.1', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
