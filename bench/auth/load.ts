// The auth benchmark's load: CONNECT storms (open, CONNECT with credentials, CONNACK, DISCONNECT)
// with bounded concurrency, and a QoS 1 publish stream with a fixed window. Raw sockets and
// mqtt-packet, so the generator is cheap next to the broker it measures.
import { connect, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';

export interface ConnectStats {
  ok: number;
  refused: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

function once(socket: Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= bytes) {
        socket.off('data', onData);
        resolve(buf);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before answer')));
  });
}

export interface Credential {
  clientId: string;
  username?: string;
  password?: string;
}

export function connectPacket(cred: Credential): Buffer {
  return mqttPacket.generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: cred.clientId,
    ...(cred.username !== undefined ? { username: cred.username } : {}),
    ...(cred.password !== undefined ? { password: Buffer.from(cred.password) } : {}),
  });
}

async function oneConnect(port: number, packet: Buffer): Promise<{ ms: number; rc: number }> {
  const started = process.hrtime.bigint();
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const answer = once(socket, 4);
  socket.write(packet);
  const connack = await answer;
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  socket.end(Buffer.from([0xe0, 0x00]));
  socket.destroy();
  return { ms, rc: connack[3] ?? 255 };
}

/** `packets[i]` is the i-th CONNECT (pre-encoded so the generator spends nothing on encoding). */
export async function connectStorm(port: number, packets: Buffer[], concurrency: number): Promise<ConnectStats> {
  const total = packets.length;
  const latencies: number[] = [];
  let next = 0;
  let refused = 0;
  const started = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      try {
        const r = await oneConnect(port, packets[i]!);
        if (r.rc === 0) latencies.push(r.ms);
        else refused++;
      } catch {
        refused++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  return { ok: latencies.length, refused, perSecond: latencies.length / seconds, p50Ms: pct(0.5), p99Ms: pct(0.99) };
}

/** One client publishing `total` QoS 1 messages to `topic`, `window` in flight; returns acked msg/s. */
export async function publishStream(port: number, cred: Credential, topic: string, total: number, window: number): Promise<{ perSecond: number; acked: number }> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const connack = once(socket, 4);
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: cred.clientId, ...(cred.username ? { username: cred.username } : {}), ...(cred.password ? { password: Buffer.from(cred.password) } : {}) }));
  const ack = await connack;
  if (ack[3] !== 0) throw new Error(`publisher CONNECT refused (rc ${ack[3]})`);
  const payload = Buffer.alloc(64, 'x');
  let sent = 0;
  let acked = 0;
  const started = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    let pending: Buffer = Buffer.alloc(0);
    const send = (): void => {
      while (sent < total && sent - acked < window) {
        sent++;
        socket.write(mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 1, messageId: (sent % 65535) + 1, retain: false, dup: false }));
      }
    };
    socket.on('data', (d: Buffer) => {
      pending = pending.length === 0 ? d : Buffer.concat([pending, d]);
      let off = 0;
      while (pending.length - off >= 4) {
        if (pending[off] === 0x40) acked++;
        off += 2 + (pending[off + 1] ?? 2);
      }
      pending = pending.subarray(off);
      if (acked >= total) resolve();
      else send();
    });
    send();
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  socket.destroy();
  return { perSecond: acked / seconds, acked };
}
