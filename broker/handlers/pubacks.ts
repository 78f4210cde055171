// PUBACK, PUBREC, PUBREL, PUBCOMP from the client: the QoS 1/2 handshakes. [MQTT-4.3.2, 4.3.3]
import type { Connection } from '../connection.ts';
import { encodeAck } from '../protocol/codec.ts';
import type { Packet } from '../protocol/codec.ts';
import { RC } from '../protocol/reason-codes.ts';

type Ack<C extends string> = Extract<Packet, { cmd: C }>;

export function handlePuback(conn: Connection, packet: Ack<'puback'>): undefined {
  // An unknown id is ignored: it may belong to a message resent after a reconnect. (mosquitto does the same)
  conn.session!.acknowledge(packet.messageId ?? 0, 'puback');
  return undefined;
}

export function handlePubrec(conn: Connection, packet: Ack<'pubrec'>): undefined {
  const id = packet.messageId ?? 0;
  const refused = (packet.reasonCode ?? 0) >= 0x80;
  const known = conn.session!.advanceToPubrel(id, refused);
  if (!refused) {
    // [MQTT-4.3.3-4] answer PUBREL; v5 says 0x92 when the id is unknown
    conn.write(encodeAck('pubrel', id, known ? 0 : RC.PACKET_IDENTIFIER_NOT_FOUND, conn.v5));
  }
  return undefined;
}

export function handlePubrel(conn: Connection, packet: Ack<'pubrel'>): undefined {
  const id = packet.messageId ?? 0;
  const known = conn.session!.releasePubrel(id);
  conn.write(encodeAck('pubcomp', id, known ? 0 : RC.PACKET_IDENTIFIER_NOT_FOUND, conn.v5));
  return undefined;
}

export function handlePubcomp(conn: Connection, packet: Ack<'pubcomp'>): undefined {
  conn.session!.acknowledge(packet.messageId ?? 0, 'pubcomp');
  return undefined;
}
