// Owns the TLS and WebSocket handshakes in progress. Between the TCP accept and the moment the
// broker gets an MQTT byte stream (TLS established, WebSocket upgraded) a socket holds TLS state
// or an HTTP parser and counts against nothing else: maxConnections and connectTimeoutMs start
// when the broker is handed the stream. All listeners of a broker share one gate: at most
// `maxPendingHandshakes` at a time (a socket beyond it is closed as soon as it is accepted, before
// any TLS or HTTP work), each finished within `handshakeTimeoutMs` or closed. Plain TCP has no
// handshake: its CONNECT deadline starts at accept.
import type { Server, Socket } from 'node:net';
import type { ListenerHost } from './net.ts';

/** A TCP connection's identity on a listener; the TLS socket or upgraded request built on it has the same. */
const peerKey = (s: Socket): string => `${s.remoteAddress ?? ''}|${s.remotePort ?? ''}`;

interface Pending {
  raw: Socket;
  deadline: NodeJS.Timeout;
}

export class HandshakeGate {
  private readonly broker: ListenerHost;
  private readonly pending = new Map<string, Pending>();

  constructor(broker: ListenerHost) {
    this.broker = broker;
  }

  /** Handshakes begun and not yet finished or closed. */
  get inProgress(): number {
    return this.pending.size;
  }

  /** Puts every connection `server` (TLS, HTTP or HTTPS) accepts through the gate. */
  guard(server: Server): void {
    // Runs before the server's own listener: a refused socket never reaches TLS or HTTP.
    server.prependListener('connection', (raw: Socket) => this.admit(raw));
  }

  /** The handshake on this connection is over (`socket`: the TLS socket, or the upgraded request's). */
  done(socket: Socket): void {
    const key = peerKey(socket);
    const p = this.pending.get(key);
    if (p === undefined) return;
    clearTimeout(p.deadline);
    this.pending.delete(key);
  }

  private admit(raw: Socket): void {
    const { maxPendingHandshakes, handshakeTimeoutMs } = this.broker.config.limits;
    if (raw.remoteAddress === undefined) {
      raw.destroy(); // the peer is already gone
      return;
    }
    if (this.pending.size >= maxPendingHandshakes) {
      this.broker.metrics.handshakesAborted.inc({ reason: 'limit' });
      raw.destroy();
      return;
    }
    const key = peerKey(raw);
    const deadline = setTimeout(() => {
      this.broker.metrics.handshakesAborted.inc({ reason: 'timeout' });
      raw.destroy();
    }, handshakeTimeoutMs);
    this.pending.set(key, { raw, deadline });
    raw.once('close', () => {
      const p = this.pending.get(key);
      if (p?.raw !== raw) return;
      clearTimeout(p.deadline);
      this.pending.delete(key);
    });
  }
}

const gates = new WeakMap<ListenerHost, HandshakeGate>();

/** The broker's one gate, shared by its TLS, WS and WSS listeners. */
export function handshakeGate(broker: ListenerHost): HandshakeGate {
  let gate = gates.get(broker);
  if (gate === undefined) {
    gate = new HandshakeGate(broker);
    gates.set(broker, gate);
  }
  return gate;
}
