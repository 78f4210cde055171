// One client connection: framing, the packet dispatch loop (strictly in order, pausing the socket
// while an async step such as authentication runs), keepalive, the publish rate limit, and the ONE
// write path (corked per tick, with a high-water mark that marks the client as congested and stops
// reading from it until it drains: what it sends is answered, and answers it does not read must
// not pile up in the broker).
import type { Duplex } from 'node:stream';
import type { VerifiedCertificate, AuthenticatedClient } from './auth/hook.ts';
import { coarseNow, MAX_TIMER_MS } from './clock.ts';
import { FrameSplitter } from './protocol/framing.ts';
import type { FrameError } from './protocol/framing.ts';
import { encodePacket } from './protocol/codec.ts';
import type { ProtocolVersion } from './protocol/codec.ts';
import { RC } from './protocol/reason-codes.ts';
import type { BrokerServices, ClientConnection, ConnectionState, FrameDispatch, ListenerInfo, Peer } from './services.ts';
import type { Session } from './session/session.ts';

/**
 * Write-buffer size above which a client counts as a slow consumer (QoS 0 dropped, QoS>0 queued)
 * and the broker stops reading from it until the buffer drains.
 */
const HIGH_WATER = 256 * 1024;

/** Why reading from the socket is paused; it resumes when no reason is left. */
const HOLD_ASYNC = 1;
const HOLD_RATE = 2;
const HOLD_WRITE = 4;
/** Frames held while an async step runs; more than this means the peer ignores backpressure. */
const MAX_BACKLOG = 1024;

export class Connection implements ClientConnection {
  readonly broker: BrokerServices;
  private readonly dispatch: FrameDispatch<Connection>;
  readonly socket: Duplex;
  readonly listener: ListenerInfo;
  readonly peerHost: string;
  readonly certificate: VerifiedCertificate | undefined;
  state: ConnectionState = 'new';
  version: ProtocolVersion = 4;
  v5 = false;
  clientId = '';
  session: Session | undefined = undefined;
  client: AuthenticatedClient | undefined = undefined;
  /** Skip per-publish authorization (superuser or allow-all hook). */
  authorizeAll = false;
  clientMaxPacketSize = Infinity;
  clientReceiveMaximum = 65535;
  clientTopicAliasMaximum = 0;
  private inAliases: Map<number, string> | undefined = undefined;
  private outAliases: Map<string, number> | undefined = undefined;
  keepaliveMs = 0;
  /** Set by DISCONNECT 0x00: the will must not be sent. [MQTT-3.1.2-10] */
  cleanDisconnect = false;
  private readonly splitter: FrameSplitter;
  /** When the last whole packet arrived: keep-alive counts packets, not bytes. [MQTT-3.1.2-24] */
  private lastRx = coarseNow();
  private timer: NodeJS.Timeout | undefined;
  /** When the first byte of the packet still incomplete arrived; 0 = none pending. */
  private partialSince = 0;
  /** A whole packet was cut from the chunk being pushed. */
  private framed = false;
  private packetTimer: NodeJS.Timeout | undefined = undefined;
  /** Packets written this tick, sent as one socket write on the next tick. */
  private out: Buffer[] | undefined = undefined;
  private outBytes = 0;
  private backlog: Buffer[] | undefined = undefined;
  private busy = false;
  /** Busy waiting for room (waitForRoom): the backlog is not a peer ignoring backpressure. */
  private roomHeld = false;
  /** Ends the wait for room early (the peer closed). */
  private stopWaiting: (() => void) | undefined = undefined;
  /** The peer closed while an async step ran: finish what it sent first, then end. */
  private peerGone = false;
  private rateWindowStart = 0;
  private rateCount = 0;
  /** HOLD_* bits: the reasons reading is paused. */
  private holds = 0;

