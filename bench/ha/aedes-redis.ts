// Aedes as the HA comparison: `node aedes-redis.ts PORT REDIS_PORT REDIS_PASSWORD`. Several of
// these share one Redis through mqemitter-redis (routing) and aedes-persistence-redis (sessions,
// retained, QoS 1/2 state): the setup the Aedes documentation gives for a cluster of instances.
import { createServer } from 'node:net';
import { Aedes } from 'aedes';
import persistenceRedis from 'aedes-persistence-redis';
import mqemitterRedis from 'mqemitter-redis';

const [port, redisPort, password] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
const redis = { host: '127.0.0.1', port: redisPort, password };
const aedes = await Aedes.createBroker({ mq: mqemitterRedis(redis), persistence: persistenceRedis(redis) });
// noDelay as our TCP listener has it (broker/listeners/tcp.ts): with Nagle on, Aedes' small writes
// (PUBACKs, deliveries) could wait for the client's ACK, a delay that is a socket option, not Aedes.
const server = createServer({ noDelay: true }, aedes.handle);
server.listen(port, '127.0.0.1', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
