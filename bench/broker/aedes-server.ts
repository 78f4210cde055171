// Aedes (npm) on a TCP port, as the benchmark's comparison broker: `node aedes-server.ts PORT`.
import { createServer } from 'node:net';
import { Aedes } from 'aedes';

const port = Number(process.argv[2] ?? 1883);
const aedes = await Aedes.createBroker();
// noDelay as our TCP listener has it (broker/listeners/tcp.ts): with Nagle on, Aedes' small writes
// (PUBACKs, deliveries) could wait for the client's ACK, a delay that is a socket option, not Aedes.
const server = createServer({ noDelay: true }, aedes.handle);
server.listen(port, '127.0.0.1', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
