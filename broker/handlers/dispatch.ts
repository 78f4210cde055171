// Frame → handler. The order rules of the protocol live here: CONNECT first and only once,
// client-to-server packet types only [MQTT-3.1.0-1, 3.1.0-2]; and every frame the general parser
// decoded passes protocol/wire-rules.ts (UTF-8, v5 properties) before any handler sees it.
import type { Connection } from '../connection.ts';
import { decodePublishFast, parseFrame } from '../protocol/codec.ts';
import type { Packet } from '../protocol/codec.ts';
import { RC } from '../protocol/reason-codes.ts';
import { wireViolation } from '../protocol/wire-rules.ts';
import { handleAuth } from './auth.ts';
import { handleConnect, refuseMalformedConnect } from './connect.ts';
import { handleDisconnect } from './disconnect.ts';
import { handlePingreq } from './pingreq.ts';
import { handlePuback, handlePubcomp, handlePubrec, handlePubrel } from './pubacks.ts';
import { handlePublish, publishFromPacket } from './publish.ts';
import { handleSubscribe } from './subscribe.ts';
import { handleUnsubscribe } from './unsubscribe.ts';

const PUBLISH = 3;
const CONNECT = 1;

type Handled = Promise<void> | undefined;
/** A fast path that does not apply to this frame: the general parser reads it. */
const NOT_FAST: unique symbol = Symbol('not-fast');

/** The steps: before CONNECT completed only CONNECT; the PUBLISH and short-ack fast paths; the general parser. */
export function dispatchFrame(conn: Connection, frame: Buffer): Handled {
  const type = frame[0]! >> 4;
  if (conn.state !== 'connected') return dispatchBeforeConnected(conn, frame, type);
  const fast = type === PUBLISH ? fastPublish(conn, frame) : fastAck(conn, frame);
  if (fast !== NOT_FAST) return fast;
  const packet = parseFrame(frame, conn.version);
  if (packet instanceof Error) {
    conn.close(RC.MALFORMED_PACKET, 'malformed-packet', packet.message);
    return undefined;
  }
  const violation = wireViolation(frame, conn.version);
  if (violation !== undefined) {
    // v3.1.1 has no DISCONNECT from the server: close() just closes. [MQTT-1.5.4-1]
    conn.close(violation.reasonCode, violation.reasonCode === RC.MALFORMED_PACKET ? 'malformed-packet' : 'protocol-error', violation.message);
    return undefined;
  }
  return dispatchPacket(conn, packet);
}

/** The first packet must be CONNECT, and only once. [MQTT-3.1.0-1, 3.1.0-2] */
function dispatchBeforeConnected(conn: Connection, frame: Buffer, type: number): Handled {
  if (conn.state !== 'new' || type !== CONNECT) {
    conn.destroy(type === CONNECT ? 'connect-while-connecting' : 'first-packet-not-connect');
    return undefined;
  }
  const level = protocolLevel(frame);
  if (level !== undefined && level !== 3 && level !== 4 && level !== 5) {
    // [MQTT-3.1.2-2] unsupported level: CONNACK 0x01 (the v3.1.1 form every client reads), then close
    conn.write(Buffer.from([0x20, 0x02, 0x00, 0x01]));
    conn.close(RC.SUCCESS, 'unsupported-protocol-level');
    return undefined;
  }
  // CONNECT carries its own protocol level; any version's parser reads it the same way.
  const packet = parseFrame(frame, 4);
  if (packet instanceof Error || packet.cmd !== 'connect') {
    conn.broker.log.debug({ peer: conn.peerHost, err: packet instanceof Error ? packet.message : undefined }, 'malformed CONNECT');
    conn.destroy('malformed-connect');
    return undefined;
  }
  const violation = wireViolation(frame, packet.protocolVersion ?? 4);
  if (violation !== undefined) {
    refuseMalformedConnect(conn, packet.protocolVersion ?? 4, violation);
    return undefined;
  }
  return handleConnect(conn, packet);
}

/** A PUBLISH without properties, decoded by hand; its decoded record is what the handler takes. */
function fastPublish(conn: Connection, frame: Buffer): Handled | typeof NOT_FAST {
  const fast = decodePublishFast(frame, conn.version);
  if (fast instanceof Error) {
    conn.close(RC.MALFORMED_PACKET, 'malformed-publish', fast.message);
    return undefined;
  }
  return fast === undefined ? NOT_FAST : handlePublish(conn, fast);
}

/**
 * The acknowledgements of the QoS 1/2 hot path in their short form (no reason code) skip the
 * general parser. Header flags are checked as the parser would. [MQTT-2.2.2-2]
 */
function fastAck(conn: Connection, frame: Buffer): Handled | typeof NOT_FAST {
  if (frame.length !== 4 || frame[1] !== 2) return NOT_FAST;
  const id = (frame[2]! << 8) | frame[3]!;
  switch (frame[0]) {
    case 0x40:
      return handlePuback(conn, { cmd: 'puback', messageId: id });
    case 0x50:
      return handlePubrec(conn, { cmd: 'pubrec', messageId: id });
    case 0x62:
      return handlePubrel(conn, { cmd: 'pubrel', messageId: id });
    case 0x70:
      return handlePubcomp(conn, { cmd: 'pubcomp', messageId: id });
    default:
      return NOT_FAST;
  }
}

function dispatchPacket(conn: Connection, packet: Packet): Promise<void> | undefined {
  switch (packet.cmd) {
    case 'publish':
      return publishFromPacket(conn, packet);
    case 'puback':
      return handlePuback(conn, packet);
    case 'pubrec':
      return handlePubrec(conn, packet);
    case 'pubrel':
      return handlePubrel(conn, packet);
    case 'pubcomp':
      return handlePubcomp(conn, packet);
    case 'subscribe':
      return handleSubscribe(conn, packet);
    case 'unsubscribe':
      return handleUnsubscribe(conn, packet);
    case 'pingreq':
      return handlePingreq(conn);
    case 'disconnect':
      return handleDisconnect(conn, packet);
    case 'auth':
      return handleAuth(conn, packet);
    case 'connect':
      conn.close(RC.PROTOCOL_ERROR, 'second-connect'); // [MQTT-3.1.0-2]
      return undefined;
    default:
      // CONNACK, SUBACK, UNSUBACK, PINGRESP only flow server → client (docs/hostile-inputs.md #9)
      conn.close(RC.PROTOCOL_ERROR, `client-sent-${packet.cmd}`);
      return undefined;
  }
}

/** The protocol level byte of a CONNECT frame, undefined when the frame is too short to say. */
function protocolLevel(frame: Buffer): number | undefined {
  let pos = 1;
  while (pos < frame.length && frame[pos]! & 0x80) pos++;
  pos++;
  if (pos + 2 > frame.length) return undefined;
  const nameLen = frame.readUInt16BE(pos);
  const at = pos + 2 + nameLen;
  return at < frame.length ? frame[at] : undefined;
}
