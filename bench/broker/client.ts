// A minimal MQTT 3.1.1 client for load generation: raw sockets and pre-encoded packets, so the
// generator spends as little CPU per message as possible (MQTT.js would be the bottleneck).
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { FrameSplitter } from '../../broker/protocol/framing.ts';
import { decodePublishFast, encodePublishPlain, publishHeader } from '../../broker/protocol/codec.ts';

export type OnMessage = (payload: Buffer, qos: number, dup: boolean) => void;

function connectPacket(clientId: string, clean: boolean, keepalive: number): Buffer {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([
    Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, clean ? 2 : 0, keepalive >> 8, keepalive & 0xff, id.length >> 8, id.length & 0xff]), id,
  ]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

export class BenchClient {
  readonly socket: Socket;
  onMessage: OnMessage | undefined;
  onAck: ((id: number) => void) | undefined;
  private pending = new Map<number, () => void>();
  private connack: (() => void) | undefined;
  private nextId = 1;

  private constructor(socket: Socket) {
    this.socket = socket;
    const splitter = new FrameSplitter(256 * 1024 * 1024, {
      frame: (f) => this.frame(f),
      error: () => socket.destroy(),
    });
    socket.on('data', (d: Buffer) => splitter.push(d));
    socket.on('error', () => undefined);
  }

  static async connect(port: number, clientId: string, clean = true, keepalive = 0): Promise<BenchClient> {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    const c = new BenchClient(socket);
    await new Promise<void>((resolve, reject) => {
      c.connack = resolve;
      socket.once('error', reject);
      socket.once('close', () => reject(new Error(`connection ${clientId} closed before CONNACK`)));
      socket.write(connectPacket(clientId, clean, keepalive));
    });
    return c;
  }

  private frame(f: Buffer): void {
    const type = f[0]! >> 4;
    switch (type) {
      case 2:
        this.connack?.();
        this.connack = undefined;
        return;
      case 3: {
        const p = decodePublishFast(f, 4);
        if (p === undefined || p instanceof Error) return;
        if (p.qos === 1) this.socket.write(Buffer.from([0x40, 2, p.messageId >> 8, p.messageId & 0xff]));
        if (p.qos === 2) this.socket.write(Buffer.from([0x50, 2, p.messageId >> 8, p.messageId & 0xff]));
        this.onMessage?.(p.payload, p.qos, p.dup);
        return;
      }
      case 4:
      case 7:
        this.onAck?.(f.readUInt16BE(2));
        return;
      case 5:
        this.socket.write(Buffer.from([0x62, 2, f[2]!, f[3]!]));
        return;
      case 6:
        this.socket.write(Buffer.from([0x70, 2, f[2]!, f[3]!]));
        return;
      case 9:
      case 11: {
        const id = f.readUInt16BE(2);
        this.pending.get(id)?.();
        this.pending.delete(id);
        return;
      }
      default:
    }
  }

  subscribe(filter: string, qos: number): Promise<void> {
    const id = this.nextId++;
    const f = Buffer.from(filter);
    const body = Buffer.concat([Buffer.from([id >> 8, id & 0xff, f.length >> 8, f.length & 0xff]), f, Buffer.from([qos])]);
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.socket.write(Buffer.concat([Buffer.from([0x82, body.length]), body]));
    });
  }

  /** Writes a PUBLISH; returns false when the socket wants a drain. */
  publish(topic: string, payload: Buffer, qos: 0 | 1 | 2, messageId: number): boolean {
    return this.socket.write(encodePublishPlain(topic, payload, publishHeader(qos, false, false), messageId, false));
  }

  drained(): Promise<void> {
    return new Promise((r) => this.socket.once('drain', r));
  }

  end(): void {
    this.socket.end(Buffer.from([0xe0, 0]));
  }
}