  /** `dispatch` is handlers/dispatch.ts, handed in by the server so this file does not import the handlers. */
  constructor(broker: BrokerServices, dispatch: FrameDispatch<Connection>, socket: Duplex, peer: Peer) {
    this.broker = broker;
    this.dispatch = dispatch;
    this.socket = socket;
    this.listener = peer.listener;
    this.peerHost = peer.host;
    this.certificate = peer.certificate;
    const limits = broker.config.limits;
    this.splitter = new FrameSplitter(limits.maxPacketSize, this);
    socket.on('data', (chunk: Buffer) => {
      this.broker.metrics.bytesIn += chunk.length;
      this.framed = false;
      this.splitter.push(chunk);
      if (this.state === 'closed') return; // a packet in this chunk closed it: no deadline for the rest
      if (this.splitter.buffered === 0) {
        this.partialSince = 0;
      } else if (this.partialSince === 0 || this.framed) {
        this.partialSince = coarseNow(); // a new packet began in this chunk
        this.armPacketDeadline();
      }
    });
    socket.on('error', () => this.destroy('socket-error'));
    socket.on('close', () => this.peerClosed());
    socket.on('drain', () => {
      this.release(HOLD_WRITE);
      this.session?.drain();
    });
    // [MQTT-3.1.4] a connection that does not send CONNECT in time is closed
    this.timer = setTimeout(() => this.destroy('connect-timeout'), limits.connectTimeoutMs);
  }

  // ---- FrameSink -------------------------------------------------------------------------------

  frame(frame: Buffer): void {
    if (this.state === 'closed') return;
    this.lastRx = coarseNow();
    this.framed = true;
    if (this.busy) {
      this.backlog ??= [];
      if (this.backlog.length >= MAX_BACKLOG && !this.roomHeld) {
        this.destroy('backlog-overflow');
        return;
      }
      this.backlog.push(Buffer.from(frame));
      return;
    }
    this.run(frame);
  }

  error(reason: FrameError, declaredSize: number): void {
    if (reason === 'packet-too-large') {
      this.broker.log.debug({ clientId: this.clientId, peer: this.peerHost, declaredSize }, 'packet exceeds maximum packet size');
      this.close(RC.PACKET_TOO_LARGE, 'packet-too-large'); // [MQTT-3.1.2-24]
    } else {
      this.close(RC.MALFORMED_PACKET, reason);
    }
  }

  private run(frame: Buffer): void {
    let pending: Promise<void> | undefined;
    try {
      pending = this.dispatch(this, frame);
    } catch (err) {
      // A bug or an input nobody foresaw ends this connection, never the process. Only the packet
      // type and length are logged: the bytes may be a user's payload or a CONNECT password.
      this.broker.log.error({ err, clientId: this.clientId, packetType: frame[0]! >> 4, packetLength: frame.length }, 'packet handler threw');
      this.close(RC.IMPLEMENTATION_SPECIFIC_ERROR, 'handler-threw');
      return;
    }
    if (pending !== undefined) {
      this.busy = true;
      this.hold(HOLD_ASYNC);
      pending.then(() => this.resumeAfterAsync(), (err: unknown) => {
        this.broker.log.error({ err, clientId: this.clientId }, 'packet handler failed');
        this.close(RC.UNSPECIFIED_ERROR, 'handler-error');
      });
    }
  }

  /**
   * A client that sends PUBLISH, DISCONNECT and closes at once must not lose the message nor get
   * its will published because authorization of that PUBLISH was still running: frames that
   * arrived before the close are processed in order first. [MQTT-4.6.0-6, MQTT-3.14.4-3]
   */
  private peerClosed(): void {
    if (this.busy && this.state !== 'closed') {
      this.peerGone = true;
      this.stopWaiting?.();
      return;
    }
    this.destroy('socket-closed');
  }

  private resumeAfterAsync(): void {
    this.busy = false;
    while (this.backlog !== undefined && this.backlog.length > 0 && !this.busy && this.state !== 'closed') {
      this.run(this.backlog.shift()!);
    }
    if (this.peerGone && !this.busy) {
      this.destroy('socket-closed');
      return;
    }
    if (!this.busy) this.release(HOLD_ASYNC);
  }

