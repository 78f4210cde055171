// The latency floor of bench:ha: `node floor-relay.ts PORT REDIS_PORT REDIS_PASSWORD`. The least a
// broker replica can do and still carry a message across replicas through Redis, in Node.js with
// the same libraries as ours (mqtt-packet, ioredis). A QoS 1 PUBLISH is answered once Redis took it
// (PUBLISH on one pub/sub channel), and every relay hands what it receives there to its
// subscribers whose filter is the topic itself. No sessions, no authorization, no retained
// messages, no state in Redis, no order or loss guarantees (pub/sub drops what a disconnected relay
// misses). Two of these on one Redis, measured in the same run as the brokers, give the tail this
// machine imposes on any two-replica Node.js broker: p99 above it is ours to explain, p99 at it is
// the machine's.
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { Redis } from 'ioredis';
import mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';

const [port, redisPort, password] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
const CHANNEL = 'floor';
const options = { host: '127.0.0.1', port: redisPort, password, enableAutoPipelining: true };
const command = new Redis(options);
const listener = new Redis(options);
/** Subscribers by topic (filters are taken as exact topics: the load generator subscribes to one topic each). */
const byTopic = new Map<string, Set<Socket>>();
let nextId = 1;

function send(socket: Socket, packet: Packet): void {
  socket.write(mqttPacket.generate(packet));
}

await listener.subscribe(CHANNEL);
listener.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
  const cut = message.indexOf(0);
  const topic = message.subarray(0, cut).toString();
  const payload = message.subarray(cut + 1);
  for (const s of byTopic.get(topic) ?? []) {
    nextId = nextId === 65535 ? 1 : nextId + 1;
    send(s, { cmd: 'publish', topic, payload, qos: 1, messageId: nextId, retain: false, dup: false });
  }
});

function handle(socket: Socket, packet: Packet): void {
  switch (packet.cmd) {
    case 'connect':
      send(socket, { cmd: 'connack', returnCode: 0, sessionPresent: false });
      break;
    case 'subscribe':
      for (const s of packet.subscriptions) {
        const set = byTopic.get(s.topic) ?? new Set<Socket>();
        set.add(socket);
        byTopic.set(s.topic, set);
      }
      send(socket, { cmd: 'suback', messageId: packet.messageId, granted: packet.subscriptions.map((s) => s.qos) });
      break;
    case 'publish': {
      const published = command.publish(CHANNEL, Buffer.concat([Buffer.from(`${packet.topic}\0`), Buffer.from(packet.payload)]));
      if (packet.qos > 0) void published.then(() => send(socket, { cmd: packet.qos === 1 ? 'puback' : 'pubrec', messageId: packet.messageId! }));
      break;
    }
    case 'pingreq':
      send(socket, { cmd: 'pingresp' });
      break;
    default:
      break; // PUBACK from subscribers: nothing is kept to release
  }
}

const server = createServer({ noDelay: true }, (socket) => {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  parser.on('packet', (p: Packet) => handle(socket, p));
  socket.on('data', (d) => parser.parse(d));
  socket.on('error', () => socket.destroy());
  socket.on('close', () => {
    for (const set of byTopic.values()) set.delete(socket);
  });
});
server.listen(port, '127.0.0.1', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