  /**
   * A message of this client was queued for a session that is behind (session/backlog.ts): the
   * handler returns this promise, so nothing more of this client is handled, nor read, until
   * `room` resolves. The frames of the chunk already read wait in memory, however many: the socket
   * is paused, so they are all there is. A client that has gone waits for nothing (undefined): there
   * is nobody to push back on, and its connection should end now, not after the wait.
   */
  waitForRoom(room: Promise<void>): Promise<void> | undefined {
    if (this.peerGone || this.state === 'closed') return undefined;
    this.broker.metrics.publishersHeld++;
    this.roomHeld = true;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        if (this.stopWaiting !== done) return;
        this.roomHeld = false;
        this.stopWaiting = undefined;
        resolve();
      };
      this.stopWaiting = done;
      void room.then(done);
    });
  }

  /** Stops reading for `reason` (TCP then pushes back on the client). */
  private hold(reason: number): void {
    if (this.holds === 0) this.socket.pause();
    this.holds |= reason;
  }

  /** Drops `reason`; reading resumes when it was the last one. */
  private release(reason: number): void {
    if ((this.holds & reason) === 0) return;
    this.holds &= ~reason;
    if (this.holds === 0 && this.state !== 'closed') this.socket.resume();
  }

  /** Topic aliases the client set on its PUBLISH packets. [MQTT-3.3.2.3.4] */
  get topicAliases(): Map<number, string> {
    return (this.inAliases ??= new Map<number, string>());
  }

  /**
   * Assigns aliases to topics first come, first served until the client's maximum, or ours
   * (`limits.topicAliasMaximum`) if lower, is used up: a client announcing 65,535 must not make
   * the broker keep 65,535 topics per connection. [MQTT-3.3.2-12 allows using fewer]
   */
  outboundAlias(topic: string): { alias: number; known: boolean } | undefined {
    const map = (this.outAliases ??= new Map<string, number>());
    const alias = map.get(topic);
    if (alias !== undefined) return { alias, known: true };
    if (map.size >= this.clientTopicAliasMaximum || map.size >= this.broker.config.limits.topicAliasMaximum) return undefined;
    const next = map.size + 1;
    map.set(topic, next);
    return { alias: next, known: false };
  }

  isClosed(): boolean {
    return this.state === 'closed';
  }

  /** The credential stops being valid (JWT exp): disconnect then. */
  expireAt(when: Date): void {
    const ms = when.getTime() - Date.now();
    const timer = setTimeout(() => this.close(RC.NOT_AUTHORIZED, 'credential-expired'), Math.min(Math.max(ms, 0), MAX_TIMER_MS));
    timer.unref();
    this.socket.once('close', () => clearTimeout(timer));
  }

  // ---- timers ------------------------------------------------------------------------------------

  /**
   * A packet whose first byte arrived must be whole within `limits.packetReadTimeoutMs`: a
   * client trickling bytes of a packet it never finishes would otherwise hold its buffer, and
   * the connection, for ever (with keep-alive 0, or before this fix, each byte renewed the
   * keep-alive). Time during which the broker itself does not read does not count.
   */
  private armPacketDeadline(): void {
    if (this.packetTimer !== undefined || this.state === 'closed') return;
    const limit = this.broker.config.limits.packetReadTimeoutMs;
    const check = (): void => {
      this.packetTimer = undefined;
      if (this.state === 'closed' || this.partialSince === 0) return;
      const now = coarseNow();
      if (this.holds !== 0) this.partialSince = now;
      const age = now - this.partialSince;
      if (age >= limit - 250) {
        this.broker.log.debug({ clientId: this.clientId, peer: this.peerHost, buffered: this.splitter.buffered }, 'packet not completed in time');
        this.destroy('packet-read-timeout');
        return;
      }
      this.packetTimer = setTimeout(check, limit - age);
    };
    this.packetTimer = setTimeout(check, limit);
  }

  /** Called once CONNECT succeeded: connect timeout → keepalive watch. [MQTT-3.1.2-24: 1.5 × keepalive] */
  startKeepalive(seconds: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.keepaliveMs = seconds * 1000;
    if (seconds === 0) return;
    this.lastRx = coarseNow();
    this.scheduleKeepalive(this.keepaliveMs * 1.5);
  }

  private scheduleKeepalive(delay: number): void {
    this.timer = setTimeout(() => {
      const idle = coarseNow() - this.lastRx;
      const limit = this.keepaliveMs * 1.5;
      if (idle >= limit - 250) {
        this.close(RC.KEEP_ALIVE_TIMEOUT, 'keepalive-timeout');
      } else {
        this.scheduleKeepalive(limit - idle);
      }
    }, delay);
  }

  /** Per-client publish rate: stop reading until the next one-second window (TCP pushes back). */
  countPublish(): void {
    const limit = this.broker.config.limits.publishRatePerSecond;
    if (limit === 0) return;
    const now = coarseNow();
    if (now - this.rateWindowStart >= 1000) {
      this.rateWindowStart = now;
      this.rateCount = 0;
    }
    if (++this.rateCount >= limit && (this.holds & HOLD_RATE) === 0) {
      this.hold(HOLD_RATE);
      setTimeout(() => {
        this.rateWindowStart = coarseNow();
        this.rateCount = 0;
        this.release(HOLD_RATE);
      }, Math.max(1, 1000 - (now - this.rateWindowStart)));
    }
  }

  // ---- the write path ------------------------------------------------------------------------------

  /**
   * The one write path. Packets of one tick are gathered and written once (a single small copy
   * is cheaper than a writev of many small buffers through the stream machinery).
   */
  write(buf: Buffer): void {
    if (this.state === 'closed') return;
    this.broker.metrics.bytesOut += buf.length;
    const out = this.out;
    if (out === undefined) {
      this.out = [buf];
      this.outBytes = buf.length;
      process.nextTick(flushConnection, this);
    } else {
      out.push(buf);
      this.outBytes += buf.length;
    }
  }

  flush(): void {
    const out = this.out;
    if (out === undefined) return;
    const bytes = this.outBytes;
    this.out = undefined;
    this.outBytes = 0;
    const socket = this.socket;
    if (socket.destroyed) return;
    socket.write(out.length === 1 ? out[0]! : Buffer.concat(out, bytes));
    // The client does not read what it is sent: stop reading what it sends (PUBLISH, PINGREQ,
    // SUBSCRIBE all produce answers) until the buffer drains. socket.write returned false long
    // before this mark, so 'drain' is due.
    if (socket.writableLength > HIGH_WATER) this.hold(HOLD_WRITE);
  }

  congested(): boolean {
    return this.socket.writableLength + this.outBytes > HIGH_WATER;
  }

  /**
   * Ends the connection. v5 clients that completed CONNECT get a DISCONNECT with the reason first
   * (only reason codes valid for a server DISCONNECT; [MQTT-3.14.2-1]).
   */
  close(reasonCode: number, reason: string, reasonString?: string): void {
    if (this.state === 'closed') return;
    if (this.v5 && this.state === 'connected' && reasonCode !== RC.SUCCESS) {
      const properties = reasonString === undefined ? undefined : { reasonString };
      this.write(encodePacket({ cmd: 'disconnect', reasonCode, properties }, 5));
    }
    this.flush();
    this.finish(reason);
    this.socket.end();
    // A peer that never reads must not hold the socket open.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** Ends without writing anything more. */
  destroy(reason: string): void {
    if (this.state === 'closed') return;
    this.finish(reason);
    this.socket.destroy();
  }

  private finish(reason: string): void {
    const wasConnected = this.state === 'connected';
    this.state = 'closed';
    this.backlog = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.packetTimer !== undefined) clearTimeout(this.packetTimer);
    this.packetTimer = undefined;
    this.broker.connectionClosed(this, wasConnected, reason);
  }
}

function flushConnection(conn: Connection): void {
  conn.flush();
}
